"""The live daemon shows a confidence rule's inconclusive state and its evidence: the
status JSON, the ``status`` table's text and the ``watchdog_rule_state`` metric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.factories import T0
from watchdog.api.app import status_snapshot
from watchdog.clock import FakeClock
from watchdog.metrics import Metrics
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal, load_rules
from watchdog.rules.model import SourceSpec
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import Source, SourceDeps

RULES = """
version: 1
defaults: {interval: 1m, blind_after: 5m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
rules:
  - {name: sure, signal: error_rate, above: 5%, confidence: 99%, window: 5m,
     severity: critical}
"""


class QuietSource:
    """One request a minute, the third of them failing: too little to tell."""

    def __init__(self) -> None:
        self.name = "prom"
        self.calls = 0

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        self.calls += 1
        errors = 1.0 if self.calls == 3 else 0.0
        return {s.name: Sample.ratio(now, errors, 1.0) for s in signals}

    async def aclose(self) -> None:
        return None


async def test_inconclusive_is_shown_with_its_evidence(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    clock = FakeClock(T0)

    def factory(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
        return QuietSource()

    deps = SourceDeps(http=httpx.AsyncClient(), clock=clock)
    watchdog = Watchdog(load_rules([path]), deps, Metrics(), [str(path)], source_factory=factory)
    await watchdog.start()
    await clock.advance(240)
    await watchdog.stop()
    (rule,) = status_snapshot(watchdog)["rules"]
    assert rule["state"] == "inconclusive"
    assert rule["evidence"]["errors"] == 1.0
    assert rule["evidence"]["requests"] == 5.0
    assert rule["evidence_text"].startswith("1 errors / 5 requests, 99% interval 0.")
    assert not watchdog.decisions
    registry = watchdog.metrics.registry
    labels = {"rule": "sure", "state": "inconclusive"}
    assert registry.get_sample_value("watchdog_rule_state", labels) == 1
