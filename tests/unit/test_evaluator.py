"""The evaluator and engine over hours of virtual time (no real waiting)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.factories import T0, flatten, repeat, ruleset, series
from watchdog.core.decision import DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import INITIAL, State, step
from watchdog.model import Sample
from watchdog.rules.load import RuleSet

ERROR_RULE = """
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     min_requests: 100, rollback: [worker]}
"""


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return ruleset(tmp_path, ERROR_RULE)


def run(
    rules: RuleSet, samples: list[Sample], signal: str = "error_rate"
) -> tuple[Engine, list[tuple[float, State]], list[tuple[float, DecisionKind]]]:
    engine = Engine(rules)
    states, decisions = [], []
    for sample in samples:
        observation = engine.observe(signal, sample)
        states += [(t.at, t.after) for t in observation.transitions]
        decisions += [(d.decided_at, d.kind) for d in observation.decisions]
    return engine, states, decisions


def test_step_breach_fires_exactly_at_for(rules: RuleSet) -> None:
    """A step from 1% to 8% goes pending at the first breach and fires when
    the breach has lasted exactly for: (Prometheus' ``>=``), at a sample boundary."""
    samples = series(flatten(repeat(0.01, 40), repeat(0.08, 60)))
    _, states, decisions = run(rules, samples)
    breach_at = T0 + 40 * 15
    assert states == [(breach_at, State.PENDING), (breach_at + 300, State.FIRING)]
    assert decisions == [(breach_at + 300, DecisionKind.ROLLBACK)]


def test_spike_of_4m59s_never_fires(rules: RuleSet) -> None:
    """A breach that lasts one sample less than for: resets and never fires,
    over four hours of virtual time."""
    spike = flatten(repeat(0.01, 10), repeat(0.5, 20), repeat(0.01, 10))  # 20 samples = 4m45s
    samples = series(spike * 24)
    engine, states, decisions = run(rules, samples)
    assert decisions == []
    assert {s for _, s in states} == {State.PENDING, State.INACTIVE}
    assert samples[-1].at - samples[0].at > 4 * 3600 - 3600
    assert engine.states["error-rate"].state is State.INACTIVE


def test_oscillation_around_threshold_resets_each_time(rules: RuleSet) -> None:
    """A value that alternates above and below the threshold never builds up for:."""
    samples = series([0.051, 0.049] * 500)
    _, _, decisions = run(rules, samples)
    assert decisions == []


def test_exactly_at_threshold_is_not_a_breach(rules: RuleSet) -> None:
    """above is strict: a value equal to the threshold never counts."""
    samples = series(repeat(0.05, 200))
    engine, states, decisions = run(rules, samples)
    assert states == []
    assert decisions == []
    assert engine.states["error-rate"].state is State.INACTIVE


def test_below_is_strict_too(tmp_path: Path) -> None:
    """below is strict: equal to the threshold is fine, just under it is a breach."""
    rules = ruleset(
        tmp_path,
        """
rules:
  - {name: low, signal: p95, below: 1s, for: 1m, severity: low}
""",
    )
    equal = series(repeat(1.0, 20), requests=None)
    assert run(rules, equal, "p95")[2] == []
    under = series(repeat(0.999, 20), requests=None)
    assert run(rules, under, "p95")[2] == [(T0 + 60, DecisionKind.NOTIFY)]


def test_gap_makes_rule_blind_and_resets_pending(rules: RuleSet) -> None:
    """A source gap in the middle of a breach is blind: it neither fires nor
    counts toward for:, and the run starts again after it."""
    values = flatten(repeat(0.08, 19), [None], repeat(0.08, 21))
    _, states, decisions = run(rules, series(values))
    assert (T0 + 19 * 15, State.BLIND) in states
    restart = T0 + 20 * 15
    assert (restart, State.PENDING) in states
    assert decisions == [(restart + 300, DecisionKind.ROLLBACK)]


def test_nan_and_errors_are_blind_never_breach(rules: RuleSet) -> None:
    """NaN values and source errors for an hour: blind, one 'watchdog is blind'
    decision after blind_after (5m), never a rollback."""
    values = flatten(repeat(math.nan, 120), repeat("err", 120))
    engine, _, decisions = run(rules, series(values))
    assert decisions == [(T0 + 300, DecisionKind.BLIND)]
    state = engine.states["error-rate"]
    assert state.state is State.BLIND
    assert "connection refused" in state.blind_reason


def test_low_traffic_is_blind(rules: RuleSet) -> None:
    """A 100% error rate on 3 requests is below min_requests: blind, not a breach."""
    samples = series(repeat(1.0, 100), requests=3.0)
    engine, _, decisions = run(rules, samples)
    assert [kind for _, kind in decisions] == [DecisionKind.BLIND]
    assert "below min_requests" in engine.states["error-rate"].blind_reason


def test_unknown_traffic_is_blind_under_min_requests(rules: RuleSet) -> None:
    """Defect 16, at the root: a value without a request count cannot pass
    min_requests, whichever path (live, backtest, rule test) built the sample."""
    samples = series(repeat(1.0, 100), requests=None)
    engine, _, decisions = run(rules, samples)
    assert [kind for _, kind in decisions] == [DecisionKind.BLIND]
    assert "traffic unknown" in engine.states["error-rate"].blind_reason


def test_recovery_after_firing_resolves(rules: RuleSet) -> None:
    """A firing rule resolves on the first good sample (no keep_firing_for)."""
    samples = series(flatten(repeat(0.08, 30), repeat(0.001, 5)))
    _, _, decisions = run(rules, samples)
    assert [k for _, k in decisions] == [DecisionKind.ROLLBACK, DecisionKind.RESOLVED]


def test_keep_firing_for_holds_through_a_dip(tmp_path: Path) -> None:
    """keep_firing_for keeps the rule firing across a short dip."""
    rules = ruleset(
        tmp_path,
        """
rules:
  - {name: e, signal: error_rate, above: 5%, for: 1m, keep_firing_for: 1m, severity: critical}
""",
    )
    samples = series(flatten(repeat(0.08, 10), repeat(0.0, 3), repeat(0.08, 2), repeat(0.0, 10)))
    _, _, decisions = run(rules, samples)
    assert [k for _, k in decisions] == [DecisionKind.NOTIFY, DecisionKind.RESOLVED]


def test_share_mode_tolerates_a_good_sample(tmp_path: Path) -> None:
    """mode: share fires when 80% of the window breaches, so one good sample in
    five does not reset it, while consecutive mode would never fire."""
    rules = ruleset(
        tmp_path,
        """
rules:
  - {name: share, signal: error_rate, above: 5%, for: 5m, mode: share, share: 80%,
     severity: critical}
  - {name: strict, signal: error_rate, above: 5%, for: 5m, severity: critical}
""",
    )
    samples = series([0.08, 0.08, 0.08, 0.08, 0.01] * 20)
    engine, _, _ = run(rules, samples)
    assert engine.states["share"].state is State.FIRING
    assert engine.states["strict"].state is not State.FIRING


def test_share_mode_below_share_stays_pending(tmp_path: Path) -> None:
    """Half the samples breaching is below an 80% share: pending, never firing."""
    rules = ruleset(
        tmp_path,
        """
rules:
  - {name: share, signal: error_rate, above: 5%, for: 5m, mode: share, share: 80%,
     severity: critical}
""",
    )
    _, _, decisions = run(rules, series([0.08, 0.01] * 200))
    assert decisions == []


def test_step_is_pure(rules: RuleSet) -> None:
    """The same state and sample always give the same next state."""
    rule = rules.rules[0]
    sample = Sample.of(T0, 0.08, 500)
    assert step(rule, INITIAL, sample, 300) == step(rule, INITIAL, sample, 300)


def test_reload_keeps_state_of_unchanged_rules(tmp_path: Path, rules: RuleSet) -> None:
    """Swapping in a rule set keeps the state of rules whose definition is unchanged
    and starts changed rules from scratch."""
    engine = Engine(rules)
    for sample in series(repeat(0.08, 5)):
        engine.observe("error_rate", sample)
    states = [engine.states["error-rate"].state]
    engine.replace_rules(ruleset(tmp_path, ERROR_RULE))
    states.append(engine.states["error-rate"].state)
    changed = ruleset(tmp_path, ERROR_RULE.replace("5%", "6%"))
    engine.replace_rules(changed)
    states.append(engine.states["error-rate"].state)
    assert states == [State.PENDING, State.PENDING, State.INACTIVE]


def test_decision_carries_the_evidence(rules: RuleSet) -> None:
    """A rollback decision names rule, severity, value, threshold, window, sample
    count, first breach and why."""
    engine = Engine(rules)
    decision = None
    for sample in series(repeat(0.072, 30), requests=5000.0):
        for d in engine.observe("error_rate", sample).decisions:
            decision = d
    assert decision is not None
    assert decision.kind is DecisionKind.ROLLBACK
    assert (decision.rule, decision.severity) == ("error-rate", "critical")
    assert decision.observed == pytest.approx(0.072)
    assert decision.threshold == pytest.approx(0.05)
    assert decision.window_s == 300
    assert decision.sample_count == 21
    assert decision.first_breach_at == T0
    assert decision.requests == 5000.0
    assert decision.summary() == "error-rate: error_rate 7.2% > 5% for 5m (21 samples)"
    assert "severity critical: roll back" in decision.why


def test_clock_jump_backwards_does_not_fire(rules: RuleSet) -> None:
    """Samples whose clock jumps back do not make a breach look longer than it was."""
    engine = Engine(rules)
    first = series(repeat(0.08, 10))
    for sample in first:
        engine.observe("error_rate", sample)
    jumped = series(repeat(0.08, 10), start=T0 - 3600)
    decisions = [d for s in jumped for d in engine.observe("error_rate", s).decisions]
    assert decisions == []
