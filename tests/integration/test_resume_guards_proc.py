"""SIGTERM (a rolling restart) while the watchdog reads the target from a slow
Cloudflare API, before the first journal row: the real daemon, restarted on the same
state file, judges the target again and keeps the cooldown (issue 10, defect 13); so
does a PostgreSQL follower that takes over from a leader SIGKILLed at the same point.
The state holds a rollback of the Worker five minutes ago, by an earlier incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.proc_world import DEPLOYMENTS, STALL_S, Stack, stack
from tests.integration.test_ha_postgres import replicas, start_leader_then_follower, take_over
from watchdog.demo.fakes.cloudflare import Fault
from watchdog.store.base import ActionRecord, Store
from watchdog.store.postgres import PostgresStore
from watchdog.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration


async def rolled_back_earlier(store: Store, at: float) -> None:
    await store.open()
    try:
        await store.journal_intent(
            ActionRecord("earlier/rollback/worker", "earlier", "rollback", "worker", {}, "done", at)
        )
    finally:
        await store.close()


async def test_sigterm_during_the_target_read_keeps_the_cooldown(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await rolled_back_earlier(SQLiteStore(tmp_path / "state.db"), s.cf.clock.now() - 300)
        read = s.cf.inject(Fault("GET", DEPLOYMENTS, "delay", times=1, delay_s=STALL_S))
        await s.proc.start()
        await s.stalled()

        async def rolling_back() -> bool:
            return await s.phase() == "rolling_back"

        await s.until(rolling_back, "the incident saved as rolling back")
        assert read.hits == 1
        assert await s.journal() == {"rollback/worker": "done"}  # the earlier one only
        await s.proc.stop()
        await s.proc.start()
        await refused_for_the_cooldown(s)


async def refused_for_the_cooldown(s: Stack) -> None:
    async def escalated() -> bool:
        return await s.phase() == "escalated"

    await s.until(escalated, "the resumed incident to be refused and escalated")
    assert s.posts() == 0
    (why,) = await s.rows("SELECT data FROM events WHERE kind = 'rollback_blocked'")
    assert "cooldown: worker was rolled back" in why[0]


async def test_takeover_during_the_target_read_keeps_the_cooldown(
    tmp_path: Path, postgres_url: str
) -> None:
    async with replicas(tmp_path, postgres_url) as r:
        await rolled_back_earlier(PostgresStore(postgres_url), r.cf.clock.now() - 300)
        read = r.cf.inject(Fault("GET", DEPLOYMENTS, "delay", times=1, delay_s=STALL_S))
        await start_leader_then_follower(r)
        await r.stalled()

        async def rolling_back() -> bool:
            return await r.phase() == "rolling_back"

        await r.until(rolling_back, "the incident saved as rolling back")
        assert read.hits == 1
        await take_over(r)
        await refused_for_the_cooldown(r)
