"""Only the leader acts (``LeaderGate``), on the scenario world (local Cloudflare,
receivers, virtual clock). Leadership is handed out and taken back by the test
through ``Switch``, a real ``Leadership`` whose lead the test controls; the
PostgreSQL election itself is tested in tests/integration/test_leader_election.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.world import World, world
from watchdog.incidents.silence import Silences
from watchdog.model import Sample
from watchdog.run.ha import LeaderGate
from watchdog.run.leader import Callback

HEALTHY = {"p95": 0.4}
POLLS = 500  # x 0.01 s of real time: loopback HTTP in flight


class Switch:
    """A ``Leadership`` the test elects and deposes."""

    def __init__(self) -> None:
        self.on_elected: Callback | None = None
        self.on_deposed: Callback | None = None
        self._leader = False

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self) -> None:
        """A follower until the test says otherwise."""

    async def stop(self) -> None:
        self._leader = False

    def describe(self) -> dict[str, Any]:
        return {"leader": self._leader, "election": "test switch"}

    async def elect(self) -> None:
        self._leader = True
        assert self.on_elected is not None
        await self.on_elected()

    async def depose(self) -> None:
        self._leader = False
        assert self.on_deposed is not None
        await self.on_deposed()


def follower(w: World) -> Switch:
    """Put the world's runtime behind a gate that starts as a follower."""
    switch = Switch()
    w.runtime.gate = LeaderGate(switch, w.runtime.manager, w.runtime.watchdog)
    w.runtime.watchdog.on_decision = w.runtime.gate.on_decision
    return switch


def leader_metric(w: World) -> float | None:
    return w.runtime.watchdog.metrics.registry.get_sample_value("watchdog_leader")


async def test_a_follower_samples_and_decides_but_never_acts(tmp_path: Path) -> None:
    """A follower evaluates the breach and keeps the decision visible, opens no
    incident and rolls nothing back; the metric and the status say it follows."""
    async with world(tmp_path) as w:
        follower(w)
        await w.feed("error_rate", [0.01] * 20, also=HEALTHY)
        await w.feed("error_rate", [0.08] * 21, also=HEALTHY)
        assert [d.kind.value for d in w.runtime.watchdog.decisions] == ["rollback"]
        assert await w.runtime.store.recent_incidents() == []
        assert (w.worker_rollbacks(), w.pages_rollbacks()) == (0, 0)
        assert leader_metric(w) == 0
        status = w.runtime.status_extra()["leadership"]
        assert (status["leader"], status["acting"]) == (False, False)


async def test_on_election_a_breach_seen_while_following_is_acted_on_once(
    tmp_path: Path,
) -> None:
    """The old leader died before it opened an incident: the new leader's engine is
    already firing (it will not decide again), so the take-over acts on the decision
    it saw while following, once; the incident then runs to its end."""
    async with world(tmp_path) as w:
        switch = follower(w)
        await w.feed("error_rate", [0.01] * 20, also=HEALTHY)
        await w.feed("error_rate", [0.08] * 21, also=HEALTHY)
        await switch.elect()
        await w.settle()
        assert (w.worker_rollbacks(), w.pages_rollbacks()) == (1, 1)
        assert leader_metric(w) == 1
        await w.feed("error_rate", [0.08] * 4, also=HEALTHY)
        await w.feed("error_rate", [0.001] * 30, also=HEALTHY)
        (record,) = await w.runtime.store.recent_incidents()
        assert record.phase == "resolved"
        assert (w.worker_rollbacks(), w.pages_rollbacks()) == (1, 1)


async def test_a_reelected_replica_restores_and_does_not_act_twice(tmp_path: Path) -> None:
    """Leader, rolls back, loses the lead, wins it again: the open incident comes
    back from the store and its breach is not acted on a second time."""
    async with world(tmp_path) as w:
        switch = follower(w)
        await switch.elect()
        await w.feed("error_rate", [0.01] * 20, also=HEALTHY)
        await w.feed("error_rate", [0.08] * 21, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        await switch.depose()
        assert w.runtime.manager.open == {}
        await switch.elect()
        await w.settle()
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase.value in ("verifying", "monitoring")
        await w.feed("error_rate", [0.001] * 30, also=HEALTHY)
        (record,) = await w.runtime.store.recent_incidents()
        assert record.phase == "resolved"
        assert (w.worker_rollbacks(), w.pages_rollbacks()) == (1, 1)


async def test_deposed_mid_rollback_stops_at_once_and_the_next_leader_reconciles(
    tmp_path: Path,
) -> None:
    """The lead is lost while the Worker's create-deployment hangs (applied, no
    answer yet): the rollback in flight is cancelled, its intent stays in the
    journal; the next election reads what is live, records it done without posting
    again, and the incident goes on to resolve. One rollback in total."""
    async with world(tmp_path) as w:
        release = asyncio.Event()

        async def stalled(_seconds: float) -> None:
            await release.wait()

        w.cloudflare._sleep = stalled  # the stall ends when the test says so
        w.cloudflare.stall_after_apply(
            "POST", "/accounts/{account}/workers/scripts/{script}/deployments", 60.0
        )
        switch = follower(w)
        await switch.elect()
        await w.feed("error_rate", [0.01] * 20, also=HEALTHY)
        for _ in range(21):  # the breach, without waiting for the (hanging) actions
            w.clock.set(w.clock.now() + 15)
            for signal, value in (("error_rate", 0.08), ("p95", 0.4)):
                w.runtime.watchdog.observe(signal, Sample.of(w.clock.now(), value, 1000), "prom")
        for _ in range(POLLS):
            if w.worker_rollbacks() == 1:
                break
            await asyncio.sleep(0.01)
        assert w.worker_rollbacks() == 1
        assert w.worker_live() == [(w.versions["v2"], 100.0)]  # applied; answer pending
        await switch.depose()
        assert not w.runtime.gate.acting
        unfinished = [a.key.split("/", 1)[1] for a in await w.runtime.store.unfinished_actions()]
        assert "rollback/worker" in unfinished
        release.set()
        await switch.elect()
        await w.settle()
        assert "reconciled" in [e.kind for e in await w.events()]
        await w.feed("error_rate", [0.001] * 30, also=HEALTHY)
        (record,) = await w.runtime.store.recent_incidents()
        assert record.phase == "resolved"
        assert (w.worker_rollbacks(), w.pages_rollbacks()) == (1, 1)


async def test_a_silence_set_through_another_replica_holds_on_the_leader(
    tmp_path: Path,
) -> None:
    """Replicas share the store, and any of them may take a silence through its API:
    the leader reads the silences again before it acts, so it does not roll back."""
    async with world(tmp_path) as w:
        switch = follower(w)
        await switch.elect()
        other_replica = Silences(w.runtime.store, w.clock)
        await other_replica.add([], duration_s=3600, created_by="bob", comment="by hand")
        assert w.runtime.silences.active() == []  # the leader has not seen it yet
        await w.feed("error_rate", [0.01] * 20, also=HEALTHY)
        await w.feed("error_rate", [0.08] * 21, also=HEALTHY)
        assert (w.worker_rollbacks(), w.pages_rollbacks()) == (0, 0)
        would = await w.events("would_rollback")
        assert would
        assert "silenced by bob" in str(would[0].data["why"])


@pytest.mark.parametrize("acting", [True, False])
async def test_ticks_go_through_only_while_acting(tmp_path: Path, acting: bool) -> None:
    """The incident ticker reaches the manager only on the leader."""
    async with world(tmp_path) as w:
        switch = follower(w)
        if acting:
            await switch.elect()
        ticked: list[bool] = []

        async def tick() -> None:
            ticked.append(True)

        w.runtime.manager.tick = tick  # type: ignore[method-assign]
        await w.runtime.gate.tick()
        assert ticked == ([True] if acting else [])
