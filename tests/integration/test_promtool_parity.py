"""Parity with Prometheus: for the default ``for:`` semantics the watchdog fires at
exactly the evaluations where Prometheus fires.

24 varied series (steps, spikes one sample short of ``for:``, oscillation at the
threshold, gaps, NaN, ramps, ``below`` rules, ``for: 0s``, seeded random walks) go
through the backtest's columnar replay (``ColumnarReplay``: the columnar
evaluator feeding the live engine states and incident manager); the step path
(``core.evaluator.step``, through ``Replay``) must agree with it at every
evaluation. From what it computes
we write a ``promtool test rules`` file with an equivalent alerting rule per series
(``expr: s_i > threshold``, same ``for:``) and, for every rule at every evaluation
time, ``exp_alerts`` = firing or nothing. The real promtool must pass it; and a
negative control (one firing time shifted by one step) must fail, so the check has
teeth.

A gap is blind for us and resets ``for:``; in promtool ``_`` would keep the previous
value for the 5m lookback, so our gaps are written as ``stale`` markers there.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from watchdog.backtest.columnar_replay import ColumnarReplay, track
from watchdog.backtest.columns import from_samples
from watchdog.backtest.replay import Replay
from watchdog.backtest.samples import value_sample
from watchdog.backtest.series_notation import MISSING, STALE, Point, compact, expand
from watchdog.core.evaluator import State
from watchdog.model import Sample
from watchdog.rules.load import load_rules

pytestmark = pytest.mark.integration

STEP = 15
LENGTH = 160  # evaluations per series: 40 minutes at 15s


@dataclass(frozen=True)
class Case:
    name: str
    values: str  # our expanding notation; _ is a gap
    threshold: float
    for_: str
    comparison: str = "above"


def cases() -> list[Case]:
    handmade = [
        Case("step", "0.01x19 0.08x80 0.01x58", 0.05, "5m"),
        Case("step_short", "0.01x19 0.08x18 0.01x120", 0.05, "5m"),  # 19 samples: 4m30s
        Case("step_exact", "0.01x19 0.08x20 0.01x118", 0.05, "5m"),  # exactly for:
        Case("equal_is_not_a_breach", "0.05x79 0.051x79", 0.05, "1m"),
        Case("oscillation", " ".join(["0.051 0.049"] * 80), 0.05, "15s"),
        Case("two_up_one_down", " ".join(["0.06 0.06 0.04"] * 53) + " 0.06", 0.05, "30s"),
        Case("gap_in_breach", "0.01x9 0.08x15 _ 0.08x40 0.01x91", 0.05, "5m"),
        Case("gap_while_firing", "0.08x40 _x3 0.08x40 0.01x74", 0.05, "2m"),
        Case("nan_in_breach", "0.08x30 NaN 0.08x30 0.01x96", 0.05, "5m"),
        Case("stale_markers", "0.08x10 stale 0.08x30 stale stale 0.08x114", 0.05, "1m"),
        Case("ramp_up", "0.01+0.001x159", 0.1, "3m"),
        Case("ramp_down_below", "1-0.01x159", 0.5, "2m", "below"),
        Case("below_dips", " ".join(["1 1 1 0.2 0.2 0.2 0.2 0.2"] * 20), 0.5, "45s", "below"),
        Case("for_zero", "0.01x9 0.08 0.01x9 0.08x5 0.01x132", 0.05, "0s"),
        Case("leading_gap", "_x30 0.08x100 0.01x28", 0.05, "5m"),
        Case("long_breach_with_spikes_down", "0.08x50 0.01 0.08x50 0.01 0.08x55", 0.05, "10m"),
    ]
    rng = random.Random(20261128)
    randomized = []
    for index in range(8):
        threshold = 0.05
        items: list[str] = []
        level = 0.03
        while len(items) < LENGTH:
            roll = rng.random()
            if roll < 0.08:
                items.append("_")
                continue
            level = min(max(level + rng.choice([-0.02, -0.01, 0.0, 0.01, 0.02]), 0.0), 0.12)
            items.append(f"{level:.2f}")
        randomized.append(
            Case(
                f"random_{index}",
                " ".join(items[:LENGTH]),
                threshold,
                rng.choice(["30s", "1m", "2m", "5m"]),
            )
        )
    return handmade + randomized


def _series(case: Case) -> list[Point]:
    points = expand(case.values)
    assert len(points) == LENGTH, f"{case.name}: {len(points)} values"
    return points


def rules_yaml(all_cases: list[Case]) -> str:
    signals = "\n".join(
        f"  s{i}: {{source: prom, query: q{i}, unit: number}}" for i in range(len(all_cases))
    )
    rules = "\n".join(
        f"  - {{name: r{i}, signal: s{i}, {c.comparison}: {c.threshold}, for: {c.for_}, "
        "severity: low}"
        for i, c in enumerate(all_cases)
    )
    return (
        "version: 1\n"
        "defaults: {interval: 15s, blind_after: 1h}\n"
        "sources:\n  prom: {type: prometheus, url: 'http://127.0.0.1:9'}\n"
        f"signals:\n{signals}\nrules:\n{rules}\n"
    )


def our_firing(tmp_path: Path, all_cases: list[Case]) -> dict[str, set[int]]:
    """Per rule, the evaluation indexes at which the columnar replay says firing
    (its firing spans), checked against the step path's state at every evaluation."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(all_cases))
    ruleset = load_rules([path])
    streams: dict[str, list[Sample]] = {}
    for i, case in enumerate(all_cases):
        stream = []
        for k, point in enumerate(_series(case)):
            at = float(k * STEP)
            if isinstance(point, float):
                stream.append(value_sample(at, point))
            else:
                stream.append(Sample.no_data(at, f"gap ({point.value})"))
        streams[f"s{i}"] = stream
    replay = Replay(ruleset, ignore_deploys=True)
    firing: dict[str, set[int]] = {f"r{i}": set() for i in range(len(all_cases))}

    def snapshot(at: float) -> None:
        for name, state in replay.engine.states.items():
            if state.state is State.FIRING:
                firing[name].add(round(at / STEP))

    asyncio.run(replay.run(streams, after=snapshot))
    columnar = ColumnarReplay(
        ruleset,
        {name: from_samples(stream) for name, stream in streams.items()},
        {
            rule.name: track(rule, from_samples(streams[rule.signal]), ruleset.blind_after(rule))
            for rule in ruleset.rules
        },
        ignore_deploys=True,
    )
    asyncio.run(columnar.run(columnar.streams()))
    fired: dict[str, set[int]] = {name: set() for name in firing}
    for name, spans in columnar.spans.items():
        for state, since, until in spans:
            if state is State.FIRING:
                fired[name] |= set(range(round(since / STEP), round(until / STEP)))
    # The last span ends at the last sample, which is still in it.
    last = (LENGTH - 1) * STEP
    for name, spans in columnar.spans.items():
        if spans and spans[-1][0] is State.FIRING and spans[-1][2] == last:
            fired[name].add(LENGTH - 1)
    assert fired == firing, "the columnar replay and the step path disagree"
    return fired


def promtool_files(directory: Path, all_cases: list[Case], firing: dict[str, set[int]]) -> Path:
    groups = [
        {
            "name": "parity",
            "interval": f"{STEP}s",
            "rules": [
                {
                    "alert": f"r{i}",
                    "expr": f"s{i} {'>' if c.comparison == 'above' else '<'} {c.threshold}",
                    "for": c.for_,
                }
                for i, c in enumerate(all_cases)
            ],
        }
    ]
    (directory / "parity_rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    input_series = [
        {
            "series": f"s{i}",
            # Our gap (no data, blind) is a staleness marker for Prometheus.
            "values": compact([STALE if p is MISSING else p for p in _series(case)]),
        }
        for i, case in enumerate(all_cases)
    ]
    alert_tests = [
        {
            "eval_time": f"{k * STEP}s",
            "alertname": f"r{i}",
            "exp_alerts": [{"exp_labels": {}}] if k in firing[f"r{i}"] else [],
        }
        for i in range(len(all_cases))
        for k in range(LENGTH)
    ]
    test = {
        "rule_files": ["parity_rules.yml"],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {"interval": f"{STEP}s", "input_series": input_series, "alert_rule_test": alert_tests}
        ],
    }
    path = directory / "parity_test.yml"
    path.write_text(yaml.safe_dump(test, width=100_000))
    return path


@pytest.fixture
def promtool() -> str:
    """``promtool`` (Debian package prometheus); skip without it, fail under CI."""
    path = shutil.which("promtool")
    if path is None and Path("/usr/bin/promtool").exists():
        path = "/usr/bin/promtool"
    if path is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the parity test")
        pytest.skip(message)
    return path


def run_promtool(promtool: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cases_are_varied_and_fire() -> None:
    """At least 20 series, and the set is not trivial: most rules fire somewhere,
    some never do."""
    all_cases = cases()
    assert len(all_cases) >= 20
    assert len({c.name for c in all_cases}) == len(all_cases)


def test_firing_times_match_promtool(tmp_path: Path, promtool: str) -> None:
    """promtool, asserting at every evaluation exactly the firing times our engine
    computed for 24 series, passes; shifting one firing time makes it fail."""
    all_cases = cases()
    firing = our_firing(tmp_path, all_cases)
    fired = [name for name, times in firing.items() if times]
    assert len(fired) >= 15, fired
    assert len(fired) < len(all_cases)  # some series never fire (short spikes, oscillation)
    # Spot checks against hand-computed answers.
    assert min(firing["r0"]) == 20 + 20  # breach at 5m, for 5m
    assert not firing["r1"]  # one sample short of for:
    assert firing["r2"] == {40}  # fires on its last breaching sample, then resolves
    assert min(firing["r3"]) == 80 + 4  # 0.05 is not above 0.05; 0.051 is, from index 80
    assert not firing["r4"]
    path = promtool_files(tmp_path, all_cases, firing)
    result = run_promtool(promtool, path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "SUCCESS" in result.stdout

    # Negative control: the first firing evaluation of r0 claimed one step later.
    shifted = dict(firing)
    first = min(firing["r0"])
    shifted["r0"] = firing["r0"] - {first}
    control = promtool_files(tmp_path, all_cases, shifted)
    result = run_promtool(promtool, control)
    assert result.returncode != 0
    assert f"alertname: r0, time: {_promtool_time(first * STEP)}" in result.stdout + result.stderr


def _promtool_time(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs}s" if secs else f"{minutes}m"
