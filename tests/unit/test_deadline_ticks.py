"""The columnar replay ticks the incident manager only at decisions, changes of state
and the manager's ``next_deadline()``; at every other sample time a tick would do
nothing. Proof: the timeline is the same as with a tick at every sample (and as the
step path's, which ticks at every sample by definition), on the bench's data and on
generated histories that open, escalate, roll back, verify and close incidents."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.backtest.columnar_replay import ColumnarReplay, replay_columns
from watchdog.backtest.columns import PointArray, read_points
from watchdog.backtest.recordings import Recording, load_recordings
from watchdog.backtest.replay import Replay
from watchdog.backtest.run import replay_plan
from watchdog.backtest.samples import samples_of
from watchdog.backtest.times import Deployments, load_deployments, parse_deployments
from watchdog.rules.load import RuleSet, load_rules

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_790_000_000.0
STEP = 15.0

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 2m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  a: {source: prom, query: "a", unit: ratio}
  b: {source: prom, query: "b", unit: ratio}
targets:
  worker: {type: cloudflare-worker, script: api}
  frontend: {type: cloudflare-pages, project: site}
notifiers:
  slack: {type: slack}
  oncall: {type: slack}
  lead: {type: slack}
notify: [slack]
rules:
  - {name: a-critical, signal: a, above: 6%, for: 1m, severity: critical, rollback: [worker]}
  - {name: a-high, signal: a, above: 3%, for: 2m, severity: high, rollback: [worker]}
  - {name: b-medium, signal: b, above: 3%, for: 1m, severity: medium}
  - {name: b-high, signal: b, above: 8%, for: 30s, severity: high, rollback: [frontend]}
severities:
  critical: {act: rollback}
  high: {act: rollback, grace: 3m}
  medium: {act: notify, escalate_after: 5m}
  low: {act: notify}
after_rollback:
  verify:
    - {signal: a, below: 1%, within: 2m}
  stable_for: 4m
escalation:
  - {level: 1, name: On-Call, after: 0s, notify: [oncall]}
  - {level: 2, name: Lead, after: 7m, notify: [lead]}
correlation: {enabled: true, max_deploy_age: 2h}
guards: {cooldown: 10m, max_rollbacks_per_hour: 3}
"""

GAP = -1.0  # a missing sample (a hole in the recording)


def _timeline(replay: Replay) -> list[str]:
    return [repr(event) for event in replay.timeline]  # repr: NaN equals itself


def _columnar(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    deployments: Deployments,
    every_sample: bool,
) -> ColumnarReplay:
    lo, hi, replayed = replay_plan(ruleset, recordings)
    replay, _ = asyncio.run(
        replay_columns(ruleset, replayed, lo, hi, deployments, every_sample=every_sample)
    )
    return replay


def _stepped(
    ruleset: RuleSet, recordings: Mapping[str, Recording], deployments: Deployments
) -> Replay:
    lo, hi, replayed = replay_plan(ruleset, recordings)
    replay = Replay(ruleset, deployments)
    asyncio.run(replay.run({name: samples_of(r, lo, hi) for name, r in replayed.items()}))
    return replay


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_backtest", ROOT / "bench/backtest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deadline_ticks_equal_every_sample_on_the_bench_data(tmp_path: Path) -> None:
    """A week of the bench's 20 series and 20 rules: the same timeline, with a
    fraction of the ticks."""
    _bench().write_inputs(tmp_path, 20, 20, int(7 * 86400 / STEP), 1)
    ruleset = load_rules([tmp_path / "rules.yaml"])
    recordings, _ = load_recordings(tmp_path / "series", ruleset, read_points)
    deployments = load_deployments(tmp_path / "series" / "deployments.json")
    fast = _columnar(ruleset, recordings, deployments, every_sample=False)
    every = _columnar(ruleset, recordings, deployments, every_sample=True)
    assert any(e.event == "incident_closed" for e in fast.timeline)
    assert _timeline(fast) == _timeline(every)
    assert fast.ticks < every.ticks / 4


_RUN = st.tuples(
    st.sampled_from([0.002, 0.005, 0.02, 0.04, 0.07, 0.1, math.nan, GAP]),
    st.integers(min_value=1, max_value=40),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, list[float]], list[float]]:
    """Two signals of runs (breaches of every rule, calm, NaN, holes), up to ~3 hours
    at 15 s, and deploys now and then."""
    length = draw(st.integers(min_value=20, max_value=700))
    signals: dict[str, list[float]] = {}
    for name in ("a", "b"):
        values: list[float] = [0.002]  # recorded from the start: the replay has a span
        while len(values) < length:
            value, count = draw(_RUN)
            values += [value] * count
        signals[name] = values[:length]
    deploys = draw(st.lists(st.integers(min_value=-60, max_value=length), max_size=4, unique=True))
    return signals, [T0 + k * STEP for k in sorted(deploys)]


_RULESET: list[RuleSet] = []


def _ruleset(tmp: Path) -> RuleSet:
    if not _RULESET:
        path = tmp / "rules.yaml"
        path.write_text(textwrap.dedent(RULES))
        _RULESET.append(load_rules([path]))
    return _RULESET[0]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history=histories())
def test_deadline_ticks_equal_every_sample_on_generated_histories(
    tmp_path: Path, history: tuple[dict[str, list[float]], list[float]]
) -> None:
    signals, deploy_times = history
    ruleset = _ruleset(tmp_path)
    recordings = {}
    for name, values in signals.items():
        times = np.array([T0 + k * STEP for k in range(len(values))])
        array = np.array(values)
        kept = array != GAP
        recordings[name] = Recording(name, PointArray(times[kept], array[kept]), step=STEP)
    deploys = [{"version": f"v{k}", "at": at} for k, at in enumerate(deploy_times)]
    deployments = parse_deployments({"worker": deploys, "frontend": deploys}, "deploys")
    fast = _columnar(ruleset, recordings, deployments, every_sample=False)
    every = _columnar(ruleset, recordings, deployments, every_sample=True)
    assert _timeline(fast) == _timeline(every)
    assert _timeline(fast) == _timeline(_stepped(ruleset, recordings, deployments))
