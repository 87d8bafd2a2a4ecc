"""Fault matrix, the state store: unwritable (a read-only volume, a full disk) from
before a breach, or failing in the middle of a playbook. The watchdog refuses to act
rather than act unrecorded, and says so (log line, notification, metric); once the
store works again nothing is lost: a later breach is handled normally, and an
incident interrupted mid-playbook goes on from its journal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
from structlog.testing import capture_logs

from tests.faults.support import log_text
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
from tests.world import BusyStore, World, world
from watchdog.api.app import build_app
from watchdog.clock import AutoClock
from watchdog.errors import StoreError
from watchdog.store.base import (
    ActionRecord,
    EventRecord,
    IncidentRecord,
    LedgerEntry,
    SilenceRecord,
)


class FailingStore(BusyStore):
    """The SQLite store with a switch: while ``failing`` names a write (or holds
    ``"*"``), that write raises ``StoreError`` as a full disk or a read-only volume
    makes SQLite do, without touching the file."""

    failing: ClassVar[set[str]] = set()  # class-wide: the test flips it for every store

    def __init__(self, path: str | Path, clock: AutoClock) -> None:
        super().__init__(path, clock)

    def _check(self, write: str) -> None:
        if write in FailingStore.failing or "*" in FailingStore.failing:
            raise StoreError(f"state store {self.path}: database or disk is full")

    async def save_incident(self, incident: IncidentRecord) -> None:
        self._check("save_incident")
        await super().save_incident(incident)

    async def add_event(self, event: EventRecord) -> None:
        self._check("add_event")
        await super().add_event(event)

    async def journal_intent(self, action: ActionRecord) -> ActionRecord:
        self._check("journal_intent")
        return await super().journal_intent(action)

    async def journal_outcome(
        self, key: str, state: str, outcome: dict[str, Any], at: float
    ) -> None:
        self._check("journal_outcome")
        await super().journal_outcome(key, state, outcome, at)

    async def save_silence(self, silence: SilenceRecord) -> None:
        self._check("save_silence")
        await super().save_silence(silence)

    async def save_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        self._check("save_ledger")
        await super().save_ledger(entries)


def refused_metric(w: World) -> float:
    registry = w.runtime.watchdog.metrics.registry
    value = registry.get_sample_value(
        "watchdog_actions_total", {"action": "rollback", "outcome": "refused"}
    )
    return value or 0.0


async def test_unwritable_store_refuses_to_act_and_says_so(tmp_path: Path) -> None:
    """Every write fails from before the breach: nothing is sent to Cloudflare, Slack
    and on-call hear that the watchdog refused to act and why, the log says so and
    the refusal is counted. When the store works again, the next breach is handled
    as usual: one rollback, recorded."""
    FailingStore.failing = set()
    async with world(tmp_path, store_factory=FailingStore) as w:
        await calm(w)
        FailingStore.failing = {"*"}
        with capture_logs() as logs:
            await breach(w)
        assert mutating_calls(w) == []
        refused = [t for t in slack_bodies(w) if "refused to act" in t]
        assert refused
        assert "database or disk is full" in refused[0]
        assert "refused to act" in pagerduty_triggers(w)[-1]["payload"]["custom_details"]["message"]
        assert "state store failed" in log_text(logs)
        assert any(e["log_level"] == "error" for e in logs)
        assert refused_metric(w) == 1
        assert w.runtime.manager.open == {}

        FailingStore.failing = set()  # the disk has room again
        await recover(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        (incident,) = await w.runtime.store.recent_incidents()
        actions = {a.kind: a.state for a in await w.runtime.store.actions(incident.id)}
        assert actions["rollback"] == "done"
        await recover(w)
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "resolved"


async def test_store_failing_mid_playbook_loses_nothing(tmp_path: Path) -> None:
    """The store fails right after the rollback's intent was journalled (the outcome
    and everything after cannot be written): the rollback that was taken is not
    repeated, people are told, and once the store works again the same incident goes
    on from its journal (the rollback reconciled as done), verifies and closes."""
    FailingStore.failing = set()
    async with world(tmp_path, store_factory=FailingStore) as w:
        await calm(w)
        # The worker rollback is the first journalled action; fail every write after it.
        original = FailingStore.journal_intent

        async def intent_then_full(self: FailingStore, action: ActionRecord) -> ActionRecord:
            record = await original(self, action)
            FailingStore.failing = {"journal_outcome", "add_event", "save_incident"}
            return record

        FailingStore.journal_intent = intent_then_full  # type: ignore[method-assign]
        try:
            with capture_logs() as logs:
                await breach(w)
        finally:
            FailingStore.journal_intent = original  # type: ignore[method-assign]
        assert w.worker_rollbacks() == 1
        text = log_text(logs)
        assert "could not journal an outcome" in text
        assert "resuming from the journal when the store works" in text
        # Told the truth: the rollback ran, its outcome is not recorded yet (not "refused").
        told = [t for t in slack_bodies(w) if "state store failed" in t]
        assert told
        assert all("after the rollback ran" in t for t in told), told
        assert refused_metric(w) == 0

        FailingStore.failing = set()
        await recover(w)
        assert w.worker_rollbacks() == 1  # never a second one
        (incident,) = await w.runtime.store.recent_incidents()
        actions = {a.target: a.state for a in await w.runtime.store.actions(incident.id)}
        assert actions["worker"] == "done"
        assert incident.phase == "resolved", incident.phase


class FullAfterOpening(FailingStore):
    """Every timeline write fails from the moment the incident first moved to rolling
    back (the incident row and its first events were written)."""

    armed: ClassVar[bool] = True

    async def add_event(self, event: EventRecord) -> None:
        await super().add_event(event)
        phase = event.kind == "phase" and event.data.get("phase") == "rolling_back"
        if FullAfterOpening.armed and phase:
            FullAfterOpening.armed = False
            FailingStore.failing = {"add_event", "save_incident"}


async def test_store_failing_as_the_incident_opens_refuses_once_and_moves_on(
    tmp_path: Path,
) -> None:
    """The store fills up just after the incident was opened, before any action: the
    rollback is refused (nothing sent), people are told once (not once per code path)
    and it is counted once; the incident is escalated (humans own it). Once the store
    works and the rule still fires, the refused rollback is retried (once), and the
    incident closes when production is healthy again."""
    FailingStore.failing = set()
    FullAfterOpening.armed = True
    async with world(tmp_path, store_factory=FullAfterOpening) as w:
        await calm(w)
        await breach(w)
        assert mutating_calls(w) == []
        refusals = [t for t in slack_bodies(w) if "refused to act" in t]
        assert len(refusals) == 1, refusals
        assert refused_metric(w) == 1
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "escalated"  # humans own it; it does not sit rolling back
        FailingStore.failing = set()
        await w.feed("error_rate", [BAD] * 3, also=HEALTHY)  # still breaching
        assert incident.phase == "verifying"
        assert w.worker_rollbacks() == 1
        assert len([t for t in slack_bodies(w) if "refused to act" in t]) == 1
        await recover(w)
        (record,) = await w.runtime.store.recent_incidents()
        assert record.phase == "resolved", record.phase
        assert w.worker_rollbacks() == 1


async def test_silences_survive_a_failing_store(tmp_path: Path) -> None:
    """While the store cannot be written, creating or expiring a silence over the API
    answers 503 saying it was not saved, and nothing changes in memory either (no
    silence that would vanish on restart, no expiry that would come back); once the
    store works, a silence is saved and still holds after a restart."""
    FailingStore.failing = set()
    async with world(tmp_path, store_factory=FailingStore) as w:
        app = build_app(
            w.runtime.watchdog, w.runtime.settings.api_token, silences=w.runtime.silences
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        # Loopback without a token: the Host must name this machine (no DNS rebinding).
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
            body = {
                "matchers": ["target=worker"],
                "duration": "2h",
                "created_by": "al",
                "comment": "x",
            }
            FailingStore.failing = {"save_silence"}
            refused = await api.post("/api/v1/silences", json=body)
            assert refused.status_code == 503
            assert "the silence was not saved" in refused.json()["error"]
            assert w.runtime.silences.active() == []
            FailingStore.failing = set()
            created = await api.post("/api/v1/silences", json=body)
            assert created.status_code == 201
            silence_id = created.json()["id"]
            FailingStore.failing = {"save_silence"}
            expire = await api.delete(f"/api/v1/silences/{silence_id}")
            assert expire.status_code == 503
            assert [s.id for s in w.runtime.silences.active()] == [silence_id]
            FailingStore.failing = set()
        await w.restart()
        await w.runtime.silences.load()
        assert [s.id for s in w.runtime.silences.active()] == [silence_id]
        assert w.runtime.silences.match("error-rate", "critical", "worker") is not None
