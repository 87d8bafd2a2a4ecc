"""From rule state changes to decisions: the severity matrix applied to one rule.

Pure, like the evaluator. What happens to a decision afterwards (incidents, grace,
silences, cooldowns, deploy correlation) is the incident manager's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.core import burn
from watchdog.core.burn import BurnEvidence
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.evaluator import RuleState, State
from watchdog.core.evidence import Evidence
from watchdog.core.regression import RegressionEvidence, judge
from watchdog.rules.load import ResolvedSignal, RuleSet
from watchdog.rules.model import RuleSpec
from watchdog.units import format_duration


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule moved from one state to another at ``at``."""

    rule: str
    at: float
    before: State
    after: State


def transition(rule: RuleSpec, prev: RuleState, new: RuleState) -> Transition | None:
    if prev.state is new.state or new.at is None:
        return None
    return Transition(rule.name, new.at, prev.state, new.state)


def decide(
    rule: RuleSpec, signal: ResolvedSignal, ruleset: RuleSet, prev: RuleState, new: RuleState
) -> Decision | None:
    """The decision this step calls for, if any."""
    assert new.at is not None
    if new.state is State.FIRING and prev.state is not State.FIRING:
        policy = ruleset.severities[rule.severity]
        act = policy.act == "rollback" and bool(rule.rollback)
        kind = DecisionKind.ROLLBACK if act else DecisionKind.NOTIFY
        op = ">" if rule.comparison == "above" else "<"
        evidence = evidence_of(rule, new)
        surely = "" if evidence is None else f"surely ({evidence.confidence * 100:g}% sure) "
        burning = burn_of(rule, new)
        if burning is not None:
            why = (
                f"{signal.name} burns the error budget too fast: {burning.text()}; "
                f"severity {rule.severity}: " + ("roll back" if act else "notify")
            )
            return _decision(kind, rule, signal, new, why)
        regression = regression_of(rule, new)
        if regression is not None:
            why = (
                f"{signal.name} got worse after the deploy: {regression.text()}; "
                f"severity {rule.severity}: " + ("roll back" if act else "notify")
            )
            return _decision(kind, rule, signal, new, why)
        why = (
            f"{signal.name} {surely}{op} {rule.threshold.text} "
            f"for {format_duration(new.at - (new.active_since or new.at))} "
            f"(rule needs {format_duration(rule.for_)}); severity {rule.severity}: "
            + ("roll back" if act else "notify")
        )
        return _decision(kind, rule, signal, new, why)
    if new.blind_long and not prev.blind_long:
        since = new.blind_since if new.blind_since is not None else new.at
        why = (
            f"no evidence for {format_duration(new.at - since)} ({new.blind_reason}); "
            "the watchdog is blind and will not act on this rule"
        )
        return _decision(DecisionKind.BLIND, rule, signal, new, why)
    if prev.state is State.FIRING and new.state is State.INACTIVE:
        why = f"{signal.name} back within {rule.threshold.text}"
        return _decision(DecisionKind.RESOLVED, rule, signal, new, why)
    if prev.state is State.FIRING and new.state is State.INCONCLUSIVE:
        # The evidence no longer shows a breach: the run is over, as for a clean value.
        why = f"{signal.name} no longer surely past {rule.threshold.text}"
        return _decision(DecisionKind.RESOLVED, rule, signal, new, why)
    return None


def _decision(
    kind: DecisionKind, rule: RuleSpec, signal: ResolvedSignal, state: RuleState, why: str
) -> Decision:
    assert state.at is not None
    return Decision(
        kind=kind,
        rule=rule.name,
        severity=rule.severity,
        signal=signal.name,
        targets=tuple(rule.rollback),
        observed=state.value,
        threshold=rule.threshold.value,
        comparison=rule.comparison,
        unit=signal.unit,
        window_s=rule.for_,
        sample_count=state.breach_samples,
        first_breach_at=state.active_since,
        decided_at=state.at,
        why=why,
        requests=state.requests,
        dry_run=rule.dry_run,
        evidence=evidence_of(rule, state),
        regression=regression_of(rule, state),
        burn=burn_of(rule, state),
    )


def evidence_of(rule: RuleSpec, state: RuleState) -> Evidence | None:
    """The counts behind a confidence rule's state, with their interval."""
    if rule.confidence is None or state.errors is None or not state.requests:
        return None
    return Evidence.of(state.errors, state.requests, rule.confidence, rule.threshold.value)


def regression_of(rule: RuleSpec, state: RuleState) -> RegressionEvidence | None:
    """A regression rule's test as it stands, while it watches a deploy."""
    spec = rule.regression
    base = state.baseline
    if spec is None or base is None or not base[2] > 0 or state.errors is None:
        return None
    requests = state.requests or 0.0
    return judge(
        base[1],
        base[2],
        state.errors,
        requests,
        spec.min_effect.value,
        spec.confidence,
        base[3],
        spec.min_effect.absolute,
    )


def burn_of(rule: RuleSpec, state: RuleState) -> BurnEvidence | None:
    """A burn-rate rule's breaching pair of windows (else a doubtful one, past its bar
    on the point ratios only; else its first pair), as it stands."""
    spec = rule.burn_rate
    if spec is None or state.at is None or not state.minutes.starts:
        return None
    pairs = tuple((w.long, w.short, w.factor) for w in spec.windows)
    judged = burn.judge(state.minutes, state.at, spec.objective, pairs, spec.confidence)
    return next((j for j in judged if j.breached), next((j for j in judged if j.over), judged[0]))
