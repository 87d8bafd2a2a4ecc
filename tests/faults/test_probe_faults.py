"""Fault matrix, the probe source: under the demo's virtual clock, and against a
health endpoint whose body does not decode. A loopback server answers; the real
probe source (and, for the undecodable body, the live sampling loop and engine)
reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from tests.faults.servers import FaultyServer, Hit, Reply, faulty_server
from tests.faults.support import source_rig
from watchdog.clock import AutoClock
from watchdog.core.decision import DecisionKind
from watchdog.core.evaluator import State
from watchdog.demo.transport import BusyTransport
from watchdog.model import SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import ProbeSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.probe import ProbeSource

PROBE_RULES = """
version: 1
defaults: {{interval: 15s, blind_after: 1m}}
sources:
  app: {{type: probe, url: "{url}/health", timeout: {timeout}}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
rules:
  - {{name: breach, signal: app.up, below: 1, for: 1m, severity: critical,
     rollback: [worker]}}
"""


class Health:
    """A health endpoint: 200 "ok", or a body whose Content-Encoding lies."""

    def __init__(self) -> None:
        self.undecodable = False

    def __call__(self, hit: Hit) -> Reply:
        if self.undecodable:  # says gzip, is not: httpx raised DecodingError on it
            return Reply(
                200, b"ok, not gzip", "text/plain", headers=(("Content-Encoding", "gzip"),)
            )
        return Reply(200, b"ok", "text/plain")


@pytest.fixture
async def health() -> AsyncIterator[tuple[FaultyServer, Health]]:
    behaviour = Health()
    async with faulty_server(behaviour) as server:
        yield server, behaviour


def signals(spec: ProbeSourceSpec) -> list[ResolvedSignal]:
    return [
        ResolvedSignal(name, "app", spec, SignalSpec(source="app", field=name), "number", 15.0)
        for name in ("up", "latency")
    ]


async def test_probe_works_under_the_demos_virtual_clock(
    health: tuple[FaultyServer, Health],
) -> None:
    """``demo --virtual-time`` sends HTTP through ``BusyTransport``: the probe read
    ``Response.elapsed``, which raised on every sample (site-down was blind). The
    latency is now measured on the injected clock."""
    server, _ = health
    clock = AutoClock(1_790_000_000.0)
    spec = ProbeSourceSpec(type="probe", url=f"{server.url}/health", timeout=5.0)
    async with httpx.AsyncClient(transport=BusyTransport(clock)) as http:
        source = ProbeSource("app", spec, SourceDeps(http=http, clock=clock))
        samples = await source.sample(signals(spec), clock.now())
    assert samples["up"].kind is SampleKind.VALUE
    assert samples["up"].value == 1.0
    assert samples["latency"].kind is SampleKind.VALUE
    assert samples["latency"].value >= 0.0


async def test_an_undecodable_body_is_a_failed_probe_logged_once(
    tmp_path: Path, health: tuple[FaultyServer, Health]
) -> None:
    """A body that does not decode is down (evidence, the rule fires), not blind
    with an error-level traceback every interval; the failure is logged once, and
    the recovery once."""
    server, behaviour = health
    async with source_rig(tmp_path, PROBE_RULES, server.url) as rig:
        with capture_logs() as logs:
            behaviour.undecodable = True
            during = await rig.rounds(6)
            behaviour.undecodable = False
            after = await rig.rounds(2)
    for sample in during:
        assert sample.kind is SampleKind.VALUE, sample
        assert sample.value == 0.0
        assert "gzip body does not decode" in sample.reason
    assert [s.value for s in after] == [1.0, 1.0]
    assert rig.decisions(DecisionKind.BLIND) == []
    assert len(rig.decisions(DecisionKind.ROLLBACK)) == 1  # down for 75 s > for: 1m
    assert rig.state() is not State.BLIND
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    failed = [e for e in logs if e["event"] == "probe failed"]
    assert len(failed) == 1
    assert "gzip body does not decode" in failed[0]["reason"]
    assert len([e for e in logs if e["event"] == "probe succeeded again"]) == 1
