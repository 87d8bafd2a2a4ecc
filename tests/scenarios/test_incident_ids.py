"""An incident's id is unique in the whole store, not only among the recent ones."""

from __future__ import annotations

from pathlib import Path

from tests.world import world
from watchdog.store.base import IncidentRecord
from watchdog.units import iso


async def test_an_id_taken_before_a_clock_step_back_is_not_reused(tmp_path: Path) -> None:
    """The wall clock stepped back an hour after 50 incidents: the second now has
    an incident of its own from before the step, and 50 incidents look more recent.
    A new incident in that second gets ``-2``; the old one is not overwritten."""
    async with world(tmp_path) as w:
        store = w.runtime.store
        now = w.now
        taken = f"{iso(now).replace(':', '').replace('-', '')}-manual"
        old = IncidentRecord(taken, now, "manual", "critical", "closed", ["worker"], now + 60)
        await store.save_incident(old)
        for k in range(50):
            later = now + 3600 + k
            await store.save_incident(
                IncidentRecord(f"later-{k}", later, "r", "high", "closed", ["worker"], later)
            )
        incident = await w.runtime.manager.manual_rollback(["worker"], "bad deploy", "alice")
        assert incident.id == f"{taken}-2"
        kept = await store.get_incident(taken)
        assert kept is not None
        assert (kept.opened_at, kept.phase, kept.closed_at) == (now, "closed", now + 60)
