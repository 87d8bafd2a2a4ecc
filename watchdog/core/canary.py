"""Is the new version of a gradual deployment worse than the old one? A sequential test
on the two versions' error counts over the same minutes.

Both versions serve at once, so the old one is a concurrent control (no "before the
deploy" to drift from). Given how many errors a window held, under "the new version
fails no more often than the old" each error came from the new version with a
probability at most its traffic share ``w`` in that window (a Poisson approximation
of two binomials: error rates are small). Against "the new one fails ``k`` times as
often" that probability is ``k w / (k w + 1 - w)``. The product over windows of the
likelihood ratios, averaged over a grid of effects ``k`` from ``min_effect`` up, is a
nonnegative supermartingale under the null, so by Ville's inequality it ever reaches
``1 / alpha`` with probability at most ``alpha = 1 - confidence``, however often one
looks (Netflix's anytime-valid tests on counts, Lindon and Malek 2022).

Why this test and not a faster-looking one (bench/canary_limits.py measures each):
conditioning loses nothing that a test valid for *any* common error rate could use.
The two-sample e-value against "both versions fail at one rate, whatever it is" that
grows fastest against "new fails ``k`` times the old" (its reverse information
projection is the pooled rate ``(n_new r_new + n_old r_old) / (n_new + n_old)``) is,
window by window, exactly this conditional ratio: the rates cancel, so plugging in an
estimate of the old version's rate changes nothing. Only a baseline taken as *known*
(the old rate assumed to stay put during the split) grows faster, by about 30 % at
10 % of traffic, and it blames the new version for any outage that hits both. The
mixture's shape matters little: all the weight on the true effect saves a few
seconds at most. Windows add up without loss: with a steady share the product over
windows equals the ratio on the summed counts.

A latency canary (``slower_than``) runs the same test on each version's requests
slower than the bound instead of its errors: "slow" in place of "error", new against
old over the same minutes. A sample without those counts for the bound is no evidence
(the rule is blind, saying so).

Head sampling thins both versions alike, so the test runs on the events the analytics
kept, never on scaled estimates (which would pretend to more evidence). A window read
twice counts once (``fresh_to``). No traffic on the new version is *inconclusive*,
a source outage *blind*: neither is ever a pass, nor a breach.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace

from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.evaluator import RuleState, State
from watchdog.model import Sample, SampleKind, Split, VersionCounts
from watchdog.rules.model import RuleSpec

_GRID_STEP = 1.5
_GRID_SIZE = 8  # 3x..51x: beyond ~50x at 10 % every error is the new one's anyway


def grid(min_effect: float) -> tuple[float, ...]:
    """The alternatives: ``min_effect * 1.5^i``."""
    return tuple(min_effect * _GRID_STEP**i for i in range(_GRID_SIZE))


def log_ratios(
    prev: tuple[float, ...], effects: tuple[float, ...], new: VersionCounts, old: VersionCounts
) -> tuple[float, ...]:
    """Each effect's log likelihood ratio after one more window of both versions."""
    if not (new.requests > 0 and old.requests > 0) or new.errors + old.errors <= 0:
        return prev  # no error, or one side unexposed: the window says nothing
    w = new.requests / (new.requests + old.requests)
    x_new, x_old = min(new.errors, new.requests), min(old.errors, old.requests)
    out = []
    for k, before in zip(effects, prev, strict=True):
        p = k * w / (k * w + 1.0 - w)
        out.append(before + x_new * math.log(p / w) + x_old * math.log((1.0 - p) / (1.0 - w)))
    return tuple(out)


def mixture(logs: tuple[float, ...]) -> float:
    """The mean likelihood ratio over the grid (finite: capped far past any bar)."""
    top = max(logs)
    value = top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))
    return math.exp(min(value, 700.0))


@dataclass(frozen=True, slots=True)
class CanaryEvidence:
    """What a canary verdict stood on: both versions' counts since the split began,
    the effect estimate, the e-value against its bar, how fresh and how sampled."""

    target: str
    new_version: str
    old_version: str
    new_percentage: float
    new_errors: float
    new_requests: float
    old_errors: float
    old_requests: float
    effect: float | None  # new/old error-ratio; None when the old one had no error
    e_value: float
    needed: float
    min_effect: float
    confidence: float
    fresh_to: float | None
    sample_interval: float
    # What the test counts: "errors", or "slow" (requests slower than ``slower_than_s``;
    # then ``effect`` is the ratio of slow shares and ``*_slow`` their counts).
    counted: str = "errors"
    slower_than_s: float | None = None
    new_slow: float | None = None
    old_slow: float | None = None

    @property
    def breached(self) -> bool:
        return self.e_value >= self.needed

    @property
    def new_counted(self) -> float:
        """The new version's events the test counts (errors, or slow requests)."""
        return self.new_errors if self.new_slow is None else self.new_slow

    def text(self) -> str:
        effect = "n/a" if self.effect is None else f"{self.effect:.3g}x"
        op = ">=" if self.breached else "<"
        sampled = f"; sampled 1 in {self.sample_interval:g}" if self.sample_interval > 1 else ""
        if self.slower_than_s is None or self.new_slow is None or self.old_slow is None:
            what, new_x, old_x = "errors", self.new_errors, self.old_errors
        else:
            what, new_x, old_x = (
                f"slower than {_ms(self.slower_than_s)}",
                self.new_slow,
                self.old_slow,
            )
        return (
            f"{self.target} new version {self.new_version} at {self.new_percentage:g}%: "
            f"{new_x:g} {what} / {self.new_requests:g} requests vs old "
            f"{self.old_version} {old_x:g} / {self.old_requests:g} (effect {effect}, "
            f"test aims at {self.min_effect:g}x); e-value {self.e_value:.3g} {op} "
            f"{self.needed:g} ({self.confidence * 100:g}% confidence){sampled}"
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


@dataclass(frozen=True, slots=True)
class CanaryState:
    """One rule's test of one split."""

    split: Split
    logs: tuple[float, ...]
    new: VersionCounts
    old: VersionCounts
    seen_to: float | None = None

    def evidence(self, rule: RuleSpec) -> CanaryEvidence:
        spec = rule.canary
        assert spec is not None
        new, old = _counted(rule, self.new), _counted(rule, self.old)
        old_ratio = old.errors / old.requests if old.requests else 0.0
        new_ratio = new.errors / new.requests if new.requests else 0.0
        slow = spec.slower_than is not None
        return CanaryEvidence(
            self.split.target,
            self.split.new,
            self.split.old,
            self.split.new_percentage,
            self.new.errors,
            self.new.requests,
            self.old.errors,
            self.old.requests,
            new_ratio / old_ratio if old_ratio > 0 else None,
            mixture(self.logs),
            1.0 / (1.0 - spec.confidence),
            spec.min_effect,
            spec.confidence,
            self.seen_to,
            max(self.new.scale, self.old.scale),
            "slow" if slow else "errors",
            spec.slower_than,
            new.errors if slow else None,
            old.errors if slow else None,
        )


def start(rule: RuleSpec, split: Split) -> CanaryState:
    assert rule.canary is not None
    zero = len(grid(rule.canary.min_effect)) * (0.0,)
    return CanaryState(split, zero, _zero(rule, split.new), _zero(rule, split.old))


def _zero(rule: RuleSpec, version: str) -> VersionCounts:
    """No events of ``version`` (none slow either, for a latency canary)."""
    assert rule.canary is not None
    bound = rule.canary.slower_than
    return VersionCounts(version, 0, 0, slow=None if bound is None else 0.0, slow_over_s=bound)


def _counted(rule: RuleSpec, v: VersionCounts) -> VersionCounts:
    """What the test counts of one version, as its ``errors``: its errors, or its
    requests slower than the rule's bound."""
    assert rule.canary is not None
    if rule.canary.slower_than is None:
        return v
    return VersionCounts(v.version, v.slow or 0.0, v.requests, v.scale)


def missing(rule: RuleSpec, sample: Sample) -> str:
    """Why a value sample is no evidence for a latency canary ("" when it is): it must
    count each version's requests slower than the rule's bound."""
    assert rule.canary is not None
    bound = rule.canary.slower_than
    if bound is None or sample.kind is not SampleKind.VALUE:
        return ""
    if all(v.slow is not None and v.slow_over_s == bound for v in sample.versions):
        return ""
    return f"the sample does not count requests slower than {_ms(bound)} per version"


def _add(total: VersionCounts, more: VersionCounts | None) -> VersionCounts:
    if more is None:
        return total
    slow = None if more.slow is None else (total.slow or 0.0) + more.slow
    return VersionCounts(
        total.version,
        total.errors + more.errors,
        total.requests + more.requests,
        more.scale,
        more.p95_s if more.p95_s is not None else total.p95_s,
        slow,
        more.slow_over_s if more.slow is not None else total.slow_over_s,
    )


def fold(rule: RuleSpec, state: CanaryState, sample: Sample) -> CanaryState:
    """The test after one sample: a new window of counts moves it, a re-read does not."""
    assert rule.canary is not None
    fresh = sample.fresh_to
    if sample.kind is not SampleKind.VALUE or fresh is None or fresh <= state.split.at:
        return state
    if (state.seen_to is not None and fresh <= state.seen_to) or missing(rule, sample):
        return state
    by_version = {v.version: v for v in sample.versions}
    new = by_version.get(state.split.new) or _zero(rule, state.split.new)
    old = by_version.get(state.split.old) or _zero(rule, state.split.old)
    effects = grid(rule.canary.min_effect)
    logs = log_ratios(state.logs, effects, _counted(rule, new), _counted(rule, old))
    return CanaryState(state.split, logs, _add(state.new, new), _add(state.old, old), fresh)


def rule_state(
    rule: RuleSpec, prev: RuleState, state: CanaryState | None, sample: Sample, blind_after: float
) -> RuleState:
    """The rule's state: idle without a split, blind on an outage, inconclusive until
    the test rejects, then pending/firing as ``for:`` says (a rejection stands)."""
    at = sample.at
    if state is None:
        return RuleState(state=State.INACTIVE, at=at)
    evidence = state.evidence(rule)
    n, x = evidence.new_requests, evidence.new_counted
    base = RuleState(at=at, value=x / n if n else math.nan, requests=n, errors=x)
    gap = missing(rule, sample)
    if sample.kind is not SampleKind.VALUE or gap:
        since = prev.blind_since if prev.blind_since is not None else at
        return base._replace(
            state=State.BLIND,
            blind_since=since,
            blind_reason=gap or f"{sample.kind.value}: {sample.reason}",
            blind_long=at - since >= blind_after,
        )
    sticky = (
        prev.breaching and prev.active_since is not None and prev.active_since >= state.split.at
    )
    if sticky or evidence.breached:
        active = prev.active_since if sticky and prev.active_since is not None else at
        firing = at - active >= rule.for_
        return base._replace(
            state=State.FIRING if firing else State.PENDING,
            active_since=active,
            fired_at=(prev.fired_at if prev.state is State.FIRING else at) if firing else None,
            last_breach_at=at,
            breach_samples=prev.breach_samples + 1 if sticky else 1,
        )
    reason = "" if n > 0 else f"no traffic on the new version {state.split.new}"
    return base._replace(state=State.INCONCLUSIVE, blind_reason=reason)


class Canaries:
    """The live splits (told by the deploy watch) and each canary rule's test."""

    def __init__(self) -> None:
        self.splits: dict[str, Split] = {}
        self.tests: dict[str, CanaryState] = {}

    def split(
        self,
        target: str,
        split: Split | None,
        rules: Iterable[RuleSpec] = (),
        windows: Mapping[str, Iterable[Sample]] | None = None,
    ) -> None:
        """What serves ``target`` now: a split, or None (one version at 100 %). A split
        learnt of late starts its tests with the windows' samples since it began."""
        if split is None:
            self.splits.pop(target, None)
            return
        self.splits[target] = split
        for rule in rules:
            if rule.canary is None or rule.canary_target != target:
                continue
            test = self.tests.get(rule.name)
            if test is not None and (test.split.new, test.split.old) == (split.new, split.old):
                continue
            test = start(rule, split)
            for sample in (windows or {}).get(rule.signal, ()):
                test = fold(rule, test, sample)
            self.tests[rule.name] = test

    def step(
        self, rule: RuleSpec, prev: RuleState, sample: Sample, blind_after: float
    ) -> RuleState:
        split = self.splits.get(rule.canary_target)
        test = self.tests.get(rule.name)
        if split is None:
            test = None
        elif test is None or (test.split.new, test.split.old) != (split.new, split.old):
            test = start(rule, split)
        else:  # the same pair at a new percentage: the evidence so far still stands
            test = CanaryState(split, test.logs, test.new, test.old, test.seen_to)
        if test is None:
            self.tests.pop(rule.name, None)
        else:
            test = self.tests[rule.name] = fold(rule, test, sample)
        return rule_state(rule, prev, test, sample, blind_after)

    def evidence(self, rule: RuleSpec) -> CanaryEvidence | None:
        test = self.tests.get(rule.name)
        return None if test is None else test.evidence(rule)

    def annotate(self, rule: RuleSpec, decision: Decision) -> Decision:
        """A canary decision says what it stood on, and what a rollback deploys."""
        evidence = self.evidence(rule)
        if evidence is None:
            return decision
        extra = {**decision.extra, "canary": asdict(evidence), "canary_text": evidence.text()}
        if decision.kind not in (DecisionKind.ROLLBACK, DecisionKind.NOTIFY):
            return replace(decision, extra=extra)
        act = (
            f"roll back: deploy 100% of {evidence.old_version}"
            if decision.kind is DecisionKind.ROLLBACK
            else "notify"
        )
        worse = (
            "fails more often"
            if evidence.slower_than_s is None
            else f"is slower than {_ms(evidence.slower_than_s)} more often"
        )
        why = (
            f"the new version {worse} than the old during the split: "
            f"{evidence.text()}; severity {rule.severity}: {act}"
        )
        # The bar is an effect (3x), so the observed value is the effect when defined.
        observed = decision.observed if evidence.effect is None else evidence.effect
        return replace(decision, why=why, extra=extra, observed=observed, unit="number")
