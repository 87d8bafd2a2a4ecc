"""Canary rules: the sequential test of a split's new version against its old one
(core.canary) through the engine, on virtual time (issue 16)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.factories import T0, ruleset
from watchdog.core.canary import grid, log_ratios, mixture
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import RuleError
from watchdog.model import Sample, SampleKind, Split, VersionCounts

RULES = """
version: 1
sources:
  cf: {type: cloudflare, script: api, mode: versions, delay: 60s, window: 1m}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - name: canary
    signal: cf.versions
    canary: {min_effect: 3x, confidence: 99%}
    severity: critical
    rollback: [worker]
"""
SPLIT = Split("worker", "dep-2", "new", "old", 10.0, T0)


def _sample(at: float, new: tuple[int, int], old: tuple[int, int]) -> Sample:
    versions = (VersionCounts("new", *new), VersionCounts("old", *old))
    total_e, total_n = new[0] + old[0], new[1] + old[1]
    return Sample(
        at,
        SampleKind.VALUE,
        total_e / total_n,
        total_n,
        errors=total_e,
        versions=versions,
        fresh_to=at - 60,
    )


def _engine(tmp_path: Path) -> Engine:
    engine = Engine(ruleset(tmp_path, RULES, base=""))
    engine.split("worker", SPLIT)
    return engine


def test_a_bad_new_version_fires_a_rollback_with_the_evidence(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    decisions: list[Decision] = []
    for minute in range(1, 10):
        at = T0 + 60 + minute * 60
        # 60 requests/min on the new version at 5 %, 540 on the old at 0.5 %.
        obs = engine.observe("cf.versions", _sample(at, (3, 60), (3, 540)))
        decisions += obs.decisions
    (decision,) = decisions
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.targets == ("worker",)
    assert "deploy 100% of old" in decision.why
    assert decision.extra["canary"]["new_version"] == "new"
    assert decision.extra["canary"]["e_value"] >= 100


def test_a_healthy_new_version_stays_inconclusive_never_a_pass(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    for minute in range(1, 30):
        obs = engine.observe("cf.versions", _sample(T0 + 60 + minute * 60, (0, 60), (3, 540)))
        assert not obs.decisions
    assert engine.states["canary"].state is State.INCONCLUSIVE


def test_no_traffic_on_the_new_version_is_inconclusive_and_says_so(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    obs = engine.observe("cf.versions", _sample(T0 + 200, (0, 0), (30, 600)))
    state = engine.states["canary"]
    assert state.state is State.INCONCLUSIVE
    assert "no traffic on the new version new" in state.blind_reason
    assert not obs.decisions


def test_a_source_outage_is_blind_and_never_a_rollback(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    kinds = []
    for minute in range(1, 12):
        obs = engine.observe("cf.versions", Sample.error(T0 + minute * 60, "HTTP 503"))
        kinds += [d.kind for d in obs.decisions]
    assert engine.states["canary"].state is State.BLIND
    assert kinds == [DecisionKind.BLIND]


def test_a_window_read_twice_counts_once_and_no_split_is_idle(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    sample = _sample(T0 + 200, (3, 60), (3, 540))
    engine.observe("cf.versions", sample)
    engine.observe("cf.versions", sample)
    assert engine.canaries.tests["canary"].new.requests == 60
    engine.split("worker", None)
    engine.observe("cf.versions", _sample(T0 + 260, (3, 60), (3, 540)))
    assert engine.states["canary"].state is State.INACTIVE
    assert "canary" not in engine.canaries.tests


def test_false_alarms_stay_below_alpha_under_equal_rates() -> None:
    """Under the null (equal rates) the mixture crosses 1/alpha rarely, however often
    one looks: 400 simulated splits of 60 windows each at 99 % confidence."""
    rng = random.Random(7)
    effects = grid(2.0)
    crossed = 0
    for _ in range(400):
        logs = len(effects) * (0.0,)
        for _ in range(60):
            n_new, n_old = 60, 540
            x_new = sum(rng.random() < 0.01 for _ in range(n_new))
            x_old = sum(rng.random() < 0.01 for _ in range(n_old))
            logs = log_ratios(
                logs, effects, VersionCounts("n", x_new, n_new), VersionCounts("o", x_old, n_old)
            )
            if mixture(logs) >= 100:
                crossed += 1
                break
    assert crossed <= 8  # alpha = 1 %: 4 expected at most; 8 leaves room for chance


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{name: c, signal: cf.versions, canary: {min_effect: 2x}, above: 5%, "
            "severity: critical, rollback: [worker]}",
            "no above/below",
        ),
        (
            "{name: c, signal: cf.versions, canary: {min_effect: 2x}, severity: critical}",
            "name it in 'canary.target'",
        ),
        (
            "{name: c, signal: cf.error_rate, canary: {min_effect: 2x}, "
            "severity: critical, rollback: [worker]}",
            r"rules.yaml:\d+.*does not count errors per Worker version",
        ),
    ],
)
def test_bad_canary_rules_are_refused_with_where(tmp_path: Path, rule: str, message: str) -> None:
    text = RULES.split("rules:")[0] + f"rules:\n  - {rule}\n"
    with pytest.raises(RuleError, match=message):
        ruleset(tmp_path, text, base="")


def test_a_split_learnt_of_late_counts_what_the_window_already_holds(tmp_path: Path) -> None:
    """The deploy watch polls: windows read before it told the split still count."""
    engine = Engine(ruleset(tmp_path, RULES, base=""))
    for minute in range(1, 4):
        engine.observe("cf.versions", _sample(T0 + 60 + minute * 60, (3, 60), (3, 540)))
    engine.split("worker", SPLIT)
    assert engine.canaries.tests["canary"].new.requests == 180
