"""Did a deploy make errors worse? An anytime-valid sequential test on two binomials.

The deploy splits one service's counts in two: ``base_errors`` of ``base_requests``
before it (a fixed look back), ``errors`` of ``requests`` since. The test is looked at
after every sample, so it must stay valid under continuous monitoring:

1. The baseline ratio is bounded from above, ``u0``: its exact (Clopper-Pearson)
   upper bound at one-sided level ``alpha / 2`` (``core.evidence``).
2. Since the deploy, a mixture likelihood ratio tests ``p <= u0`` against ratios
   ``u0 * k`` for effects ``k`` from ``min_effect`` up (a geometric grid, equal
   weights); an absolute ``min_effect`` (``+1.5%``) against ``u0 + d * 1.5^i``.
   Under any ``p <= u0`` each ratio, hence their mean, is a nonnegative
   supermartingale, so by Ville's inequality it ever reaches ``2 / alpha`` with
   probability at most ``alpha / 2``, however often one looks.

Together the false-alarm rate per deploy is at most ``alpha = 1 - confidence``.
``min_effect`` aims the test's power: an effect of that size or larger is found fast;
smaller ones need much more evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from watchdog.core.evidence import Verdict, interval

_GRID_STEP = 1.5
_GRID_SIZE = 12


def effects(min_effect: float, baseline_upper: float) -> tuple[float, ...]:
    """The alternatives: ``min_effect * 1.5^i`` while the ratio stays below 1."""
    grid = []
    effect = min_effect
    for _ in range(_GRID_SIZE):
        if baseline_upper * effect >= 1.0:
            break
        grid.append(effect)
        effect *= _GRID_STEP
    if not grid:  # the baseline bound is so high that only "everything fails" is worse
        grid.append((1.0 + 1.0 / max(baseline_upper, 1e-12)) / 2.0)
    return tuple(grid)


def absolute_effects(increase: float, baseline_upper: float) -> tuple[float, ...]:
    """The alternatives of an absolute effect, as ratios to the baseline's bound:
    ``u0 + increase * 1.5^i`` while it stays below 1."""
    p0 = max(baseline_upper, 1e-12)
    grid = []
    step = increase
    for _ in range(_GRID_SIZE):
        if p0 + step >= 1.0:
            break
        grid.append((p0 + step) / p0)
        step *= _GRID_STEP
    if not grid:  # only "everything fails" is that much worse
        grid.append((1.0 + 1.0 / p0) / 2.0)
    return tuple(grid)


def log_mixture(errors: float, requests: float, p0: float, grid: tuple[float, ...]) -> float:
    """``log`` of the mean likelihood ratio of ``p0 * k`` over ``p0``, ``k`` in ``grid``."""
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"the null ratio must lie in (0, 1), got {p0}")
    x = min(errors, requests)
    logs = []
    for k in grid:
        p1 = min(p0 * k, 1.0 - 1e-12)
        logs.append(
            x * math.log(p1 / p0)
            + (requests - x) * math.log1p(-p1)
            - (requests - x) * math.log1p(-p0)
        )
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))


@dataclass(frozen=True, slots=True)
class RegressionEvidence:
    """What a regression verdict stood on: both counts, the baseline's upper bound,
    the effect estimate and the e-value against the bar it must reach."""

    base_errors: float
    base_requests: float
    errors: float
    requests: float
    baseline_upper: float
    effect: float | None  # since/before ratio; None when it is undefined (0 before)
    e_value: float
    needed: float
    min_effect: float
    confidence: float
    absolute: bool = False  # min_effect is an increase of the ratio, not a ratio of ratios

    @property
    def verdict(self) -> Verdict:
        return Verdict.BREACH if self.e_value >= self.needed else Verdict.INCONCLUSIVE

    def text(self) -> str:
        """``since deploy 30 errors / 300 requests vs before 180 / 36000 (10x); e 2e+05 >= 200``."""
        effect = "n/a" if self.effect is None else f"{self.effect:.3g}x"
        op = ">=" if self.verdict is Verdict.BREACH else "<"
        aim = f"+{self.min_effect * 100:g}%" if self.absolute else f"{self.min_effect:g}x"
        return (
            f"since deploy {self.errors:g} errors / {self.requests:g} requests vs before "
            f"{self.base_errors:g} / {self.base_requests:g} (effect {effect}, test aims at "
            f"{aim}); e-value {self.e_value:.3g} {op} {self.needed:g} "
            f"({self.confidence * 100:g}% confidence)"
        )


def baseline_upper(base_errors: float, base_requests: float, confidence: float) -> float:
    """The exact upper bound of the baseline ratio at one-sided level ``alpha / 2``."""
    return interval(base_errors, base_requests, confidence)[1]  # two-sided at 1-alpha


def judge(
    base_errors: float,
    base_requests: float,
    errors: float,
    requests: float,
    min_effect: float,
    confidence: float,
    upper: float | None = None,
    absolute: bool = False,
) -> RegressionEvidence:
    """The sequential test's state after these counts (``base_requests`` above 0);
    ``upper`` is ``baseline_upper`` of the first two, when already known;
    ``absolute``: ``min_effect`` is an increase of the ratio (``+1.5%`` is 0.015)."""
    alpha = 1.0 - confidence
    if upper is None:
        upper = baseline_upper(base_errors, base_requests, confidence)
    p0 = min(max(upper, 1e-9), 1.0 - 1e-9)
    grid = absolute_effects(min_effect, p0) if absolute else effects(min_effect, p0)
    log_e = log_mixture(errors, requests, p0, grid) if requests > 0 else 0.0
    e_value = math.exp(min(log_e, 700.0))  # finite for JSON: far past any bar
    before = base_errors / base_requests
    since = errors / requests if requests > 0 else 0.0
    effect = since / before if before > 0 else None
    return RegressionEvidence(
        base_errors,
        base_requests,
        errors,
        requests,
        upper,
        effect,
        e_value,
        2.0 / alpha,
        min_effect,
        confidence,
        absolute,
    )
