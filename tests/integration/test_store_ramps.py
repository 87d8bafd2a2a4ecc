"""The ramps table (migration step 3, "ramps") on both backends: a ramp saved is read
back as it was, saved again replaces it, and ``active_only`` leaves ended ones out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from watchdog.store.base import RampRecord, Store
from watchdog.store.postgres import PostgresStore
from watchdog.store.sqlite import SQLiteStore

RAMP = RampRecord("r1", "worker", "v1", "v2", [10.0, 50.0, 100.0], 600.0, "ana", 1000.0)


async def _round_trip(store: Store) -> None:
    await store.open()
    try:
        await store.save_ramp(RAMP)
        assert await store.ramps() == [RAMP]
        moved = replace(RAMP, step=1, soak_from=1700.0, deployment="d2", why="step 2")
        await store.save_ramp(moved)
        ended = replace(RAMP, id="r0", created_at=900.0, phase="aborted", why="by bo")
        await store.save_ramp(ended)
        assert await store.ramps() == [ended, moved]
        assert await store.ramps(active_only=True) == [moved]
    finally:
        await store.close()


async def test_sqlite_keeps_ramps(tmp_path: Path) -> None:
    await _round_trip(SQLiteStore(tmp_path / "state.db"))


async def test_postgres_keeps_ramps(postgres_url: str) -> None:
    await _round_trip(PostgresStore(postgres_url))
