"""SLO burn rates (the SRE workbook's multiwindow, multi-burn-rate alerts), on counts.

An objective of 99.9 % leaves an error budget of 0.1 %; a burn rate is the error
ratio over that budget. A pair of windows breaches when both the long and the short
window burn faster than the pair's ``factor`` (14.4 over 1 h and 5 m pages on 2 % of
a 30-day budget gone): the long window says it matters, the short one that it is
still happening. Counts are kept per minute (``core.minutes``).

With a ``confidence`` (for low traffic, where an hour holds a few dozen requests) a
pair breaches only while both windows' error ratios are *surely* past the bar: the
lower bound of ``core.evidence``'s exact interval at that confidence, by the same
``verdict`` as confidence rules. A pair whose point ratios are past the bar while a
bound is not is *doubtful*: the rule is inconclusive, never firing.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.core.evidence import Verdict, interval, verdict
from watchdog.core.minutes import BUCKET_S, NO_MINUTES, Minutes, add, totals, window_totals
from watchdog.rules.model import BurnRateSpec
from watchdog.units import format_duration

__all__ = [
    "BUCKET_S",
    "NO_MINUTES",
    "BurnEvidence",
    "Minutes",
    "add",
    "judge",
    "plan_of",
    "pressing",
    "sure",
    "totals",
]

Pairs = tuple[tuple[float, float, float], ...]
# Per burn-rate spec (by identity, the spec kept to check it): its pairs, every window
# of them and the longest, resolved once rather than per sample. Bounded: cleared past
# a size no rule set reaches.
_PLANS: dict[int, tuple[BurnRateSpec, Pairs, tuple[float, ...], float]] = {}


def plan_of(spec: BurnRateSpec) -> tuple[Pairs, tuple[float, ...], float]:
    """The spec's ``(long, short, factor)`` pairs, every window of them, the longest."""
    got = _PLANS.get(id(spec))
    if got is None or got[0] is not spec:
        if len(_PLANS) > 4096:
            _PLANS.clear()
        pairs = tuple((w.long, w.short, w.factor) for w in spec.windows)
        spans = tuple(sorted({s for p in pairs for s in p[:2]}))
        got = _PLANS[id(spec)] = (spec, pairs, spans, max(p[0] for p in pairs))
    return got[1], got[2], got[3]


def sure(errors: float, requests: float, bar: float, confidence: float) -> bool:
    """Is the error ratio behind the counts surely above ``bar`` (its lower bound at
    ``confidence`` strictly past it)? ``verdict`` is memoized: counts repeat."""
    return verdict(errors, requests, bar, "above", confidence) is Verdict.BREACH


@dataclass(frozen=True, slots=True)
class BurnEvidence:
    """One pair of windows as judged: both windows' counts against the pair's bar."""

    objective: float
    factor: float
    long_s: float
    long_errors: float
    long_requests: float
    short_s: float
    short_errors: float
    short_requests: float
    covered: bool = True  # the recorded counts reach back over the whole long window
    confidence: float | None = None  # the bounds' confidence (None: point ratios)

    @property
    def bar(self) -> float:
        """The error ratio at which the budget burns ``factor`` times too fast."""
        return self.factor * (1.0 - self.objective)

    def burn(self, errors: float, requests: float) -> float:
        return (errors / requests) / (1.0 - self.objective) if requests > 0 else 0.0

    @property
    def over(self) -> bool:
        """Both point ratios past the bar (the workbook's breach), long window covered."""
        bar = self.bar
        return (
            self.covered
            and self.long_requests > 0
            and self.short_requests > 0
            and self.long_errors / self.long_requests > bar
            and self.short_errors / self.short_requests > bar
        )

    @property
    def breached(self) -> bool:
        if not self.over:
            return False
        confidence, bar = self.confidence, self.bar
        return confidence is None or (
            sure(self.long_errors, self.long_requests, bar, confidence)
            and sure(self.short_errors, self.short_requests, bar, confidence)
        )

    @property
    def doubtful(self) -> bool:
        """Past the bar on the point ratios, not surely: the rule is inconclusive."""
        return self.over and not self.breached

    def lower_burn(self, errors: float, requests: float) -> float:
        """The burn rate at the error ratio's lower bound (``confidence`` set)."""
        assert self.confidence is not None
        if not requests > 0:
            return 0.0
        return interval(errors, requests, self.confidence)[0] / (1.0 - self.objective)

    def text(self) -> str:
        """``burn 20x over 1h (120 errors / 6000 requests) and 31x over 5m (...) vs 14.4x``;
        with a confidence ``burn >= 18x (99.9% lower bound) over 1h (...) and >= ...``."""
        long, short = format_duration(self.long_s), format_duration(self.short_s)
        confidence = self.confidence
        if confidence is not None:
            return (
                f"burn >= {self.lower_burn(self.long_errors, self.long_requests):.3g}x "
                f"({confidence * 100:g}% lower bound) over {long} "
                f"({self.long_errors:g} errors / {self.long_requests:g} requests) and "
                f">= {self.lower_burn(self.short_errors, self.short_requests):.3g}x over "
                f"{short} ({self.short_errors:g} / {self.short_requests:g}) vs "
                f"{self.factor:g}x of a {self.objective * 100:g}% objective"
            )
        return (
            f"burn {self.burn(self.long_errors, self.long_requests):.3g}x over {long} "
            f"({self.long_errors:g} errors / {self.long_requests:g} requests) and "
            f"{self.burn(self.short_errors, self.short_requests):.3g}x over {short} "
            f"({self.short_errors:g} / {self.short_requests:g}) vs {self.factor:g}x "
            f"of a {self.objective * 100:g}% objective"
        )


def judge(
    minutes: Minutes,
    at: float,
    objective: float,
    pairs: tuple[tuple[float, float, float], ...],
    confidence: float | None = None,
) -> tuple[BurnEvidence, ...]:
    """Each ``(long, short, factor)`` pair as it stands at ``at``. A pair whose long
    window reaches back before the first recorded minute (a fresh start) cannot
    breach: an hour's bar met by five minutes of data would page on one error."""
    out = []
    oldest = minutes.oldest
    first = at if oldest is None else oldest
    for long_s, short_s, factor in pairs:
        long_e, long_n = totals(minutes, at, long_s)
        short_e, short_n = totals(minutes, at, short_s)
        covered = first <= at - long_s + BUCKET_S
        out.append(
            BurnEvidence(
                objective,
                factor,
                long_s,
                long_e,
                long_n,
                short_s,
                short_e,
                short_n,
                covered,
                confidence,
            )
        )
    return tuple(out)


def pressing(
    minutes: Minutes,
    at: float,
    objective: float,
    pairs: tuple[tuple[float, float, float], ...],
    spans: tuple[float, ...],
    confidence: float | None = None,
) -> tuple[bool, float, float, bool, dict[float, tuple[float, float]], bool]:
    """What ``judge`` tells the evaluator, without building the evidence: does a pair
    breach; the long window's counts of the first that does (else of the first
    doubtful pair, else of the first pair); is every pair's long window covered; each
    of ``spans`` (every pair's windows) as ``totals`` gives it; is a pair doubtful (none
    breaching). The same sums and comparisons as ``judge`` and ``BurnEvidence``."""
    oldest = minutes.oldest
    first = at if oldest is None else oldest
    budget = 1.0 - objective
    got = window_totals(minutes, at, spans)
    covered_all = True
    found: tuple[float, float] | None = None  # the first breaching pair's long window
    doubt: tuple[float, float] | None = None  # the first doubtful pair's
    for long_s, short_s, factor in pairs:
        if not first <= at - long_s + BUCKET_S:
            covered_all = False  # this pair cannot breach
            continue
        if found is not None:
            continue
        long_e, long_n = long_t = got[long_s]
        short_e, short_n = got[short_s]
        bar = factor * budget
        if long_n > 0 and short_n > 0 and long_e / long_n > bar and short_e / short_n > bar:
            # The bounds are asked for only here: rare, and ``verdict`` is memoized.
            if confidence is None or (
                sure(long_e, long_n, bar, confidence) and sure(short_e, short_n, bar, confidence)
            ):
                found = long_t
            elif doubt is None:
                doubt = long_t
    shown = found if found is not None else doubt
    errors, requests = got[pairs[0][0]] if shown is None else shown
    doubtful = found is None and doubt is not None
    return found is not None, errors, requests, covered_all, got, doubtful
