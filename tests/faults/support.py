"""The metrics-source rig: a real ``Watchdog`` (its sampling loop, the real source,
the engine and its metrics) against a misbehaving loopback server, on a virtual
clock that the test moves one sampling interval at a time.

Each ``round()`` advances the clock to the loop's next deadline and then waits
(bounded, on an event, never a sleep) until that round's sample has gone through
the engine. A sampling loop that died would never set the event: the round fails
with that message instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from watchdog.clock import FakeClock
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Observation
from watchdog.core.evaluator import State
from watchdog.metrics import Metrics
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps

T0 = 1_790_000_000.0
INTERVAL = 15.0
ROUND_TIMEOUT_S = 20.0  # real seconds: generous for a loaded CI machine, bounded
RULE = "breach"
SOURCE = "app"

PROMETHEUS_RULES = """
version: 1
defaults: {{interval: 15s, blind_after: 1m}}
sources:
  app: {{type: prometheus, url: "{url}", timeout: {timeout}}}
signals:
  errors: {{source: app, query: "job:http_errors:ratio_rate1m", unit: ratio}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
rules:
  - {{name: breach, signal: errors, above: 5%, for: 1m, severity: critical,
     rollback: [worker]}}
"""

SCRAPE_RULES = """
version: 1
defaults: {{interval: 15s, blind_after: 1m}}
sources:
  app: {{type: scrape, url: "{url}/metrics", timeout: {timeout}, max_bytes: 1000000}}
signals:
  errors: {{source: app, kind: error_ratio, metric: http_requests_total}}
  p95: {{source: app, kind: quantile, metric: http_request_duration_seconds}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
rules:
  - {{name: breach, signal: {signal}, above: {threshold}, for: 1m, min_requests: 100,
     severity: critical, rollback: [worker]}}
"""


@dataclass
class SourceRig:
    watchdog: Watchdog
    clock: FakeClock
    seen: list[Observation] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _hook(self, observation: Observation) -> None:
        self.seen.append(observation)
        self._arrived.set()

    async def round(self, first: bool = False) -> Sample:
        """One sampling round through the live loop; the sample it produced."""
        self._arrived.clear()
        if not first:
            await self.clock.advance(INTERVAL)
        try:
            await asyncio.wait_for(self._arrived.wait(), ROUND_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(
                f"no sample within {ROUND_TIMEOUT_S}s: the sampling loop is stuck or dead"
            ) from None
        return self.seen[-1].sample

    async def rounds(self, count: int) -> list[Sample]:
        return [await self.round() for _ in range(count)]

    def state(self) -> State:
        return self.watchdog.engine.states[RULE].state

    def decisions(self, kind: DecisionKind | None = None) -> list[Decision]:
        return [d for d in self.watchdog.decisions if kind is None or d.kind is kind]

    def metric(self, name: str, **labels: str) -> float:
        value = self.watchdog.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def blind_gauge(self) -> float:
        return self.metric("watchdog_rule_blind", rule=RULE)

    def source_errors(self) -> float:
        return sum(
            self.metric("watchdog_source_errors_total", source=SOURCE, kind=kind.value)
            for kind in (SampleKind.ERROR, SampleKind.NO_DATA)
        )


@contextlib.asynccontextmanager
async def source_rig(
    tmp_path: Path, rules: str, url: str, source_timeout: str = "300ms", **fields: str
) -> AsyncIterator[SourceRig]:
    """A started ``Watchdog`` whose first round has been taken."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules.format(url=url, timeout=source_timeout, **fields))
    clock = FakeClock(T0)
    async with httpx.AsyncClient() as http:
        deps = SourceDeps(http=http, clock=clock)
        watchdog = Watchdog(load_rules([path]), deps, Metrics(), [str(path)])
        rig = SourceRig(watchdog, clock)
        watchdog.observers.append(rig._hook)
        await watchdog.start()
        try:
            await rig.round(first=True)
            yield rig
        finally:
            await watchdog.stop(timeout_s=1.0)


def log_text(logs: Sequence[Mapping[str, Any]]) -> str:
    """Captured structlog events as one searchable text."""
    return "\n".join(" ".join(f"{k}={v}" for k, v in entry.items()) for entry in logs)


def finite(value: float) -> bool:
    return not math.isnan(value) and not math.isinf(value)
