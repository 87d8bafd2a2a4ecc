"""The SQLite store's cursors die on its worker thread. A cursor handed back to the
event loop was freed there, resetting its cached statement while the worker ran the
same statement for the next call: 'bad parameter or other API misuse', seen as a
refused rollback (two targets' ledgers saved at once) in the history model and in
tests/scenarios/test_dry_run.py, about one run in ten."""

from __future__ import annotations

import asyncio
from pathlib import Path

from watchdog.store.base import LedgerEntry
from watchdog.store.sqlite import SQLiteStore


async def test_concurrent_ledger_saves_never_misuse_the_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        for round_ in range(60):
            saves = [
                store.save_ledger(
                    [LedgerEntry("w", f"v{round_}-{j}-{k}", went_live_at=1.0) for k in range(200)]
                )
                for j in range(4)
            ]
            results = await asyncio.gather(*saves, return_exceptions=True)
            assert [r for r in results if r is not None] == []
        assert len(await store.ledger("w")) == 60 * 4 * 200
    finally:
        await store.close()
