"""Two replicas on one PostgreSQL state, for real: two ``python -m watchdog run``
subprocesses share ``WATCHDOG_STATE=postgresql://…`` and watch the same loopback
"Prometheus" (its error rate follows what the local Cloudflare API serves). One leads
(session advisory lock), the other samples, stays ready and does nothing. The leader
is SIGKILLed mid-incident; its session dies, the lock goes with it, the follower takes
over, restores the incident from the shared store and carries it to resolved. Exactly
one rollback in total: create-deployment POSTs are counted on the fake."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import proc_world
from tests.integration.daemon_proc import DaemonProc
from tests.integration.proc_world import DEPLOYMENTS, STALL_S, Stack

pytestmark = pytest.mark.integration

LEADER_RETRY_S = 0.5


async def status(proc: DaemonProc) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=2.0) as http:
        body: dict[str, Any] = (await http.get(f"{proc.url}/api/v1/status")).json()
    return body


async def leads(proc: DaemonProc) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return bool((await status(proc))["leadership"]["leader"])
    return False


async def ready(proc: DaemonProc) -> bool:
    with contextlib.suppress(httpx.TransportError):
        async with httpx.AsyncClient(timeout=2.0) as http:
            return (await http.get(f"{proc.url}/readyz")).status_code == 200
    return False


async def leader_metric(proc: DaemonProc) -> float | None:
    async with httpx.AsyncClient(timeout=2.0) as http:
        text = (await http.get(f"{proc.url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("watchdog_leader "):
            return float(line.split()[1])
    return None


@contextlib.asynccontextmanager
async def replicas(tmp_path: Path, postgres_url: str) -> AsyncIterator[Stack]:
    """Two daemons, a and b, on one PostgreSQL state; neither started yet."""
    async with proc_world.stack(
        tmp_path,
        postgres_url=postgres_url,
        replicas=2,
        env={"WATCHDOG_LEADER_RETRY": str(LEADER_RETRY_S)},
    ) as r:
        yield r


async def start_leader_then_follower(r: Stack) -> None:
    """a starts first and leads; b starts, samples, is ready, and follows."""
    a, b = r.procs
    await a.start()
    await r.until(lambda: leads(a), "a to lead")
    await b.start()
    await r.until(lambda: ready(b), "b to be ready")
    assert not await leads(b)
    assert await leader_metric(a) == 1
    assert await leader_metric(b) == 0


async def rollback_decisions(proc: DaemonProc) -> list[str]:
    return [d["rule"] for d in (await status(proc))["decisions"] if d["kind"] == "rollback"]


async def follower_decided_too(r: Stack) -> None:
    """b saw the breach and decided to roll back, as a follower: it did not act."""
    _, b = r.procs

    async def decided() -> bool:
        return await rollback_decisions(b) == ["error-rate"]

    await r.until(decided, "the follower to decide too")
    assert r.posts() == 1
    assert not await leads(b)


async def take_over(r: Stack) -> float:
    """SIGKILL the leader; wait for b to lead; the seconds it took (measured, reported
    by -s, never asserted)."""
    a, b = r.procs
    killed = time.monotonic()
    await a.kill()
    await r.until(lambda: leads(b), "b to take over")
    took = time.monotonic() - killed
    print(f"\ntake-over after SIGKILL of the leader: {took:.2f}s (retry {LEADER_RETRY_S}s)")
    return took


async def assert_one_rollback_continued_to_resolved(r: Stack) -> None:
    _, b = r.procs
    await r.resolved()
    assert r.posts() == 1
    assert r.cf.live_versions("api") == [(r.good, 100.0)]
    assert await r.rollback_state() == "done"
    kinds = await r.event_kinds()
    assert "verification" in kinds
    assert kinds[-1] == "resolved"
    assert await leads(b)
    assert await leader_metric(b) == 1
    # What b decided while following is still visible after it took over.
    assert await rollback_decisions(b) == ["error-rate"]


async def test_sigkill_the_leader_between_the_rollback_and_its_outcome(
    tmp_path: Path, postgres_url: str
) -> None:
    """The leader's create-deployment took effect but has no answer yet (no outcome
    row) when it is SIGKILLed: the follower takes over, reconciles the intent from
    what is live without posting again, verifies and resolves. One rollback."""
    async with replicas(tmp_path, postgres_url) as r:
        r.cf.stall_after_apply("POST", DEPLOYMENTS, STALL_S)
        r.hold_errors = True  # until the take-over, so that the follower decides too
        await start_leader_then_follower(r)

        async def applied() -> bool:
            return r.posts() == 1 and await r.rollback_state() == "intent"

        await r.until(applied, "the leader's rollback to be applied, its row still intent")
        await follower_decided_too(r)
        await take_over(r)
        r.hold_errors = False
        await assert_one_rollback_continued_to_resolved(r)
        assert "reconciled" in await r.event_kinds()


async def test_sigkill_the_leader_mid_verification(tmp_path: Path, postgres_url: str) -> None:
    """The leader rolled back and is verifying (errors have not fallen yet) when it is
    SIGKILLed: the follower takes over the verifying incident, verifies on its own
    samples once errors fall, and resolves it. The rollback is not repeated."""
    async with replicas(tmp_path, postgres_url) as r:
        r.hold_errors = True
        await start_leader_then_follower(r)

        async def verifying() -> bool:
            return await r.phase() == "verifying"

        await r.until(verifying, "the leader to roll back and verify")
        await follower_decided_too(r)
        assert await r.phase() == "verifying"
        await take_over(r)
        assert r.posts() == 1
        r.hold_errors = False
        await assert_one_rollback_continued_to_resolved(r)
