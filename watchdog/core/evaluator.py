"""The evaluator: a pure step function ``(rule, state, sample) -> state``.

The live daemon, the backtest and the rule unit tests all fold samples through
``step``; nothing else decides whether a rule is inactive, pending, firing or blind.

Semantics (documented in the README, "Rule semantics"):

- ``above``/``below`` are strict: a value equal to the threshold is not a breach.
- Missing evidence (source error, no data, NaN, traffic below ``min_requests`` or unknown)
  makes the rule **blind**. Blind never fires and never counts toward ``for:``: it
  resets a pending run, as an absent series resets a pending alert in Prometheus.
- ``mode: consecutive`` (default) is Prometheus ``for:``: the first breaching
  sample makes the rule pending (``active_since``); it fires on the first sample
  at which ``at - active_since >= for``; one non-breaching sample resets it.
- ``mode: share`` fires when at least ``share`` of the evidence samples in the
  trailing ``for:`` window breach, and the breach began at least ``for:`` ago.
- ``keep_firing_for`` keeps a firing rule firing that long after its last breach.
- ``confidence`` (with ``window``) weighs the error and request counts of the trailing
  ``window`` (``core.evidence``): a breach only while the ratio's interval lies wholly
  past the threshold, **inconclusive** while it straddles it. Inconclusive never fires
  and, like blind, ends a pending run. A sample without counts adds nothing; a source
  error, or no request in the whole window, makes the rule blind.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from watchdog.core import burn
from watchdog.core.evidence import Verdict, verdict
from watchdog.core.regression import judge
from watchdog.core.state import INITIAL as INITIAL
from watchdog.core.state import RuleState as RuleState
from watchdog.core.state import State as State
from watchdog.core.window import slide
from watchdog.model import Sample, SampleKind
from watchdog.rules.model import RuleSpec
from watchdog.units import format_duration

_VALUE, _NO_DATA, _ERROR = SampleKind.VALUE, SampleKind.NO_DATA, SampleKind.ERROR
_INACTIVE, _FIRING, _INCONCLUSIVE = State.INACTIVE, State.FIRING, State.INCONCLUSIVE
_BREACH, _CLEAR = Verdict.BREACH, Verdict.CLEAR
_tuple_new = tuple.__new__
_NO_MINUTES = burn.NO_MINUTES


def _quiet(
    value: float, requests: float | None, at: float, window: tuple[tuple[float, bool], ...] = ()
) -> RuleState:
    """``RuleState(value=value, requests=requests, at=at, window=window)`` without the
    keyword machinery: most samples of most rules end here (a unit test pins the two
    spellings to each other)."""
    # fmt: off
    fields = (_INACTIVE, None, None, None, 0, value, requests, at, None, "", False, window,
              None, (), None, _NO_MINUTES, True)
    # fmt: on
    return _tuple_new(RuleState, fields)


def breached(rule: RuleSpec, value: float) -> bool:
    """Strict comparison against the rule's threshold."""
    above = rule.above
    if above is not None:
        return value > above.value
    return value < rule.threshold.value


def blind_reason(rule: RuleSpec, sample: Sample) -> str | None:
    """Why ``sample`` is not evidence for ``rule``, or None when it is."""
    if sample.kind is not _VALUE:
        return f"{sample.kind.value}: {sample.reason}"
    if math.isnan(sample.value):
        return "value is NaN"
    min_requests = rule.min_requests
    if min_requests > 0:
        requests = sample.requests
        if requests is None:
            # Traffic unknown is not enough traffic: min_requests is never dropped.
            return f"traffic unknown (min_requests {min_requests:g} needs a request count)"
        if not requests >= min_requests:
            return f"traffic {requests:g} below min_requests {min_requests:g}"
    return None


Stepper = Callable[[RuleSpec, RuleState, Sample, float], RuleState]


def step(rule: RuleSpec, prev: RuleState, sample: Sample, blind_after: float) -> RuleState:
    """The rule's state after ``sample``. Pure: same inputs, same output."""
    return stepper(rule)(rule, prev, sample, blind_after)


def stepper(rule: RuleSpec) -> Stepper:
    """``step`` for this rule's kind: the engine resolves it once per rule, not per
    sample."""
    if rule.confidence is not None:
        return _step_confidence
    if rule.regression is not None:
        return step_regression
    if rule.burn_rate is not None:
        return step_burn
    return _step_plain


def _step_plain(rule: RuleSpec, prev: RuleState, sample: Sample, blind_after: float) -> RuleState:
    """A threshold rule (``above``/``below``, consecutive or share)."""
    at = sample.at
    value = sample.value
    # Hot path: a plain value (not NaN) for a rule without min_requests is evidence
    # (blind_reason() says the same, only slower); most such samples do not breach a
    # rule that is not firing, and build the quiet state inline (_quiet, breached()).
    if sample.kind is _VALUE and value == value and not rule.min_requests:
        above = rule.above
        is_breach = value > above.value if above is not None else value < rule.threshold.value
        if not is_breach and prev.state is not _FIRING and rule.mode != "share":
            # fmt: off
            return _tuple_new(RuleState, (_INACTIVE, None, None, None, 0, value, sample.requests,
                                          at, None, "", False, (), None, (), None, _NO_MINUTES,
                                          True))
            # fmt: on
        reason = None
    else:
        reason = blind_reason(rule, sample)
    if reason is not None:
        return _blind(prev, sample, reason, blind_after)
    is_breach = breached(rule, value)
    if rule.mode == "share":
        return _step_share(rule, prev, sample, is_breach)
    if not is_breach and prev.state is not _FIRING:
        return _quiet(value, sample.requests, at)  # what _step_consecutive returns here
    return _step_consecutive(rule, prev, sample, is_breach)


def _step_consecutive(
    rule: RuleSpec, prev: RuleState, sample: Sample, is_breach: bool
) -> RuleState:
    at = sample.at
    if is_breach:
        active_since = prev.active_since if prev.active_since is not None and prev.breaching else at
        count = prev.breach_samples + 1 if prev.breaching else 1
        firing = at - active_since >= rule.for_
        return _breaching(prev, sample, active_since, firing, at, count)
    if _kept_firing(rule, prev, at):
        return _held(prev, sample, prev.breach_samples)
    return _quiet(sample.value, sample.requests, at)


def _breaching(
    prev: RuleState,
    sample: Sample,
    active_since: float,
    firing: bool,
    last_breach_at: float | None,
    breach_samples: int,
    window: tuple[tuple[float, bool], ...] = (),
) -> RuleState:
    """Pending, or firing (keeping the time it first fired)."""
    at = sample.at
    return RuleState(
        state=State.FIRING if firing else State.PENDING,
        active_since=active_since,
        fired_at=(prev.fired_at if prev.state is State.FIRING else at) if firing else None,
        last_breach_at=last_breach_at,
        breach_samples=breach_samples,
        value=sample.value,
        requests=sample.requests,
        at=at,
        window=window,
    )


def _held(
    prev: RuleState,
    sample: Sample,
    breach_samples: int,
    window: tuple[tuple[float, bool], ...] = (),
) -> RuleState:
    """Still firing after the breach stopped: ``keep_firing_for`` holds it."""
    return RuleState(
        state=State.FIRING,
        active_since=prev.active_since,
        fired_at=prev.fired_at,
        last_breach_at=prev.last_breach_at,
        breach_samples=breach_samples,
        value=sample.value,
        requests=sample.requests,
        at=sample.at,
        window=window,
    )


def _kept_firing(rule: RuleSpec, prev: RuleState, at: float) -> bool:
    return (
        prev.state is State.FIRING
        and rule.keep_firing_for > 0
        and prev.last_breach_at is not None
        and at - prev.last_breach_at < rule.keep_firing_for
    )


def _step_share(rule: RuleSpec, prev: RuleState, sample: Sample, is_breach: bool) -> RuleState:
    at = sample.at
    horizon = at - rule.for_
    window = (*(item for item in prev.window if item[0] > horizon), (at, is_breach))
    breaches = sum(1 for _, hit in window if hit)
    last_breach_at = at if is_breach else prev.last_breach_at
    if breaches == 0:
        if _kept_firing(rule, prev, at):
            return _held(prev, sample, 0, window)
        return _quiet(sample.value, sample.requests, at, window)
    assert rule.share is not None  # guaranteed by RuleSpec validation
    active_since = prev.active_since if prev.active_since is not None else at
    enough = breaches / len(window) >= rule.share
    firing = enough and at - active_since >= rule.for_
    return _breaching(prev, sample, active_since, firing, last_breach_at, breaches, window)


def _blind(
    prev: RuleState,
    sample: Sample,
    reason: str,
    blind_after: float,
    counts: tuple[tuple[float, float, float], ...] = (),
    minutes: burn.Minutes = _NO_MINUTES,
) -> RuleState:
    at = sample.at
    blind_since = prev.blind_since if prev.blind_since is not None else at
    return RuleState(
        state=State.BLIND,
        value=sample.value,
        requests=sample.requests,
        at=at,
        blind_since=blind_since,
        blind_reason=reason,
        blind_long=at - blind_since >= blind_after,
        # A firing rule that goes blind keeps its history for the decider, but the
        # run is over: evidence must build up again from scratch.
        fired_at=None,
        window=prev.window,
        counts=counts,
        minutes=minutes,
    )


def _step_confidence(
    rule: RuleSpec, prev: RuleState, sample: Sample, blind_after: float
) -> RuleState:
    at = sample.at
    window, confidence = rule.window, rule.confidence
    assert window is not None  # RuleSpec validation
    assert confidence is not None
    kind = sample.kind
    item = None
    if kind is _VALUE and sample.errors is not None and sample.requests is not None:
        item = (at, sample.errors, sample.requests)
    counts, errors, requests, ordered = slide(
        prev.counts, prev.errors, prev.requests, prev.ordered, at - window, item
    )
    if kind is _ERROR:
        reason = f"error: {sample.reason}"
        return _blind(prev, sample, reason, blind_after, counts)._replace(ordered=ordered)
    if not requests > 0:
        reason = f"no requests in the last {format_duration(window)}"
        return _blind(prev, sample, reason, blind_after, counts)._replace(ordered=ordered)
    ratio = min(errors / requests, 1.0)
    above = rule.above  # hot path: the threshold and comparison properties, inline
    if above is not None:
        found = verdict(errors, requests, above.value, "above", confidence)
    else:
        found = verdict(errors, requests, rule.threshold.value, rule.comparison, confidence)
    if found is _BREACH:
        weighed = Sample(at, _VALUE, ratio, requests, errors=errors)
        new = _step_consecutive(rule, prev, weighed, is_breach=True)
    elif prev.state is _FIRING and _kept_firing(rule, prev, at):
        weighed = Sample(at, _VALUE, ratio, requests, errors=errors)
        new = _held(prev, weighed, prev.breach_samples)
    else:
        # Most samples: clear (``_quiet``) or inconclusive, with the counts, built
        # inline (a keyword RuleState and a _replace cost more than the rest).
        state = _INACTIVE if found is _CLEAR else _INCONCLUSIVE
        # fmt: off
        return _tuple_new(RuleState, (state, None, None, None, 0, ratio, requests, at, None, "",
                                      False, (), errors, counts, None, _NO_MINUTES, ordered))
        # fmt: on
    return new._replace(errors=errors, counts=counts, ordered=ordered)


def step_regression(
    rule: RuleSpec, prev: RuleState, sample: Sample, blind_after: float
) -> RuleState:
    """A regression rule: idle (inactive) until the engine marks a deploy, then the
    sequential test on the counts since it (``core.regression``) for ``watch``. A
    breach is final for that deploy: an anytime-valid test's rejection stands."""
    spec = rule.regression
    assert spec is not None  # only called for regression rules
    at = sample.at
    base = prev.baseline
    if base is None or at - base[0] >= spec.watch:
        return _quiet(sample.value, sample.requests, at)
    errors, requests = prev.errors or 0.0, prev.requests or 0.0
    if sample.kind is _VALUE and sample.errors is not None and sample.requests is not None:
        errors, requests = errors + sample.errors, requests + sample.requests

    def kept(state: RuleState) -> RuleState:
        return state._replace(errors=errors, requests=requests, baseline=base)

    if sample.kind is SampleKind.ERROR:
        return kept(_blind(prev, sample, f"error: {sample.reason}", blind_after))
    if not base[2] > 0:
        reason = f"no requests in the {format_duration(spec.baseline)} before the deploy"
        return kept(_blind(prev, sample, reason, blind_after))
    ratio = min(errors / requests, 1.0) if requests > 0 else math.nan
    effect = spec.min_effect
    found = judge(
        base[1], base[2], errors, requests, effect.value, spec.confidence, base[3], effect.absolute
    )
    sticky = prev.breaching and prev.active_since is not None and prev.active_since >= base[0]
    if sticky or found.verdict is Verdict.BREACH:
        weighed = Sample(at, _VALUE, ratio, requests, errors=errors)
        new = _step_consecutive(rule, prev, weighed, is_breach=True)
    else:
        new = RuleState(state=State.INCONCLUSIVE, value=ratio, requests=requests, at=at)
    return kept(new)


def step_burn(rule: RuleSpec, prev: RuleState, sample: Sample, blind_after: float) -> RuleState:
    """A burn-rate rule: per-minute counts over its longest window (in ``minutes``);
    it breaches while any pair of windows burns faster than the pair's factor (with
    ``confidence``: surely faster; only past it on the point ratios is inconclusive)."""
    spec = rule.burn_rate
    assert spec is not None  # only called for burn-rate rules
    at = sample.at
    pairs, spans, longest = burn.plan_of(spec)
    minutes = prev.minutes
    kind = sample.kind
    if kind is _VALUE and sample.errors is not None and sample.requests is not None:
        minutes = burn.add(minutes, at, sample.errors, sample.requests, at - longest)
    elif kind is _NO_DATA:  # no traffic: a minute covered, with nothing in it
        minutes = burn.add(minutes, at, 0.0, 0.0, at - longest)
    breach, errors, requests, covered, got, doubtful = burn.pressing(
        minutes, at, spec.objective, pairs, spans, spec.confidence
    )
    if kind is _ERROR:
        state = _blind(prev, sample, f"error: {sample.reason}", blind_after, minutes=minutes)
        return state._replace(errors=errors, requests=requests)
    if not got[longest][1] > 0:
        reason = f"no requests in the last {format_duration(longest)}"
        return _blind(prev, sample, reason, blind_after, minutes=minutes)
    ratio = min(errors / requests, 1.0) if requests > 0 else math.nan
    if breach:
        weighed = Sample(at, _VALUE, ratio, requests, errors=errors)
        new = _step_consecutive(rule, prev, weighed, is_breach=True)
    elif _kept_firing(rule, prev, at):
        weighed = Sample(at, _VALUE, ratio, requests, errors=errors)
        new = _held(prev, weighed, prev.breach_samples)
    elif doubtful:  # past a bar on the point ratios, not surely (``confidence``)
        judged = burn.judge(minutes, at, spec.objective, pairs, spec.confidence)
        reason = "not surely past the bar: " + next(j for j in judged if j.doubtful).text()
        new = RuleState(
            state=State.INCONCLUSIVE, value=ratio, requests=requests, at=at, blind_reason=reason
        )
    elif not covered:  # too little history to judge every pair
        new = RuleState(state=State.INCONCLUSIVE, value=ratio, requests=requests, at=at)
    else:
        # _quiet(ratio, requests, at) with the counts: most samples end here.
        # fmt: off
        return _tuple_new(RuleState, (_INACTIVE, None, None, None, 0, ratio, requests, at, None,
                                      "", False, (), errors, (), None, minutes, True))
        # fmt: on
    return new._replace(errors=errors, minutes=minutes)
