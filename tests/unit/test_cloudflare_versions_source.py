"""The cloudflare source in ``mode: versions`` against the local Cloudflare API on a
real loopback socket: counts per version from the telemetry query API (late and
sampled, each window once) and from GraphQL only where introspection shows the
version dimension (issue 16)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import pytest
from pydantic import SecretStr

from tests.helpers import T0, CloudflareStack, InstantClock, cloudflare_stack
from watchdog.demo.fakes.cloudflare import FakeCloudflare, Fault
from watchdog.demo.fakes.cloudflare_telemetry import KEYS, Behaviour
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_versions import CloudflareVersionsSource


@dataclass
class World:
    stack: CloudflareStack
    clock: InstantClock
    old: str
    new: str

    @property
    def fake(self) -> FakeCloudflare:
        return self.stack.fake

    def source(
        self, api: Literal["telemetry", "graphql"] = "telemetry"
    ) -> CloudflareVersionsSource:
        spec = CloudflareSourceSpec(
            type="cloudflare", script="api", mode="versions", api=api, delay=60, window=60
        )
        deps = SourceDeps(
            http=self.stack.http,
            clock=self.clock,
            cloudflare_api_url=self.stack.base_url,
            cloudflare_api_token=SecretStr(self.fake.token),
            cloudflare_account_id=self.fake.account_id,
        )
        return CloudflareVersionsSource("cf", spec, deps)


def _signal(field: str) -> ResolvedSignal:
    spec = CloudflareSourceSpec(type="cloudflare", script="api", mode="versions")
    return ResolvedSignal(
        f"cf.{field}", "cf", spec, SignalSpec(source="cf", field=field), "ratio", 15
    )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = InstantClock(T0)
    fake = FakeCloudflare(clock=clock)
    old = fake.publish("api", "old", created_on=T0 - 3600)
    new = fake.upload_version("api", "new", created_on=T0 - 10)
    fake.deploy("api", [(new, 10), (old, 90)], "canary", created_on=T0)
    fake.telemetry.delay_s = 60.0
    async with cloudflare_stack(fake, clock=clock) as stack:
        yield World(stack, clock, old, new)


async def _read(source: CloudflareVersionsSource, at: float, field: str = "versions") -> Sample:
    return (await source.sample([_signal(field)], at))[f"cf.{field}"]


async def test_counts_per_version_each_window_once(world: World) -> None:
    edge = world.fake.edge("api")
    edge.behaviours[world.new] = Behaviour(error_ratio=1.0)
    for second in range(0, 120, 10):
        edge.simulate(T0 + second, 100)
    source = world.source()
    world.clock._now = T0 + 180
    first = await _read(source, T0 + 180)
    assert first.kind is SampleKind.VALUE
    assert first.fresh_to == T0 + 120  # a minute of delay: what it saw ends here
    by = {v.version: v for v in first.versions}
    assert by[world.new].errors == by[world.new].requests > 0
    assert by[world.old].errors == 0
    # The first read looks back one window (1m): [T0+60, T0+120).
    assert by[world.new].requests + by[world.old].requests == 600
    assert by[world.old].p95_s == pytest.approx(0.04)
    again = await _read(source, T0 + 180)  # nothing new delivered: never counted twice
    assert again.kind is SampleKind.NO_DATA


async def test_lines_a_version_logs_are_not_requests_or_errors(world: World) -> None:
    """Workers Logs stores each ``console.log`` line as an event of its own, without an
    outcome. Counting every event would take a release that adds one log line for a
    version that fails every request (outcome "None" is not "ok") and give the old
    version's lines to its share: only invocation events are counted."""
    edge = world.fake.edge("api")
    edge.behaviours[world.new] = Behaviour(log_lines=2)  # healthy, logs twice a request
    edge.behaviours[world.old] = Behaviour(log_lines=0)
    counts = {world.new: 0, world.old: 0}
    for second in range(0, 120, 10):
        served = edge.simulate(T0 + second, 100)
        if second >= 60:  # the first read looks back one window: [T0+60, T0+120)
            for version, (_, n) in served.items():
                counts[version] += n
    world.clock._now = T0 + 180
    sample = await _read(world.source(), T0 + 180)
    assert sample.kind is SampleKind.VALUE, sample.reason
    by = {v.version: v for v in sample.versions}
    assert by[world.new].errors == by[world.old].errors == 0
    assert by[world.new].requests == counts[world.new]  # invocations, not lines
    assert by[world.old].requests == counts[world.old]


async def test_sampling_is_reported_not_hidden(world: World) -> None:
    world.fake.telemetry.head_sampling_rate = 0.5
    world.fake.edge("api").simulate(T0 + 20, 2000)
    world.clock._now = T0 + 130
    sample = await _read(world.source(), T0 + 130)
    assert {v.scale for v in sample.versions} == {2.0}
    assert sample.requests is not None
    assert 800 < sample.requests < 1200  # the events seen: the sample size


async def test_a_source_outage_is_an_error_sample(world: World) -> None:
    world.fake.edge("api").simulate(T0 + 20, 10)
    world.clock._now = T0 + 130
    world.fake.fail("POST", "/accounts/{a}/workers/observability/telemetry/query", 503)
    sample = await _read(world.source(), T0 + 130)
    assert sample.kind is SampleKind.ERROR
    assert "503" in sample.reason


async def test_graphql_without_the_version_dimension_says_what_is_missing(world: World) -> None:
    sample = await _read(world.source("graphql"), T0 + 130)
    assert sample.kind is SampleKind.ERROR
    assert "no scriptVersion dimension" in sample.reason
    assert "api: telemetry" in sample.reason


async def test_graphql_with_the_version_dimension_counts_per_version(world: World) -> None:
    world.fake.graphql_versions()
    edge = world.fake.edge("api")
    edge.behaviours[world.new] = Behaviour(error_ratio=1.0)
    edge.simulate(T0 + 20, 500)
    world.clock._now = T0 + 130
    sample = await _read(world.source("graphql"), T0 + 130)
    by = {v.version: v for v in sample.versions}
    assert by[world.new].errors == by[world.new].requests > 0
    assert by[world.old].errors == 0


async def test_without_the_version_key_every_sample_says_which_key_is_missing(
    world: World,
) -> None:
    """No events carry $workers.scriptVersion.id yet (Workers Logs off, or idle): an
    error naming the key, never counts; once events exist the check passes."""
    source = world.source()
    sample = await _read(source, T0 + 130)
    assert sample.kind is SampleKind.ERROR
    assert "no key $workers.scriptVersion.id" in sample.reason
    world.fake.edge("api").simulate(T0 + 140, 50)
    world.clock._now = T0 + 260
    assert (await _read(source, T0 + 260)).kind is SampleKind.VALUE


def _slow_signal(bound_s: float) -> ResolvedSignal:
    spec = CloudflareSourceSpec(type="cloudflare", script="api", mode="versions")
    signal = SignalSpec(source="cf", field="versions", slower_than=bound_s)
    return ResolvedSignal("cf.versions", "cf", spec, signal, "ratio", 15)


async def test_a_signal_with_a_bound_counts_slow_requests_per_version(world: World) -> None:
    """A latency canary's bound (put on its signal by the rules loader): a second
    query counts each version's events over it; the plain signal has no slow counts."""
    edge = world.fake.edge("api")
    edge.behaviours[world.old] = Behaviour(wall_ms=100.0)
    edge.behaviours[world.new] = Behaviour(wall_ms=100.0, slow_share=0.2, slow_factor=8.0)
    for second in range(60, 120):
        edge.simulate(T0 + second, 10)
    world.clock._now = T0 + 180
    before = world.fake.telemetry.queries
    samples = await world.source().sample([_slow_signal(0.5), _signal("requests")], T0 + 180)
    assert world.fake.telemetry.queries - before == 2  # counts, then slow counts
    by = {v.version: v for v in samples["cf.versions"].versions}
    assert {v.slow_over_s for v in by.values()} == {0.5}
    assert by[world.old].slow == 0
    new = by[world.new]
    assert new.slow is not None
    assert 0.05 < new.slow / new.requests < 0.45
    assert samples["cf.requests"].kind is SampleKind.VALUE


async def test_without_the_wall_time_key_a_bound_is_an_error_naming_it(world: World) -> None:
    """The keys check asks for $workers.wallTimeMs too once a bound is asked for."""
    world.fake.edge("api").simulate(T0 + 20, 10)
    world.clock._now = T0 + 130
    source = world.source()
    assert (await _read(source, T0 + 130)).kind is SampleKind.VALUE
    telemetry_keys = dict(KEYS)
    KEYS.pop("$workers.wallTimeMs")
    try:
        world.fake.edge("api").simulate(T0 + 140, 10)
        world.clock._now = T0 + 260
        sample = (await source.sample([_slow_signal(0.5)], T0 + 260))["cf.versions"]
    finally:
        KEYS.clear()
        KEYS.update(telemetry_keys)
    assert sample.kind is SampleKind.ERROR
    assert "no key $workers.wallTimeMs" in sample.reason


async def test_a_failed_slow_query_fails_the_read_and_reads_the_window_again(
    world: World,
) -> None:
    edge = world.fake.edge("api")
    edge.behaviours[world.new] = Behaviour(wall_ms=900.0)
    edge.simulate(T0 + 90, 100)
    world.clock._now = T0 + 180
    source = world.source()
    path = "/accounts/{a}/workers/observability/telemetry/query"
    await _read(source, T0 + 170)  # the keys checked, [T0+50, T0+110) counted
    edge.simulate(T0 + 115, 100)
    # The counts query answers; the slow one after it fails.
    world.fake.inject(Fault("POST", path, "status", 1, status=503, after=1))
    failed = (await source.sample([_slow_signal(0.5)], T0 + 180))["cf.versions"]
    assert failed.kind is SampleKind.ERROR
    assert "Workers telemetry query (slower than 500ms): HTTP 503" in failed.reason
    again = (await source.sample([_slow_signal(0.5)], T0 + 180))["cf.versions"]
    assert again.kind is SampleKind.VALUE
    assert sum(v.requests for v in again.versions) == 100  # the window, read once


async def test_graphql_cannot_count_slow_requests_and_says_so(world: World) -> None:
    world.fake.graphql_versions()
    sample = (await world.source("graphql").sample([_slow_signal(0.5)], T0 + 130))["cf.versions"]
    assert sample.kind is SampleKind.ERROR
    assert "needs api: telemetry" in sample.reason
