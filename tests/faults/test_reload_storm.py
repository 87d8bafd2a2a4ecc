"""Fault matrix, reload storms: a reload every 0.5 s (a CI loop hitting /-/reload, a
flapping ConfigMap) against sources that take 5 s to answer. Before, every reload
restarted every sampling loop, so no sample ever finished: the rule froze and no
blind alarm came (3 samples in 45 s against the real daemon).

The rig: the real ``Watchdog`` and engine on a virtual clock, its rules loaded from
a file the storm rewrites, and a source whose answers take ``ANSWER_S`` of that
clock (a slow Prometheus), built through the daemon's source factory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from tests.faults.support import T0
from watchdog.clock import FakeClock
from watchdog.core.decision import DecisionKind
from watchdog.metrics import Metrics
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal, load_rules
from watchdog.rules.model import SourceSpec
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import Source, SourceDeps

ANSWER_S = 5.0
STORM_PERIOD_S = 0.5
RULES = """
version: 1
defaults: {{interval: 15s, blind_after: 1m}}
sources:
  steady: {{type: prometheus, url: "http://127.0.0.1:9", timeout: 10s}}
  flappy: {{type: prometheus, url: "http://127.0.0.1:9", timeout: 10s}}
signals:
  steady_errors: {{source: steady, query: "errors", unit: ratio}}
  flappy_errors: {{source: flappy, query: "errors", unit: ratio}}
{extra_signal}
targets:
  worker: {{type: cloudflare-worker, script: api}}
rules:
  - {{name: steady, signal: steady_errors, above: 5%, for: 1m, severity: critical,
     rollback: [worker]}}
  - {{name: flappy, signal: flappy_errors, above: 5%, for: 1m, severity: critical,
     rollback: [worker]}}
{extra_rule}
"""
# Toggled by a changing storm: one more signal (and its rule) on the flappy source,
# so the flappy loop's signals change and it restarts, while the flappy rule and its
# signal stay as they were (their state must carry across).
EXTRA_SIGNAL = '  flappy_p95: {source: flappy, query: "p95", unit: seconds}'
EXTRA_RULE = """  - {name: flappy-p95, signal: flappy_p95, above: 2s, for: 1m, severity: critical,
     rollback: [worker]}"""


class SlowSource:
    """Answers 8 % errors (a breach) after ``ANSWER_S`` seconds of the clock."""

    def __init__(self, name: str, clock: FakeClock, answered: list[tuple[str, float]]) -> None:
        self.name = name
        self.clock = clock
        self.answered = answered

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        await self.clock.sleep(ANSWER_S)
        self.answered.append((self.name, self.clock.now()))
        return {signal.name: Sample.of(now, 0.08) for signal in signals}

    async def aclose(self) -> None:
        """Holds nothing."""


class Storm:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "rules.yaml"
        self.write(extra=False)
        self.clock = FakeClock(T0)
        self.answered: list[tuple[str, float]] = []

        def factory(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
            return SlowSource(name, self.clock, self.answered)

        self.watchdog = Watchdog(
            load_rules([self.path]),
            SourceDeps(http=None, clock=self.clock),  # type: ignore[arg-type]
            Metrics(),
            [str(self.path)],
            source_factory=factory,
        )

    def write(self, extra: bool) -> None:
        self.path.write_text(
            RULES.format(
                extra_signal=EXTRA_SIGNAL if extra else "",
                extra_rule=EXTRA_RULE if extra else "",
            )
        )

    async def run(self, seconds: float, change_flappy: bool) -> None:
        """A reload every ``STORM_PERIOD_S`` for ``seconds`` of the clock."""
        for i in range(int(seconds / STORM_PERIOD_S)):
            if change_flappy:
                self.write(extra=i % 2 == 0)
            assert await self.watchdog.reload()
            await self.clock.advance(STORM_PERIOD_S)

    def answers(self, source: str) -> list[float]:
        return [at - T0 for name, at in self.answered if name == source]

    def decisions(self, rule: str, kind: DecisionKind) -> list[float]:
        return [
            d.decided_at - T0 for d in self.watchdog.decisions if d.rule == rule and d.kind is kind
        ]


async def test_a_storm_of_unchanged_reloads_changes_nothing(tmp_path: Path) -> None:
    """180 reloads of the same rules in 90 s: sampling keeps its 15 s schedule and
    the breach fires after its minute, as without the storm."""
    storm = Storm(tmp_path)
    await storm.watchdog.start()
    try:
        await storm.run(90.0, change_flappy=False)
    finally:
        await storm.watchdog.stop(timeout_s=1.0)
    assert storm.answers("steady") == [5.0, 20.0, 35.0, 50.0, 65.0, 80.0]
    assert storm.decisions("steady", DecisionKind.ROLLBACK) == [60.0]
    assert storm.decisions("steady", DecisionKind.BLIND) == []


async def test_a_storm_that_changes_one_source_starves_only_it_and_it_goes_blind_on_time(
    tmp_path: Path,
) -> None:
    """Every reload adds or removes a signal of the flappy source, so its loop
    restarts every 0.5 s and never finishes a 5 s answer. The steady source keeps
    its schedule and its breach fires; the flappy rule gets the blind alarm within
    blind_after (1m) of its first missed deadline (interval 15s + timeout 10s + 1s
    backstop: 26 s) plus one interval, not never."""
    storm = Storm(tmp_path)
    await storm.watchdog.start()
    try:
        await storm.run(120.0, change_flappy=True)
    finally:
        await storm.watchdog.stop(timeout_s=1.0)
    assert storm.answers("flappy") == []
    assert storm.answers("steady")[:6] == [5.0, 20.0, 35.0, 50.0, 65.0, 80.0]
    assert storm.decisions("steady", DecisionKind.ROLLBACK) == [60.0]
    (blind,) = storm.decisions("flappy", DecisionKind.BLIND)
    assert blind <= 26.0 + 60.0 + 15.0
    assert storm.decisions("flappy", DecisionKind.ROLLBACK) == []
    why = next(d.why for d in storm.watchdog.decisions if d.kind is DecisionKind.BLIND)
    assert "sampling missed its deadlines" in why


async def test_concurrent_reloads_are_coalesced(tmp_path: Path) -> None:
    """Twenty reload requests at once: one load runs, one more covers all the
    requests that came while it ran; every caller gets the answer."""
    storm = Storm(tmp_path)
    results = await asyncio.gather(*(storm.watchdog.reload() for _ in range(20)))
    assert results == [True] * 20
    loads = storm.watchdog.metrics.registry.get_sample_value(
        "watchdog_rules_reloads_total", {"result": "success"}
    )
    assert loads == 2
