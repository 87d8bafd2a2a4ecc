"""No rollback without an intent row: when the state store cannot be written the
watchdog refuses to act, and says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.scenarios.support import (
    BAD,
    HEALTHY,
    breach,
    calm,
    mutating_calls,
    pagerduty_triggers,
    recover,
    slack_bodies,
)
from tests.world import World, world
from watchdog.store.sqlite import SQLiteStore


async def sql(w: World, statement: str) -> None:
    """Run ``statement`` on the watchdog's own connection (a real SQLite failure
    mode, injected through SQLite itself)."""
    store = w.runtime.store
    assert isinstance(store, SQLiteStore)

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(statement)

    await store._run(run)


async def test_journal_intent_failing_refuses_the_rollback(tmp_path: Path) -> None:
    """The intent cannot be written (disk full on the actions table): no request
    to Cloudflare at all, the incident escalates and on-call is paged with why."""
    async with world(tmp_path) as w:
        await sql(
            w,
            "CREATE TRIGGER full BEFORE INSERT ON actions "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        )
        await calm(w)
        await breach(w)
        assert mutating_calls(w) == []
        assert w.worker_rollbacks() == 0
        assert w.pages_rollbacks() == 0
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "escalated"
        (escalated,) = await w.events("escalated")
        assert escalated.data["why"].startswith("refused to act: state store failed")
        assert "database or disk is full" in escalated.data["why"]
        (page,) = pagerduty_triggers(w)[-1:]
        assert "refused to act" in page["payload"]["custom_details"]["message"]


async def test_read_only_store_refuses_to_act_and_says_so(tmp_path: Path) -> None:
    """Nothing can be written (the state volume went read-only): no incident row,
    no journal, no action; the people on the rule's notifiers and on-call are still
    told that the watchdog refused to act and why."""
    async with world(tmp_path) as w:
        await calm(w)
        await sql(w, "PRAGMA query_only = ON")
        await breach(w)
        assert mutating_calls(w) == []
        assert w.worker_rollbacks() == 0
        assert w.pages_rollbacks() == 0
        refused = [t for t in slack_bodies(w) if "refused to act" in t]
        assert refused, slack_bodies(w)
        assert "state store failed" in refused[0]
        pages = pagerduty_triggers(w)
        assert pages
        assert "refused to act" in pages[-1]["payload"]["custom_details"]["message"]
        await sql(w, "PRAGMA query_only = OFF")
        assert await w.runtime.store.rollbacks_since(0) == []


async def test_refused_rollback_is_retried_once_the_disk_has_room(tmp_path: Path) -> None:
    """The intent cannot be written at the breach (disk full on the actions table):
    refused and escalated. Room comes back while the rule still fires: the rollback
    is retried (guards judged as for a fresh one) and done, once."""
    async with world(tmp_path) as w:
        await sql(
            w,
            "CREATE TRIGGER full BEFORE INSERT ON actions "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        )
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 0
        await sql(w, "DROP TRIGGER full")
        await w.feed("error_rate", [BAD] * 3, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "verifying"
        await w.feed("error_rate", [BAD] * 10, also=HEALTHY)
        assert w.worker_rollbacks() == 1


async def test_refused_decision_is_retried_once_the_store_is_writable(tmp_path: Path) -> None:
    """Nothing can be written at the breach (no incident row even): refused and told.
    The store is writable again while the rule still fires: the decision is taken
    again, the incident opened and the rollback done, once."""
    async with world(tmp_path) as w:
        await calm(w)
        await sql(w, "PRAGMA query_only = ON")
        await breach(w)
        assert w.worker_rollbacks() == 0
        await sql(w, "PRAGMA query_only = OFF")
        await w.feed("error_rate", [BAD] * 3, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1
        await w.feed("error_rate", [BAD] * 10, also=HEALTHY)
        assert w.worker_rollbacks() == 1


async def test_refused_decision_is_dropped_when_the_rule_stops_firing(tmp_path: Path) -> None:
    """Refused at the breach; the breach is over before the store works again:
    nothing is retried (no rollback for a breach that ended)."""
    async with world(tmp_path) as w:
        await calm(w)
        await sql(w, "PRAGMA query_only = ON")
        await breach(w)
        await recover(w, 4)
        await sql(w, "PRAGMA query_only = OFF")
        await recover(w, 4)
        assert w.worker_rollbacks() == 0
        assert await w.runtime.store.recent_incidents() == []
