"""Fault matrix, clock jumps: the wall clock steps back or forward an hour (an NTP
step, a VM resumed) under the live sampling loop and under an open incident.
Sampling goes on at its interval, a breach never spans the jump (no firing on two
samples an hour apart), the jump is logged and counted, and an incident's deadlines
move with the wall clock, so it neither stalls for the hour nor times out early."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from tests.faults.servers import PrometheusBehaviour, faulty_server
from tests.faults.support import INTERVAL, PROMETHEUS_RULES, log_text, source_rig
from tests.scenarios.support import breach, calm, recover
from tests.world import World, world
from watchdog.core.decision import DecisionKind
from watchdog.core.evaluator import State
from watchdog.model import SampleKind

HOUR = 3600.0
WORKER_ONLY = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
   min_requests: 100, rollback: [worker]}
"""


async def test_wall_clock_back_an_hour_does_not_stall_sampling(tmp_path: Path) -> None:
    """The wall clock steps back an hour between two samples: the next sample comes
    one interval later (not an hour later), stamped on the new wall clock; a no-data
    sample marks the jump (logged, counted); a breach after it fires after ``for:``
    (1m) of fresh evidence, exactly once, never earlier."""
    behaviour = PrometheusBehaviour()
    async with (
        faulty_server(behaviour) as server,
        source_rig(tmp_path, PROMETHEUS_RULES, server.url) as rig,
    ):
        jumps: list[float] = []

        async def told(seconds: float) -> None:
            jumps.append(seconds)

        rig.watchdog.on_clock_jump = told
        await rig.rounds(2)
        before = rig.clock.now()
        errors = rig.source_errors()
        rig.clock.set(before - HOUR)
        with capture_logs() as logs:
            sample = await rig.round()
        assert sample.kind is SampleKind.VALUE
        assert sample.at == before - HOUR + INTERVAL
        marker = rig.seen[-2].sample
        assert marker.kind is SampleKind.NO_DATA
        assert "the wall clock jumped backwards by 3600s" in marker.reason
        assert "wall clock jumped; evidence starts again" in log_text(logs)
        assert rig.source_errors() - errors == 1
        await rig.watchdog.drain()
        assert jumps == [-HOUR]

        behaviour.value = 0.08
        fired_after = None
        for n in range(1, 8):
            await rig.round()
            if rig.decisions(DecisionKind.ROLLBACK):
                fired_after = n
                break
        assert fired_after == 5  # samples at 0, 15, 30, 45, 60 s of the breach
        assert len(rig.decisions(DecisionKind.ROLLBACK)) == 1


async def test_wall_clock_forward_an_hour_never_completes_a_breach(tmp_path: Path) -> None:
    """Three breaching samples (30 s of a 1m ``for:``), then the wall clock steps an
    hour forward: the next breaching sample does not fire the rule (the hour was not
    seen); it fires only after 1m of breaching samples after the jump."""
    behaviour = PrometheusBehaviour(value=0.08)
    async with (
        faulty_server(behaviour) as server,
        source_rig(tmp_path, PROMETHEUS_RULES, server.url) as rig,
    ):
        await rig.rounds(2)
        assert rig.state() is State.PENDING
        rig.clock.set(rig.clock.now() + HOUR)
        await rig.round()
        assert rig.state() is State.PENDING
        assert rig.decisions(DecisionKind.ROLLBACK) == []
        await rig.rounds(3)
        assert rig.decisions(DecisionKind.ROLLBACK) == []
        await rig.round()
        assert len(rig.decisions(DecisionKind.ROLLBACK)) == 1


async def test_clock_jump_moves_open_incidents_with_the_wall_clock(tmp_path: Path) -> None:
    """An incident verifying its rollback when the wall clock steps back an hour: its
    deadlines move with the clock (the jump is on its timeline), so healthy samples
    after the jump verify it and it resolves in minutes, not after the hour."""
    async with world(tmp_path) as w:
        assert w.runtime.watchdog.on_clock_jump == w.runtime.manager.clock_jumped
        await calm(w)
        await breach(w)
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "verifying"
        started = incident.state.verify_started
        w.clock.set(w.now - HOUR)
        await w.runtime.manager.clock_jumped(-HOUR)
        assert started is not None
        assert incident.state.verify_started == started - HOUR
        await recover(w)
        (record,) = await w.runtime.store.recent_incidents()
        assert record.phase == "resolved"
        assert "clock_jumped" in [e.kind for e in await w.events()]
        assert w.worker_rollbacks() == 1


async def test_clock_forward_under_an_incident_is_no_false_escalation(tmp_path: Path) -> None:
    """An incident verifying its rollback when the wall clock steps an hour forward:
    the verification window moves too, so the rollback is judged on evidence after
    it (and passes), not failed for want of samples in a window that was skipped."""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w)
        w.clock.set(w.now + HOUR)
        await w.runtime.manager.clock_jumped(HOUR)
        await recover(w)
        (record,) = await w.runtime.store.recent_incidents()
        assert record.phase == "resolved"
        assert "escalated" not in [e.kind for e in await w.events()]


async def rolled_back_and_closed(w: World) -> None:
    await calm(w)
    await breach(w)
    assert w.worker_rollbacks() == 1
    await recover(w)
    assert w.runtime.manager.open == {}


async def step(w: World, seconds: float) -> None:
    """The wall clock steps, and the watchdog notices (as its sampling loop does)."""
    w.clock.set(w.now + seconds)
    await w.runtime.manager.clock_jumped(seconds)


async def test_forward_step_keeps_the_cooldown(tmp_path: Path) -> None:
    """A rollback, then the wall clock steps an hour forward and a new deploy breaks
    things: the breach about twenty real minutes after the rollback is within the 30m
    cooldown and is not rolled back (the journal's wall-clock time looks an hour older
    than it is)."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await rolled_back_and_closed(w)
        await step(w, HOUR)
        w.cloudflare.publish("api", "v4", created_on=w.now)
        await breach(w)
        assert w.worker_rollbacks() == 1
        (blocked,) = await w.events("rollback_blocked")
        assert "cooldown: worker was rolled back" in blocked.data["why"]


async def test_forward_step_keeps_the_cooldown_across_a_restart(tmp_path: Path) -> None:
    """The step is noticed, then the watchdog restarts: the new process knows of the
    step (it is in the store) and the cooldown still holds."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await rolled_back_and_closed(w)
        await step(w, HOUR)
        await w.restart()
        w.cloudflare.publish("api", "v4", created_on=w.now)
        await calm(w, 4)
        await breach(w)
        assert w.worker_rollbacks() == 1
        (blocked,) = await w.events("rollback_blocked")
        assert "cooldown: worker was rolled back" in blocked.data["why"]
