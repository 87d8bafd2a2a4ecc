"""``kill -9`` mid-incident, for real: the daemon runs as a subprocess against the
local Cloudflare API, a loopback "Prometheus" whose error rate follows what is live,
and the notification receivers. It is SIGKILLed (a) between the journalled intent
and the first API call, (b) between the call taking effect and the outcome row, and
(c) mid-verification; a new process on the same state file must finish the job with
exactly one rollback in total, and the incident must go on to resolved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.proc_world import DEPLOYMENTS, STALL_S, Stack, stack
from watchdog.demo.fakes.cloudflare import Fault

pytestmark = pytest.mark.integration


async def assert_one_rollback_and_resolved(s: Stack) -> None:
    await s.resolved()
    assert s.created() == 1
    assert s.cf.live_versions("api") == [(s.good, 100.0)]
    assert await s.rollback_state() == "done"
    kinds = await s.event_kinds()
    assert "verification" in kinds
    assert kinds[-1] == "resolved"
    # The rollback is reported as journalled, bad → good, whichever run finished it.
    (finished,) = await s.rows("SELECT data FROM events WHERE kind = 'rollback_finished'")
    assert json.loads(finished[0])["rolled_back"] == [["worker", s.bad, s.good]]


async def test_kill_between_intent_and_call(tmp_path: Path) -> None:
    """SIGKILL after the intent row is committed, while the rollback's own read of
    the deployments (before its POST) hangs: no POST was made; the restart makes
    exactly one and the incident verifies and resolves."""
    async with stack(tmp_path) as s:
        # The first GET is the inspection; the second is the rollback re-reading
        # what is live right before it posts.
        stalled = s.cf.inject(Fault("GET", DEPLOYMENTS, "delay", times=1, delay_s=STALL_S, after=1))
        await s.proc.start()

        async def between() -> bool:
            return stalled.hits == 1 and await s.rollback_state() == "intent"

        await s.until(between, "the intent row and the stalled read")
        await s.proc.kill()
        assert s.posts() == 0
        assert await s.phase() == "rolling_back"
        await s.proc.start()
        await assert_one_rollback_and_resolved(s)
        assert s.posts() == 1


async def test_kill_between_call_and_outcome(tmp_path: Path) -> None:
    """SIGKILL after Cloudflare applied the create-deployment but before it answered
    (so before the outcome row): the restart reconciles the intent from what is
    live, posts nothing more, and the incident goes on to resolved."""
    async with stack(tmp_path) as s:
        s.cf.stall_after_apply("POST", DEPLOYMENTS, STALL_S)
        await s.proc.start()

        async def applied() -> bool:
            return s.created() == 1 and await s.rollback_state() == "intent"

        await s.until(applied, "the rollback applied with its row still at intent")
        await s.proc.kill()
        assert await s.rollback_state() == "intent"
        await s.proc.start()
        await assert_one_rollback_and_resolved(s)
        assert s.posts() == 1
        assert "reconciled" in await s.event_kinds()


async def test_kill_mid_verification(tmp_path: Path) -> None:
    """SIGKILL while verifying (errors have not fallen yet): the restarted daemon
    restores the incident, verifies on fresh samples and resolves it; the rollback
    is not repeated."""
    async with stack(tmp_path) as s:
        s.hold_errors = True
        await s.proc.start()

        async def verifying() -> bool:
            return await s.phase() == "verifying"

        await s.until(verifying, "verification to start")
        await s.proc.kill()
        assert s.created() == 1
        s.hold_errors = False
        await s.proc.start()
        await assert_one_rollback_and_resolved(s)
        assert s.posts() == 1
