"""A restart (or an HA takeover) after an incident was saved as rolling back but
before the first journal row: the resumed rollback judges every target that has no
journal row again (deploy correlation, the cooldown, the hourly cap), as a fresh one
would. Restart here is a SIGTERM while the rollback reads the target from a slow
Cloudflare API: the in-flight read is cancelled, a new Runtime on the same store
resumes the incident."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import BAD, HEALTHY, breach, calm, mutating_calls, recover
from tests.world import World, world
from watchdog.model import Sample

WORKER_ONLY = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
   min_requests: 100, rollback: [worker]}
"""
DEPLOYMENTS = "/accounts/{account}/workers/scripts/{script}/deployments"


async def fire_and_stop_during_the_read(w: World, already: int = 0) -> str:
    """Breaching samples up to twenty (``already`` were fed), then the one that fires
    the rule: the incident is
    saved as rolling back and the rollback starts reading the Worker, which Cloudflare
    answers slowly; the process is stopped before the read returns and restarted.
    Returns the incident's id."""
    w.cloudflare.delay("GET", DEPLOYMENTS, seconds=60.0)
    await w.feed("error_rate", [BAD] * (20 - already), also=HEALTHY)
    w.clock.set(w.now + 15)
    w.runtime.watchdog.observe("error_rate", Sample.of(w.now, BAD, 1000.0), "prom")
    await w.runtime.watchdog.drain()  # the decision is handled; the read hangs
    (incident,) = w.runtime.manager.open.values()
    assert incident.phase == "rolling_back"
    assert await w.runtime.store.actions(incident.id) == []  # no journal row yet
    await w.restart(stop_timeout_s=0.2)
    assert w.runtime.manager.open[incident.id].phase == "rolling_back"
    await w.settle()
    return incident.id


async def test_resumed_rollback_keeps_the_cooldown(tmp_path: Path) -> None:
    """A rollback, verified and closed; a second breach within the 30m cooldown; the
    process is stopped while the second incident reads the Worker. The resumed
    incident is blocked by the cooldown and escalates: still one rollback."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        await recover(w)
        assert w.runtime.manager.open == {}
        second = await fire_and_stop_during_the_read(w)
        assert w.worker_rollbacks() == 1
        blocked = [e for e in await w.events("rollback_blocked") if e.incident_id == second]
        assert blocked
        assert "cooldown: worker was rolled back" in blocked[0].data["why"]
        assert w.runtime.manager.open[second].phase == "escalated"


async def test_resumed_rollback_keeps_deploy_correlation(tmp_path: Path) -> None:
    """The breach began before the live deploy (someone shipped a fix attempt
    meanwhile); the process is stopped while the incident reads the Worker. The
    resumed incident still refuses: that deploy cannot have caused the breach."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await calm(w)
        await w.feed("error_rate", [BAD] * 3, also=HEALTHY)  # the breach begins
        v4 = w.cloudflare.publish("api", "hotfix attempt", created_on=w.now + 1)
        await fire_and_stop_during_the_read(w, already=3)
        assert mutating_calls(w) == []
        (blocked,) = await w.events("rollback_blocked")
        assert "after the breach began" in blocked.data["why"]
        assert w.worker_live() == [(v4, 100.0)]
