"""The replay's store batches its incident and event writes: every read, and what the
store holds at the end, is what the live SQLite store gives for the same calls."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from watchdog.backtest.standins import ReplayStore
from watchdog.errors import StoreError
from watchdog.store.base import ActionRecord, EventRecord, IncidentRecord
from watchdog.store.sqlite import SQLiteStore

T0 = 1_790_000_000.0


class Unbatched(SQLiteStore):
    """The live store in memory, each call its own transaction (the replay's store
    before batching), on the caller's thread."""

    def __init__(self) -> None:
        super().__init__(":memory:")

    async def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return self._transaction(fn)


def incident(phase: str, closed_at: float | None = None, **state: object) -> IncidentRecord:
    return IncidentRecord(
        "i1", T0, "errors", "high", phase, ["worker"], closed_at, state_json=repr(state)
    )


async def history(store: SQLiteStore) -> list[object]:
    """Writes interleaved with the reads a replay makes; what each read saw."""
    seen: list[object] = []
    await store.open()
    await store.save_incident(incident("detected"))
    await store.add_event(EventRecord("i1", T0, "detected", {"why": "s0 > 0.03", "n": (1, 2)}))
    seen.append(await store.has_incident("i1"))
    seen.append(await store.has_incident("i2"))
    await store.save_incident(incident("rolling_back", grace=False))
    await store.add_event(EventRecord("i1", T0 + 15, "phase", {"phase": "rolling_back"}))
    seen.append([(e.id, e.at, e.kind, e.data) for e in await store.events("i1")])
    seen.append(await store.get_incident("i1"))
    action = ActionRecord("k1", "i1", "rollback", "worker", {"to": "v1"}, "intent", T0 + 15)
    seen.append(await store.journal_intent(action))
    await store.add_event(EventRecord("i1", T0 + 30, "resolved", {"at": T0}))
    await store.save_incident(incident("resolved", closed_at=T0 + 30))
    seen.append(await store.open_incidents())
    seen.append(await store.recent_incidents())
    seen.append([(e.id, e.kind, e.data) for e in await store.events("i1")])
    return seen


async def contents(store: SQLiteStore) -> dict[str, list[Any]]:
    """Every row of the incidents and events tables, read through the store's own
    ``_run`` (which writes a pending batch first)."""
    tables = {}
    for table in ("incidents", "events", "actions"):
        query = f"SELECT * FROM {table} ORDER BY rowid"  # noqa: S608 (our own names)

        def read(c: sqlite3.Connection, q: str = query) -> list[Any]:
            return c.execute(q).fetchall()

        tables[table] = await store._run(read)
    return tables


async def test_every_read_and_the_rows_are_the_unbatched_stores() -> None:
    batched, unbatched = ReplayStore(), Unbatched()
    assert await history(batched) == await history(unbatched)
    await batched.save_incident(incident("closed", closed_at=T0 + 60))
    await batched.add_event(EventRecord("i2", T0 + 60, "blind", {"why": "no data"}))
    await unbatched.save_incident(incident("closed", closed_at=T0 + 60))
    await unbatched.add_event(EventRecord("i2", T0 + 60, "blind", {"why": "no data"}))
    rows = await contents(unbatched)
    assert await contents(batched) == rows
    assert len(rows["events"]) == 4
    assert rows["incidents"][0][5] == "closed"
    await batched.close()
    await unbatched.close()


async def test_a_batch_still_waiting_is_written_at_close() -> None:
    store = ReplayStore()
    await store.open()
    await store.add_event(EventRecord("i1", T0, "detected", {}))
    written: list[int] = []
    conn = store._conn
    assert conn is not None
    conn.set_trace_callback(lambda sql: written.append(1) if "INSERT" in sql else None)
    await store.close()
    assert written == [1]


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.save_incident(incident("detected")),
        lambda s: s.add_event(EventRecord("i1", T0, "detected", {})),
    ],
)
async def test_a_write_before_open_or_after_close_is_a_store_error(
    write: Callable[[ReplayStore], Awaitable[None]],
) -> None:
    store = ReplayStore()
    with pytest.raises(StoreError, match="not open"):
        await write(store)
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await write(store)


async def test_a_last_batch_that_fails_still_closes_the_store() -> None:
    store = ReplayStore()
    await store.open()
    await store.add_event(EventRecord("i1", T0, "detected", {}))
    conn = store._conn
    assert conn is not None
    conn.execute("DROP TABLE events")  # the batch cannot be written
    with pytest.raises(StoreError, match="no such table"):
        await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.add_event(EventRecord("i1", T0, "detected", {}))
