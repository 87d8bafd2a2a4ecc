"""The ``Store`` protocol, held to one contract by every implementation.

The ``backend`` fixture is parametrized over the implementations: SQLite, and
PostgreSQL (a fresh database in the session's loopback cluster, see
tests/integration/postgres_fixture.py), which passes the same tests unchanged.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from watchdog.errors import StoreError
from watchdog.store.base import (
    ActionRecord,
    EventRecord,
    IncidentRecord,
    LedgerEntry,
    SilenceRecord,
    Store,
)
from watchdog.store.sqlite import MIGRATIONS, SQLiteStore

T0 = 1_790_000_000.0


@dataclass
class Backend:
    """One implementation: how to build a store on the same location again, and how
    to read and force its schema version (migrations)."""

    name: str
    make: Callable[[], Store]
    latest: int
    schema_version: Callable[[], Awaitable[int]]
    set_schema_version: Callable[[int], Awaitable[None]]
    # Build the location at schema 1 (before the version ledger) and run SQL on it.
    at_schema_1: Callable[[str], Awaitable[None]]


def sqlite_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "state" / "watchdog.db"

    async def version() -> int:
        with sqlite3.connect(path) as conn:
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        conn.close()
        return int(row[0])

    async def force(value: int) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO schema_version VALUES (?)", (value,))
        conn.close()

    async def at_schema_1(sql: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.executescript(MIGRATIONS[0])
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (1)")
            conn.executescript(sql)
        conn.close()

    return Backend(
        "sqlite", lambda: SQLiteStore(path), len(MIGRATIONS), version, force, at_schema_1
    )


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": sqlite_backend}


def postgres_backend(url: str) -> Backend:
    """A fresh database in the test PostgreSQL (tests/integration/postgres_fixture.py)."""
    import psycopg

    from watchdog.store.postgres import PostgresStore
    from watchdog.store.postgres_migrate import MIGRATIONS as PG_MIGRATIONS

    async def version() -> int:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            row = await (await conn.execute("SELECT MAX(version) FROM schema_version")).fetchone()
        assert row is not None
        return int(row[0])

    async def force(value: int) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("INSERT INTO schema_version VALUES (%s)", (value,))

    async def at_schema_1(sql: str) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(PG_MIGRATIONS[0])
            await conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            await conn.execute("INSERT INTO schema_version VALUES (1)")
            await conn.execute(sql)

    return Backend(
        "postgresql", lambda: PostgresStore(url), len(PG_MIGRATIONS), version, force, at_schema_1
    )


@pytest.fixture(params=[*sorted(BACKENDS), "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgresql":  # needs the session's PostgreSQL cluster
        return postgres_backend(request.getfixturevalue("postgres_url"))
    factory: Callable[[Path], Backend] = BACKENDS[request.param]
    return factory(tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def reopened(backend: Backend) -> Store:
    fresh = backend.make()
    await fresh.open()
    return fresh


def incident(
    incident_id: str = "20260928T120000Z-error-rate", opened_at: float = T0, **data: object
) -> IncidentRecord:
    return IncidentRecord(
        id=incident_id,
        opened_at=opened_at,
        rule="error-rate",
        severity="critical",
        phase="watching",
        targets=["worker", "frontend"],
        state_json=json.dumps({"decision": {"rule": "error-rate"}, **data}),
    )


def intent(
    key_target: str = "worker",
    kind: str = "rollback",
    incident_id: str = "inc1",
    at: float = T0,
    to: str = "v2",
) -> ActionRecord:
    return ActionRecord(
        key=f"{incident_id}/{kind}/{key_target}",
        incident_id=incident_id,
        kind=kind,
        target=key_target,
        intent={"from": "v3", "to": to, "reason": "error-rate 8% > 5%"},
        state="intent",
        created_at=at,
    )


def silence(
    silence_id: str, ends_at: float, expired_at: float | None = None, origin: str = "api"
) -> SilenceRecord:
    return SilenceRecord(
        id=silence_id,
        matchers=[{"name": "rule", "op": "=~", "value": "error-.*"}],
        starts_at=T0,
        ends_at=ends_at,
        created_by="alice",
        comment="deploying by hand",
        origin=origin,
        expired_at=expired_at,
    )


# --- migrations -------------------------------------------------------------------------


async def test_migrations_bring_a_new_store_to_the_latest_schema(backend: Backend) -> None:
    """A new location is migrated to the latest schema version; opening it again
    neither re-runs nor repeats a migration, and keeps the data."""
    first = await reopened(backend)
    await first.save_incident(incident())
    await first.close()
    assert await backend.schema_version() == backend.latest
    second = await reopened(backend)
    try:
        assert await backend.schema_version() == backend.latest
        assert [i.id for i in await second.open_incidents()] == [incident().id]
    finally:
        await second.close()


async def test_old_healthy_marks_migrate_into_the_ledger_as_not_evidence(
    backend: Backend,
) -> None:
    """A store from before the version ledger: its "healthy versions" rows (marked when
    an incident closed, dry runs included) become ledger entries with
    ``legacy_seen_at``, never ``verified``; the old table is gone."""
    await backend.at_schema_1(
        "INSERT INTO healthy_versions (target, version, seen_at) VALUES "
        "('worker', 'v2', 1790000000), ('worker', 'v3', 1790000060), "
        "('frontend', 'p1', 1790000005);"
    )
    migrated = await reopened(backend)
    try:
        assert await backend.schema_version() == backend.latest
        worker = {e.version: e for e in await migrated.ledger("worker")}
        assert sorted(worker) == ["v2", "v3"]
        assert worker["v3"].legacy_seen_at == T0 + 60
        assert not any(e.verified or e.rolled_away for e in worker.values())
        assert [e.legacy_seen_at for e in await migrated.ledger("frontend")] == [T0 + 5]
    finally:
        await migrated.close()


async def test_a_schema_newer_than_this_watchdog_refuses_to_open(backend: Backend) -> None:
    """State written by a newer watchdog is not touched by an older one: open fails
    with a StoreError that says to upgrade."""
    first = await reopened(backend)
    await first.close()
    await backend.set_schema_version(backend.latest + 1)
    newer = backend.make()
    with pytest.raises(StoreError, match=r"newer than this watchdog knows .*upgrade"):
        await newer.open()
    await newer.close()


async def test_a_closed_store_raises_store_error(backend: Backend) -> None:
    """After close, a call is a StoreError (never a crash of another kind)."""
    closed = await reopened(backend)
    await closed.close()
    with pytest.raises(StoreError):
        await closed.open_incidents()


# --- incidents and events ---------------------------------------------------------------


async def test_incidents_round_trip_and_update(store: Store) -> None:
    """Every field comes back; saving again updates phase, data and closed_at;
    a closed incident is no longer open."""
    record = incident(baselines={"p95": 0.4}, grace_until=T0 + 600)
    await store.save_incident(record)
    assert await store.get_incident(record.id) == record
    assert await store.open_incidents() == [record]
    record.phase = "resolved"
    record.closed_at = T0 + 900
    record.state_json = json.dumps({"verify": {"error_rate:below": "passed"}})
    await store.save_incident(record)
    assert await store.get_incident(record.id) == record
    assert await store.open_incidents() == []
    assert await store.recent_incidents() == [record]


async def test_incidents_by_prefix_and_recent_order(store: Store) -> None:
    """get_incident takes a unique id prefix (None when ambiguous or unknown);
    recent_incidents is newest first and limited; open_incidents oldest first."""
    for n in range(5):
        await store.save_incident(incident(f"2026092{n}T120000Z-error-rate", T0 + n))
    assert (await store.get_incident("20260923")) == incident("20260923T120000Z-error-rate", T0 + 3)
    assert await store.get_incident("2026092") is None
    assert await store.get_incident("nope") is None
    recent = await store.recent_incidents(limit=2)
    assert [r.opened_at for r in recent] == [T0 + 4, T0 + 3]
    assert [r.opened_at for r in await store.open_incidents()] == [T0 + n for n in range(5)]
    # has_incident: the exact id only (a prefix is not an id; the ids stay unique).
    assert await store.has_incident("20260923T120000Z-error-rate")
    assert not await store.has_incident("20260923T120000Z-error")
    assert not await store.has_incident("20260923")


async def test_events_round_trip_in_order(store: Store) -> None:
    """Events come back in insertion order with increasing ids and their data;
    only the asked incident's."""
    await store.add_event(EventRecord("inc1", T0, "detected", {"decision": {"observed": 0.08}}))
    await store.add_event(EventRecord("inc2", T0 + 1, "detected", {}))
    await store.add_event(EventRecord("inc1", T0 + 2, "phase", {"phase": "rolling_back"}))
    events = await store.events("inc1")
    assert [(e.kind, e.at, e.data) for e in events] == [
        ("detected", T0, {"decision": {"observed": 0.08}}),
        ("phase", T0 + 2, {"phase": "rolling_back"}),
    ]
    assert events[0].id < events[1].id
    assert all(e.incident_id == "inc1" for e in events)
    assert await store.events("none") == []


# --- the journal ------------------------------------------------------------------------


async def test_journal_intent_is_idempotent(store: Store) -> None:
    """The first intent for a key is the row; a replay (even with another plan) gets
    that row back and writes nothing."""
    first = await store.journal_intent(intent(to="v2"))
    assert first.state == "intent"
    again = await store.journal_intent(intent(to="v1", at=T0 + 60))
    assert again.intent["to"] == "v2"
    assert again.created_at == T0
    assert len(await store.actions("inc1")) == 1


async def test_concurrent_intents_for_one_key_yield_one_row(store: Store) -> None:
    """Two writers racing on the same key: one row, both see the same intent."""
    rows = await asyncio.gather(*(store.journal_intent(intent(to=f"v{n}")) for n in range(8)))
    assert len({r.intent["to"] for r in rows}) == 1
    assert len(await store.actions("inc1")) == 1


async def test_outcomes_finish_an_intent(store: Store) -> None:
    """An outcome sets the state, the outcome and finished_at; a replay of the
    intent then returns the finished row (so the action is not redone)."""
    await store.journal_intent(intent())
    outcome = {"ok": True, "detail": "deployed v2", "data": {"deployment_id": "d9"}}
    await store.journal_outcome("inc1/rollback/worker", "done", outcome, T0 + 5)
    (row,) = await store.actions("inc1")
    assert (row.state, row.outcome, row.finished_at) == ("done", outcome, T0 + 5)
    replay = await store.journal_intent(intent())
    assert replay.state == "done"
    assert replay.outcome == outcome


async def test_an_outcome_without_an_intent_is_refused(store: Store) -> None:
    """Writing an outcome for a key that has no intent is a StoreError, never a
    silent no-op (an outcome must follow its intent)."""
    with pytest.raises(StoreError, match="no intent"):
        await store.journal_outcome("inc1/rollback/worker", "done", {}, T0)


async def test_unfinished_actions_are_the_intents(store: Store) -> None:
    """Only rows still at 'intent', oldest first: what a restart must reconcile."""
    await store.journal_intent(intent("frontend", at=T0 + 2))
    await store.journal_intent(intent("worker", at=T0 + 1))
    await store.journal_intent(intent("zone", kind="purge", at=T0 + 3))
    await store.journal_outcome("inc1/purge/zone", "failed", {"ok": False}, T0 + 4)
    unfinished = await store.unfinished_actions()
    assert [a.key for a in unfinished] == ["inc1/rollback/worker", "inc1/rollback/frontend"]


async def test_rollbacks_since_counts_done_and_intent_rollbacks(store: Store) -> None:
    """The guards' view: rollbacks (done or still intent, not failed, not other
    kinds) since a time, for one target or all."""
    await store.journal_intent(intent("worker", incident_id="a", at=T0))
    await store.journal_outcome("a/rollback/worker", "done", {"ok": True}, T0 + 1)
    await store.journal_intent(intent("frontend", incident_id="b", at=T0 + 100))
    await store.journal_intent(intent("worker", incident_id="c", at=T0 + 200))
    await store.journal_outcome("c/rollback/worker", "failed", {"ok": False}, T0 + 201)
    await store.journal_intent(intent("worker", kind="would-rollback", incident_id="d", at=T0))
    await store.journal_intent(intent("zone", kind="purge", incident_id="a", at=T0))
    assert [a.key for a in await store.rollbacks_since(T0)] == [
        "a/rollback/worker",
        "b/rollback/frontend",
    ]
    assert [a.key for a in await store.rollbacks_since(T0, "worker")] == ["a/rollback/worker"]
    assert [a.key for a in await store.rollbacks_since(T0 + 50)] == ["b/rollback/frontend"]


# --- silences and the version ledger --------------------------------------------------------


async def test_silences_round_trip_and_expire(store: Store) -> None:
    """Silences come back whole; by default only those not ended and not expired
    at ``now``; expiring is saving again with expired_at."""
    active = silence("s1", T0 + 3600)
    ended = silence("s2", T0 + 60, origin="signal")
    await store.save_silence(active)
    await store.save_silence(ended)
    assert await store.silences(now=T0 + 120) == [active]
    assert sorted(s.id for s in await store.silences(include_expired=True)) == ["s1", "s2"]
    active.expired_at = T0 + 200
    await store.save_silence(active)
    assert await store.silences(now=T0 + 300) == []
    (back,) = [s for s in await store.silences(include_expired=True) if s.id == "s1"]
    assert back == active
    assert back.matchers == [{"name": "rule", "op": "=~", "value": "error-.*"}]


async def test_ledger_facts_only_grow(store: Store) -> None:
    """The version ledger per target: the earliest went-live time is kept, the first
    known "how" wins over "unknown", and once rolled away from or verified healthy a
    version stays so (a later write without the fact does not erase it)."""
    await store.save_ledger(
        [
            LedgerEntry("worker", "v1", T0, "person", "wrangler: deploy v1"),
            LedgerEntry("worker", "v2", T0 + 10, "ci", "workersci"),
            LedgerEntry("frontend", "p1", T0 + 20, "ci", "github:push"),
        ]
    )
    await store.save_ledger(
        [
            LedgerEntry("worker", "v2", T0 + 5, "unknown", "", T0 + 30, "rolled back by x"),
            LedgerEntry("worker", "v1", T0 + 50, verified_at=T0 + 40, verified_why="passed"),
        ]
    )
    await store.save_ledger(
        [
            LedgerEntry("worker", "v2", T0 + 60, "watchdog", "y", T0 + 70, "later"),
            LedgerEntry("worker", "v1", None, verified_at=T0 + 90, verified_why="again"),
        ]
    )
    v1, v2 = await store.ledger("worker")
    assert v1 == LedgerEntry(
        "worker",
        "v1",
        T0,
        "person",
        "wrangler: deploy v1",
        verified_at=T0 + 40,
        verified_why="passed",
    )
    assert v2 == LedgerEntry("worker", "v2", T0 + 5, "ci", "workersci", T0 + 30, "rolled back by x")
    assert [e.version for e in await store.ledger("frontend")] == ["p1"]
    assert await store.ledger("nothing") == []
    await store.save_ledger([])


async def test_everything_survives_a_reopen(backend: Backend) -> None:
    """Incidents, events, the journal, silences and the version ledger are all there
    after the store is closed and opened again (a restart)."""
    first = await reopened(backend)
    await first.save_incident(incident())
    await first.add_event(EventRecord(incident().id, T0, "detected", {"x": 1}))
    await first.journal_intent(intent())
    await first.save_silence(silence("s1", math.floor(T0 + 3600)))
    await first.save_ledger([LedgerEntry("worker", "v2", T0, verified_at=T0 + 1)])
    await first.close()
    second = await reopened(backend)
    try:
        assert [i.id for i in await second.open_incidents()] == [incident().id]
        assert [e.data for e in await second.events(incident().id)] == [{"x": 1}]
        assert [a.key for a in await second.unfinished_actions()] == ["inc1/rollback/worker"]
        assert [s.id for s in await second.silences(now=T0)] == ["s1"]
        assert [e.version for e in await second.ledger("worker") if e.verified] == ["v2"]
    finally:
        await second.close()
