"""Version-pinned synthetic flows (issue 16): the flow source runs the example flow
file against a split's new and old version through the override header, on the local
Worker front door and Cloudflare API (real loopback sockets); a canary rule catches a
step broken only in the new version at 0 %, before any user request reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.helpers import T0, CloudflareStack, InstantClock, cloudflare_stack
from watchdog.core.decision import DecisionKind
from watchdog.core.engine import Engine
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour, WorkerEdge
from watchdog.errors import RuleError
from watchdog.http.server import serve
from watchdog.model import SampleKind, Split
from watchdog.rules.flows import load_flow
from watchdog.rules.load import RuleSet, load_rules
from watchdog.rules.model import FlowSourceSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.flow import FlowSource, WrongVersionError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "rules" / "examples" / "canary-flow.yaml"


@dataclass
class World:
    stack: CloudflareStack
    edge: WorkerEdge
    url: str
    old: str
    new: str
    rules: RuleSet

    def source(self) -> FlowSource:
        spec = self.rules.sources["journey"]
        assert isinstance(spec, FlowSourceSpec)
        deps = SourceDeps(
            http=self.stack.http,
            clock=self.stack.clock,
            cloudflare_api_url=self.stack.base_url,
            cloudflare_api_token=SecretStr(self.stack.fake.token),
            cloudflare_account_id=self.stack.fake.account_id,
        )
        return FlowSource("journey", spec.model_copy(update={"url": self.url}), deps)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = InstantClock(T0)
    fake = FakeCloudflare(clock=clock)
    old = fake.publish("api", "v2", created_on=T0 - 86400)
    new = fake.upload_version("api", "v3", created_on=T0 - 60)
    fake.deploy("api", [(new, 0), (old, 100)], "smoke v3 at 0%", created_on=T0)
    edge = fake.edge("api")
    edge.behaviours[new] = Behaviour(broken_paths=("/nda",))  # one step, one version
    async with cloudflare_stack(fake, clock=clock) as stack, serve(edge.router) as srv:
        yield World(stack, edge, srv.url, old, new, load_rules([EXAMPLE]))


async def test_a_step_broken_only_in_the_new_version_is_caught_at_zero_percent(
    world: World,
) -> None:
    engine = Engine(world.rules)
    engine.split("worker", Split("worker", "d", world.new, world.old, 0.0, T0))
    source = world.source()
    decided = None
    for run in range(1, 40):
        at = T0 + 15 * run
        sample = (await source.sample([world.rules.signals["journey.versions"]], at))[
            "journey.versions"
        ]
        assert sample.kind is SampleKind.VALUE
        by = {v.version: v.errors for v in sample.versions}
        assert by == {world.new: 1.0, world.old: 0.0}  # v3 fails the NDA step, v2 passes
        for decision in engine.observe("journey.versions", sample).decisions:
            decided = (run, decision)
        if decided:
            break
    assert decided is not None
    run, decision = decided
    assert decision.kind is DecisionKind.ROLLBACK
    assert run <= 12  # three minutes of 15 s runs
    assert "at 0%" in decision.why
    # Every request to v3 was a pinned flow request: no user traffic reached it.
    v3_served = sum(r.count for r in world.stack.fake.telemetry.rows if r.version == world.new)
    assert v3_served == world.edge.pinned[world.new] > 0


async def test_an_override_that_does_not_apply_is_an_error_never_evidence(world: World) -> None:
    stray = world.stack.fake.upload_version("api", "not deployed")
    source = world.source()
    flow = source._flow
    assert flow is not None
    with pytest.raises(WrongVersionError, match="did not apply"):
        await source.run(flow, stray)


async def test_no_split_is_no_data(world: World) -> None:
    world.stack.fake.deploy("api", [(world.old, 100)], "back", created_on=T0 + 1)
    sample = (await world.source().sample([world.rules.signals["journey.versions"]], T0 + 5))[
        "journey.versions"
    ]
    assert sample.kind is SampleKind.NO_DATA
    assert "no gradual deployment" in sample.reason


def test_flow_file_problems_name_file_and_line(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bad.yaml").write_text(
        "version: 1\nversion_header: x-v\nsteps:\n"
        "  - name: a\n    request: {path: /a}\n    capture: {t: token}\n"
        "  - name: b\n    request: {path: '/b/{{nope}}'}\n"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(EXAMPLE.read_text().replace("flows/checkout.yaml", "flows/bad.yaml"))
    with pytest.raises(RuleError) as caught:
        load_rules([rules])
    text = "\n".join(caught.value.problems)
    assert f"{rules}:7 sources.journey.file" in text
    assert "bad.yaml:6 steps[0].capture: capture 't'" in text
    (flows / "bad.yaml").write_text(
        "version: 1\nversion_header: x-v\nsteps:\n"
        "  - name: a\n    request: {path: /a}\n    capture: {t: $.token}\n"
        "  - name: b\n    request: {path: '/b/{{nope}}'}\n"
    )
    flow, problems = load_flow(flows / "bad.yaml")
    assert flow is None
    assert problems == [
        f"{flows / 'bad.yaml'}:8 steps[1].request: {{{{nope}}}} is not captured by an earlier step"
    ]
