"""Latency canaries (issue 16): the canary's sequential test on each version's requests
slower than a bound (``canary.slower_than``) instead of its errors, through
``core.canary`` and the engine, on virtual time; and ``check rules`` on the new key.

The traffic of the statistics tests is the bench's: 10 requests/s, the new version at
10 %, 15 s windows; wall times log-normal with a median of 100 ms and sigma 0.5, the
bound 300 ms (1.4 % of requests over it); the bad version doubles the wall time of a
fifth of its requests (5.3 % over it: 3.8x)."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path
from statistics import NormalDist

import pytest

from tests.factories import T0, ruleset
from tests.unit.test_canary_stats import _binomial, _poisson, _upper95
from watchdog.core import canary
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import RuleError
from watchdog.model import Sample, SampleKind, Split, VersionCounts
from watchdog.rules.model import RuleSpec

BOUND_S = 0.3
MEDIAN_S, SIGMA = 0.1, 0.5
WINDOW_S, RPS, SHARE = 15.0, 10.0, 0.1


def _over(bound_s: float, median_s: float) -> float:
    """The share of log-normal wall times over ``bound_s``."""
    return 1.0 - NormalDist().cdf(math.log(bound_s / median_s) / SIGMA)


P_OLD = _over(BOUND_S, MEDIAN_S)
P_BAD = 0.8 * P_OLD + 0.2 * _over(BOUND_S, 2 * MEDIAN_S)  # a fifth of requests twice as slow

RULES = """
version: 1
sources:
  cf: {type: cloudflare, script: api, mode: versions, delay: 60s, window: 15s, interval: 15s}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - name: errors
    signal: cf.versions
    canary: {min_effect: 3x, confidence: 99%}
    severity: critical
    rollback: [worker]
  - name: latency
    signal: cf.versions
    canary: {min_effect: 2x, confidence: 99%, slower_than: 300ms}
    severity: critical
    rollback: [worker]
"""
SPLIT = Split("worker", "dep-2", "new", "old", 10.0, T0)


def _rule(tmp_path: Path) -> RuleSpec:
    return ruleset(tmp_path, RULES, base="").rule("latency")


def _sample(
    at: float,
    new: tuple[float, float, float],
    old: tuple[float, float, float],
    bound: float | None = BOUND_S,
) -> Sample:
    """Counts ``(errors, slow, requests)`` per version, as the source reports them."""
    versions = tuple(
        VersionCounts(name, e, n, slow=None if bound is None else s, slow_over_s=bound)
        for name, (e, s, n) in (("new", new), ("old", old))
    )
    errors, requests = new[0] + old[0], new[2] + old[2]
    return Sample(
        at,
        SampleKind.VALUE,
        errors / requests,
        requests,
        errors=errors,
        versions=versions,
        fresh_to=at - 60,
    )


def _first_rejection(
    rule: RuleSpec, rng: random.Random, p_new: float, p_old: float, windows: int
) -> int | None:
    """The first window whose evidence breaches, through ``canary.start``/``fold``."""
    state = canary.start(rule, SPLIT)
    for t in range(windows):
        n = _poisson(rng, RPS * WINDOW_S)
        n_new = _binomial(rng, n, SHARE)
        new = (0.0, float(_binomial(rng, n_new, p_new)), float(n_new))
        old = (0.0, float(_binomial(rng, n - n_new, p_old)), float(n - n_new))
        at = T0 + 60 + (t + 1) * WINDOW_S
        state = canary.fold(rule, state, _sample(at, new, old))
        if state.evidence(rule).breached:
            return t + 1
    return None


def test_the_bench_traffic_is_what_the_docstring_says() -> None:
    assert round(P_OLD, 3) == 0.014
    assert round(P_BAD, 3) == 0.053


def test_healthy_versions_are_not_rolled_back_beyond_the_confidence(tmp_path: Path) -> None:
    """2,000 healthy 20-minute splits (80 windows), both versions equally slow-ish:
    the exact 95 % upper bound of the false-rejection rate stays below 1 %."""
    rule = _rule(tmp_path)
    rng = random.Random(1601)
    runs = 2000
    crossed = sum(_first_rejection(rule, rng, P_OLD, P_OLD, 80) is not None for _ in range(runs))
    assert _upper95(crossed, runs) <= 0.01, crossed


def test_the_healthy_check_can_fail() -> None:
    """The same check on a test that compares slow shares with no allowance for chance
    (reject when the new version's share is 2x the old one's after 4 windows)
    fails at once: the simulation can see a broken guarantee."""
    rng = random.Random(1602)
    crossed = 0
    for _ in range(200):
        slow_new = slow_old = n_new = n_old = 0
        for _ in range(4):
            n = _poisson(rng, RPS * WINDOW_S)
            k = _binomial(rng, n, SHARE)
            n_new, n_old = n_new + k, n_old + n - k
            slow_new += _binomial(rng, k, P_OLD)
            slow_old += _binomial(rng, n - k, P_OLD)
        crossed += slow_new / max(n_new, 1) >= 2 * slow_old / max(n_old, 1)
    assert _upper95(crossed, 200) > 0.05


def test_a_version_that_doubles_a_fifth_of_its_latencies_is_caught(tmp_path: Path) -> None:
    """200 bad splits on a fixed seed: every one rejected within 20 minutes of data."""
    rule = _rule(tmp_path)
    rng = random.Random(1603)
    took = [_first_rejection(rule, rng, P_BAD, P_OLD, 80) for _ in range(200)]
    caught = sorted(w * WINDOW_S for w in took if w is not None)
    assert len(caught) == 200
    assert statistics.median(caught) <= 360.0, statistics.median(caught)


def test_errors_do_not_move_the_latency_test(tmp_path: Path) -> None:
    """A new version that fails often but is not slow: the error canary fires, the
    latency canary stays inconclusive (slow is counted in place of errors)."""
    engine = Engine(ruleset(tmp_path, RULES, base=""))
    engine.split("worker", SPLIT)
    fired: list[str] = []
    for minute in range(1, 12):
        sample = _sample(T0 + 60 + minute * 60, (6.0, 1.0, 60.0), (3.0, 8.0, 540.0))
        fired += [d.rule for d in engine.observe("cf.versions", sample).decisions]
    assert fired == ["errors"]
    assert engine.states["latency"].state is State.INCONCLUSIVE


def test_a_slow_new_version_rolls_back_with_the_evidence(tmp_path: Path) -> None:
    engine = Engine(ruleset(tmp_path, RULES, base=""))
    engine.split("worker", SPLIT)
    decisions: list[Decision] = []
    for minute in range(1, 12):
        # 60 requests/min on the new version, 12 of them slow; the old one 540, 8 slow.
        sample = _sample(T0 + 60 + minute * 60, (0.0, 12.0, 60.0), (0.0, 8.0, 540.0))
        decisions += engine.observe("cf.versions", sample).decisions
    (decision,) = decisions
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.rule == "latency"
    evidence = decision.extra["canary"]
    assert evidence["counted"] == "slow"
    assert evidence["slower_than_s"] == BOUND_S
    assert (evidence["new_slow"], evidence["old_slow"]) == (12, 8)  # decided on the first window
    assert evidence["new_slow"] / evidence["new_requests"] == pytest.approx(0.2)
    assert evidence["effect"] == pytest.approx(0.2 / (8 / 540))
    assert evidence["e_value"] >= 100
    assert decision.observed == pytest.approx(evidence["effect"])
    assert "slower than 300ms more often than the old" in decision.why
    assert "12 slower than 300ms / 60 requests vs old old 8 / 540" in decision.why
    assert "slower than 300ms" in decision.extra["canary_text"]
    assert "deploy 100% of old" in decision.why


def test_a_sample_without_slow_counts_is_blind_and_says_why(tmp_path: Path) -> None:
    engine = Engine(ruleset(tmp_path, RULES, base=""))
    engine.split("worker", SPLIT)
    for minute in range(1, 4):
        sample = _sample(T0 + 60 + minute * 60, (0.0, 12.0, 60.0), (0.0, 8.0, 540.0), None)
        assert not engine.observe("cf.versions", sample).decisions
    state = engine.states["latency"]
    assert state.state is State.BLIND
    assert "does not count requests slower than 300ms" in state.blind_reason
    assert engine.canaries.tests["latency"].new.requests == 0  # no evidence taken
    assert engine.states["errors"].state is State.INCONCLUSIVE  # errors were counted


def test_the_source_gets_the_bound_from_the_rule(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, RULES, base="")
    assert rules.signals["cf.versions"].spec.slower_than == BOUND_S


_HEAD = RULES.split("rules:")[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _HEAD.replace("mode: versions", "mode: versions, api: graphql")
            + "rules:\n  - {name: l, signal: cf.versions, severity: critical, "
            "rollback: [worker], canary: {min_effect: 2x, slower_than: 300ms}}\n",
            r"rules.yaml:8 rules\[0\]\.canary\.slower_than: signal 'cf.versions' cannot "
            r"count slow requests per Worker version \(use a cloudflare source with mode: "
            r"versions and api: telemetry, or a cloudflare-tail source\)",
        ),
        (
            _HEAD + "rules:\n  - {name: a, signal: cf.versions, severity: critical, "
            "rollback: [worker], canary: {min_effect: 2x, slower_than: 300ms}}\n"
            "  - {name: b, signal: cf.versions, severity: critical, "
            "rollback: [worker], canary: {min_effect: 2x, slower_than: 1s}}\n",
            r"rules.yaml:9 rules\[1\]\.canary\.slower_than: signal 'cf.versions' already "
            r"counts requests slower than 300ms for rule 'a' \(.*rules.yaml:8 "
            r"rules\[0\]\.canary\.slower_than\): one bound per signal",
        ),
        (
            _HEAD + "rules:\n  - name: l\n    signal: cf.versions\n    severity: critical\n"
            "    rollback: [worker]\n    canary: {min_effect: 2x, slower_than: 300}\n",
            r"rules.yaml:\d+ rules\[0\]\.canary\.slower_than",
        ),
        (
            _HEAD + "rules:\n  - name: l\n    signal: cf.versions\n    severity: critical\n"
            "    rollback: [worker]\n    canary: {min_effect: 2x, slower_than: 0ms}\n",
            r"rules.yaml:\d+ rules\[0\]\.canary\.slower_than.*longer than 0s",
        ),
    ],
)
def test_bad_latency_canaries_are_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(RuleError, match=message):
        ruleset(tmp_path, text, base="")
