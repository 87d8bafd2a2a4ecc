"""``histogram_quantile`` for classic histograms, exactly as PromQL computes it.
Also the count of observations slower than a bucket bound (latency regression rules).

A port of ``BucketQuantile`` in Prometheus' ``promql/quantile.go`` (with
``coalesceBuckets``, ``ensureMonotonicAndIgnoreSmallDeltas`` and
``util/almost.Equal``), so a p95 computed from a scraped ``/metrics`` page equals
the one a Prometheus server would compute from the same bucket increases.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

# Bucket counts whose relative difference is below this are float noise, not a
# decrease (Prometheus' smallDeltaTolerance).
SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = sys.float_info.min  # smallest positive normal float64, as Go's minNormal
_MAX_FLOAT = sys.float_info.max


class QuantileResult(NamedTuple):
    """The quantile and the two repairs PromQL reports as info annotations."""

    value: float
    forced_monotonic: bool
    fixed_precision: bool


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The φ-quantile of cumulative ``(upper_bound, count)`` buckets, in any order.

    NaN when there is no ``+Inf`` bucket, fewer than two buckets after merging equal
    bounds, no observations, or φ is NaN; ``-Inf`` for φ < 0 and ``+Inf`` for φ > 1.
    A rank in the ``+Inf`` bucket gives the second-highest bound.
    """
    return bucket_quantile_detail(q, buckets).value


def bucket_quantile_detail(q: float, buckets: Sequence[tuple[float, float]]) -> QuantileResult:
    """``bucket_quantile`` plus whether monotonicity was forced or float noise ignored."""
    nan = QuantileResult(math.nan, False, False)
    if math.isnan(q):
        return nan
    if q < 0:
        return QuantileResult(-math.inf, False, False)
    if q > 1:
        return QuantileResult(math.inf, False, False)
    # Prometheus indexes the last bucket without a check (callers never pass none)
    # and does not expect NaN bounds (its sort order is then undefined): NaN for both.
    if not buckets or any(math.isnan(bound) for bound, _ in buckets):
        return nan
    ordered = sorted(buckets, key=_bound)
    if ordered[-1][0] != math.inf:
        return nan

    bounds, counts = _coalesce(ordered)
    forced, fixed = _ensure_monotonic_and_ignore_small_deltas(counts, SMALL_DELTA_TOLERANCE)

    if len(bounds) < 2:
        return nan
    observations = counts[-1]
    if observations == 0:
        return nan
    rank = q * observations
    b = _search(len(bounds) - 1, lambda i: counts[i] >= rank)

    if b == len(bounds) - 1:
        return QuantileResult(bounds[-2], forced, fixed)
    if b == 0 and bounds[0] <= 0:
        return QuantileResult(bounds[0], forced, fixed)
    bucket_start = 0.0
    bucket_end = bounds[b]
    count = counts[b]
    if b > 0:
        bucket_start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return QuantileResult(
        bucket_start + (bucket_end - bucket_start) * (rank / count), forced, fixed
    )


def slower_than(bound: float, by_le: dict[float, float]) -> tuple[float, float] | str:
    """``(slower, total)`` observations from bucket increases by ``le``: ``total`` is
    the ``+Inf`` bucket, ``slower`` what lies above the bucket whose bound is ``bound``.
    Only a bucket bound gives a count (between bounds it would be a guess): otherwise
    the reason, naming the bounds there are."""
    total = by_le.get(math.inf)
    if total is None:
        return 'no le="+Inf" bucket'
    for le, count in by_le.items():
        if almost_equal(le, bound, SMALL_DELTA_TOLERANCE):
            return max(total - count, 0.0), total
    shown = ", ".join(f"{le:g}" for le in sorted(by_le) if math.isfinite(le))
    return f"no bucket bound at {bound:g}s (the bounds: {shown or 'none'})"


def _bound(bucket: tuple[float, float]) -> float:
    return bucket[0]


def _coalesce(ordered: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Merge buckets with the same upper bound (their counts add up)."""
    bounds = [float(ordered[0][0])]
    counts = [float(ordered[0][1])]
    for bound, count in ordered[1:]:
        if bound == bounds[-1]:
            counts[-1] += count
        else:
            bounds.append(float(bound))
            counts.append(float(count))
    return bounds, counts


def _ensure_monotonic_and_ignore_small_deltas(
    counts: list[float], tolerance: float
) -> tuple[bool, bool]:
    """First ignore float-noise differences between neighbours (either direction),
    then raise any real decrease to the previous count; neither moves ``prev``."""
    forced_monotonic = fixed_precision = False
    prev = counts[0]
    for i in range(1, len(counts)):
        curr = counts[i]
        if curr == prev:
            continue
        if almost_equal(prev, curr, tolerance):
            counts[i] = prev
            fixed_precision = True
            continue
        if curr < prev:
            counts[i] = prev
            forced_monotonic = True
            continue
        prev = curr
    return forced_monotonic, fixed_precision


def almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Prometheus' ``util/almost.Equal``: relative difference below ``epsilon``."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, _MAX_FLOAT) < epsilon


def _search(n: int, predicate: Callable[[int], bool]) -> int:
    """Go's ``sort.Search``: the smallest i in [0, n) with predicate(i), else n. The
    same bisection, so even a non-monotonic predicate (NaN counts) lands where Go's does."""
    low, high = 0, n
    while low < high:
        middle = (low + high) >> 1
        if not predicate(middle):
            low = middle + 1
        else:
            high = middle
    return low
