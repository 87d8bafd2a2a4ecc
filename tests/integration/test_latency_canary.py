"""Latency canaries against the local Cloudflare API on a real loopback socket (issue 16):
the README's example rules (``rules/examples/canary-latency.yaml``), the real
``cloudflare`` source in ``mode: versions`` counting each version's requests slower
than the rule's bound through the telemetry query API, the real engine, and the
Worker's front door routing 10 requests/s by the split. Virtual time: the source
reads every minute, a minute late, as the example says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.helpers import T0, CloudflareStack, InstantClock, cloudflare_stack
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour, WorkerEdge
from watchdog.model import Split
from watchdog.rules.load import RuleSet, load_rules
from watchdog.rules.model import CloudflareSourceSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_versions import CloudflareVersionsSource

EXAMPLE = Path(__file__).resolve().parents[2] / "rules" / "examples" / "canary-latency.yaml"
SIGNAL = "edge.versions"
# A Worker that answers in 120 ms (median), a few requests slower.
QUICK = Behaviour(error_ratio=0.002, wall_ms=120.0, wall_sigma=0.4)


@dataclass
class World:
    stack: CloudflareStack
    rules: RuleSet
    edge: WorkerEdge
    old: str
    new: str
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = Engine(self.rules)

    @property
    def fake(self) -> FakeCloudflare:
        return self.stack.fake

    def deploy(self, percentage: float) -> None:
        self.fake.deploy(
            "api", [(self.new, percentage), (self.old, 100 - percentage)], "canary", created_on=T0
        )
        split = Split("worker", "dep", self.new, self.old, percentage, T0)
        self.engine.split("worker", split)

    async def run(self, minutes: int) -> list[Decision]:
        """10 requests/s through the front door; a read of the telemetry every minute."""
        spec = self.rules.sources["edge"]
        assert isinstance(spec, CloudflareSourceSpec)
        deps = SourceDeps(
            http=self.stack.http,
            clock=self.stack.clock,
            cloudflare_api_url=self.stack.base_url,
            cloudflare_api_token=SecretStr(self.fake.token),
            cloudflare_account_id=self.fake.account_id,
        )
        source = CloudflareVersionsSource("edge", spec, deps)
        decisions: list[Decision] = []
        for second in range(minutes * 60):
            now = T0 + second
            self.stack.clock._now = now
            self.edge.simulate(now, 10)
            if second % 60 == 59:
                sample = (await source.sample([self.rules.signals[SIGNAL]], now))[SIGNAL]
                decisions += self.engine.observe(SIGNAL, sample).decisions
        return decisions


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = InstantClock(T0 - 3600)
    fake = FakeCloudflare(clock=clock, seed=16)
    old = fake.publish("api", "v2", created_on=T0 - 86400)
    new = fake.upload_version("api", "v3", created_on=T0 - 60)
    fake.telemetry.delay_s = 60.0
    edge = fake.edge("api")
    edge.behaviours[old] = QUICK
    edge.simulate(T0 - 3600, 10)  # Workers Logs on: the keys exist in the last day
    async with cloudflare_stack(fake, clock=clock) as stack:
        yield World(stack, load_rules([EXAMPLE]), edge, old, new)


async def test_a_version_slow_on_a_fifth_of_requests_is_caught_at_ten_percent(
    world: World,
) -> None:
    """v3 takes ten times as long on a fifth of its requests (over 500 ms): the latency
    canary rolls it back at 10 %, saying how often each version was slow; errors are
    equal, so the error canary stays quiet."""
    world.edge.behaviours[world.new] = Behaviour(
        error_ratio=0.002, wall_ms=120.0, wall_sigma=0.4, slow_share=0.2, slow_factor=10.0
    )
    world.deploy(10.0)
    decisions = await world.run(10)
    (decision,) = decisions
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.rule == "canary-latency"
    assert decision.targets == ("worker",)
    evidence = decision.extra["canary"]
    assert evidence["counted"] == "slow"
    assert evidence["slower_than_s"] == 0.5
    assert evidence["new_percentage"] == 10.0
    assert 0.1 < evidence["new_slow"] / evidence["new_requests"] < 0.3
    assert evidence["old_slow"] / evidence["old_requests"] < 0.01
    assert evidence["e_value"] >= 1000  # 99.9 %
    assert "is slower than 500ms more often than the old" in decision.why
    assert f"deploy 100% of {world.old}" in decision.why
    assert decision.decided_at - T0 <= 300  # minutes, not the whole ramp
    assert world.engine.states["canary-errors"].state is State.INCONCLUSIVE


async def test_a_slow_ish_old_and_new_alike_are_not_rolled_back(world: World) -> None:
    """Both versions slow-ish alike (median 300 ms: about 15 % over 500 ms) for 30
    minutes: inconclusive, never a rollback."""
    slowish = Behaviour(error_ratio=0.002, wall_ms=300.0, wall_sigma=0.5)
    world.edge.behaviours[world.old] = world.edge.behaviours[world.new] = slowish
    world.deploy(10.0)
    assert await world.run(30) == []
    state = world.engine.states["canary-latency"]
    assert state.state is State.INCONCLUSIVE
    test = world.engine.canaries.tests["canary-latency"]
    assert test.new.slow is not None
    assert test.new.slow > 10  # slow requests were seen on both, alike
    assert test.old.slow is not None
    assert test.old.slow > 100


async def test_no_traffic_on_the_new_version_is_inconclusive(world: World) -> None:
    world.edge.behaviours[world.new] = Behaviour(wall_ms=2000.0)  # would be slow, if reached
    world.deploy(0.0)
    assert await world.run(10) == []
    state = world.engine.states["canary-latency"]
    assert state.state is State.INCONCLUSIVE
    assert f"no traffic on the new version {world.new}" in state.blind_reason


async def test_telemetry_down_is_blind_never_a_rollback(world: World) -> None:
    world.edge.behaviours[world.new] = Behaviour(wall_ms=2000.0)
    world.fake.fail("POST", "/accounts/{a}/workers/observability/telemetry/query", 503, times=None)
    world.deploy(10.0)
    decisions = await world.run(10)
    assert [d.kind for d in decisions if d.rule == "canary-latency"] == [DecisionKind.BLIND]
    state = world.engine.states["canary-latency"]
    assert state.state is State.BLIND
    assert "503" in state.blind_reason
