"""How sure a count of errors makes us: the exact (Clopper-Pearson) binomial interval.

Pure arithmetic on two counts, no dependency (the daemon does not ship scipy): the
regularized incomplete beta function by its continued fraction, and the interval's
bounds as Beta quantiles found by bisection.

A confidence rule asks one question per sample, ``verdict``: is the error ratio behind
``errors`` of ``requests`` surely above the threshold, surely not, or can the evidence
not tell? The answer uses the two-sided interval at the rule's confidence (so each
one-sided statement holds at ``(1 + confidence) / 2``) and is computed from tail
probabilities at the threshold itself, without inverting: ``lower > t`` exactly when
``P(X >= errors | t) < alpha / 2``. Clopper-Pearson, unlike Wilson, never covers less
than its nominal level, which is what bounds the false rollbacks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 100_000


class Verdict(StrEnum):
    BREACH = "breach"  # surely on the wrong side of the threshold
    CLEAR = "clear"  # surely on the right side
    INCONCLUSIVE = "inconclusive"  # the interval straddles the threshold


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a > 0 and b > 0, got a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast on this side of the mean; use symmetry on the other.
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, front * _fraction(a, b, x) / a)
    return max(0.0, 1.0 - front * _fraction(b, a, 1.0 - x) / b)


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    return h  # converged to float precision long before: a, b are at most counts


def _clean(errors: float, requests: float) -> tuple[float, float]:
    if not (requests >= 0 and errors >= 0):
        raise ValueError(f"counts must be at least 0, got {errors} errors of {requests}")
    # Counters extrapolated one by one can show a few more errors than requests.
    return min(errors, requests), requests


def at_least(errors: float, requests: float, p: float) -> float:
    """``P(X >= errors)`` for ``X ~ Binomial(requests, p)`` (real counts allowed)."""
    x, n = _clean(errors, requests)
    if x <= 0:
        return 1.0
    return betainc(x, n - x + 1.0, p)


def at_most(errors: float, requests: float, p: float) -> float:
    """``P(X <= errors)`` for ``X ~ Binomial(requests, p)``."""
    x, n = _clean(errors, requests)
    if x >= n:
        return 1.0
    return 1.0 - betainc(x + 1.0, n - x, p)


def _quantile(a: float, b: float, q: float) -> float:
    """The ``q`` quantile of Beta(a, b), by bisection (60 halvings: float precision)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def interval(errors: float, requests: float, confidence: float) -> tuple[float, float]:
    """The two-sided Clopper-Pearson interval of the error ratio; ``(0, 1)`` for no requests."""
    x, n = _clean(errors, requests)
    alpha = 1.0 - confidence
    lower = 0.0 if x <= 0 else _quantile(x, n - x + 1.0, alpha / 2.0)
    upper = 1.0 if x >= n else _quantile(x + 1.0, n - x, 1.0 - alpha / 2.0)
    return lower, upper


@functools.lru_cache(maxsize=1 << 16)
def verdict(
    errors: float,
    requests: float,
    threshold: float,
    comparison: Literal["above", "below"],
    confidence: float,
) -> Verdict:
    """Is the ratio surely past ``threshold`` in the ``comparison``'s direction, surely
    not, or unknown? Strict like the evaluator: a bound equal to it decides nothing.
    Memoized (a pure function of counts that repeat), and most answers come from the
    quick tail bounds of ``_tails`` without the continued fraction."""
    half = (1.0 - confidence) / 2.0
    # lower > t  <=>  P(X >= x | t) < alpha/2;  upper < t  <=>  P(X <= x | t) < alpha/2.
    quick = _tails(errors, requests, threshold, half)
    if quick is None:
        surely_above = at_least(errors, requests, threshold) < half
        surely_below = at_most(errors, requests, threshold) < half
    else:
        surely_above, surely_below = quick
    if comparison == "above":
        if surely_above:
            return Verdict.BREACH
        return Verdict.CLEAR if surely_below else Verdict.INCONCLUSIVE
    if surely_below:
        return Verdict.BREACH
    return Verdict.CLEAR if surely_above else Verdict.INCONCLUSIVE


def _tails(errors: float, requests: float, p: float, half: float) -> tuple[bool, bool] | None:
    """``(P(X >= x) < half, P(X <= x) < half)`` when cheap bounds settle both, else None.

    Whole counts only (the binomial's own facts): a tail that holds the median is at
    least 1/2 (the median lies between floor and ceil of ``n p``), so never below
    ``half``; the other tail is at most Chernoff's ``exp(-n KL(x/n || p))``, so surely
    below ``half`` when that is (with a margin far above rounding)."""
    x, n = float(errors), float(requests)  # an int sum has no is_integer() before 3.12
    if not (x.is_integer() and n.is_integer() and 0 <= x <= n and n > 0 and 0 < p < 1):
        return None
    mean = n * p
    q = x / n
    if x <= math.floor(mean):  # P(X >= x) >= 1/2; the lower tail by Chernoff
        if q <= 0.0:
            log_tail = n * math.log1p(-p)
        else:
            log_tail = -n * (q * math.log(q / p) + (1.0 - q) * math.log((1.0 - q) / (1.0 - p)))
        return (False, True) if log_tail < math.log(half) - 1e-6 else None
    if x >= math.ceil(mean):  # P(X <= x) >= 1/2; the upper tail by Chernoff
        if q >= 1.0:
            log_tail = n * math.log(p)
        else:
            log_tail = -n * (q * math.log(q / p) + (1.0 - q) * math.log((1.0 - q) / (1.0 - p)))
        return (True, False) if log_tail < math.log(half) - 1e-6 else None
    return None


@dataclass(frozen=True, slots=True)
class Evidence:
    """The counts a verdict stood on, its interval and what it was held against."""

    errors: float
    requests: float
    confidence: float
    lower: float
    upper: float
    threshold: float

    @classmethod
    def of(cls, errors: float, requests: float, confidence: float, threshold: float) -> Evidence:
        lower, upper = interval(errors, requests, confidence)
        return cls(errors, requests, confidence, lower, upper, threshold)

    def text(self) -> str:
        """``3 errors / 10 requests, 99% interval 1.2%-70.0% vs 5%``."""
        return (
            f"{self.errors:g} errors / {self.requests:g} requests, "
            f"{self.confidence * 100:g}% interval {self.lower * 100:.2f}%-{self.upper * 100:.2f}%"
            f" vs {self.threshold * 100:g}%"
        )
