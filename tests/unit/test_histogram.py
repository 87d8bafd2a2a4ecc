"""``bucket_quantile`` against Prometheus' own histogram_quantile test cases.

The expected values come from ``promql/promqltest/testdata/histograms.test`` and
``promql/quantile_test.go`` in prometheus/prometheus. The ``.test`` cases evaluate
at 50m over series loaded as ``0+Nx10`` every 5m, so each bucket holds 10×N; the
quantile only depends on the proportions, which rates preserve.
"""

from __future__ import annotations

import math

import pytest

from watchdog.sources.histogram import bucket_quantile, bucket_quantile_detail

INF = math.inf

# testhistogram{start="positive"} and {start="negative"} at 50m.
POSITIVE = [(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 120.0)]
NEGATIVE = [(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0)]
# testhistogram3 (no observations in +Inf), at 50m.
POSITIVE3 = [(0.0, 0.0), (0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 110.0)]
NEGATIVE3 = [(-0.25, 0.0), (-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 20.0)]
# testhistogram2 at 7m: q(1/6), q(1/2), q(5/6) sit in the middle of a bucket.
MIDDLES = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (INF, 3.0)]
# sum by (le) (rate(request_duration_seconds_bucket[10m])) over the four job/instance series.
AGGREGATED = [(0.1, 1 + 2 + 3 + 4.0), (0.2, 3 + 5 + 4 + 7.0), (INF, 4 + 6 + 6 + 9.0)]
# nonmonotonic_bucket at 50m: decreasing counts are raised to the previous one.
NONMONOTONIC = [(0.1, 20.0), (1, 10.0), (10, 50.0), (100, 40.0), (1000, 90.0), (INF, 80.0)]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.0, POSITIVE, 0.0),
        (0.0, NEGATIVE, -0.2),
        (1.0, POSITIVE, 1.0),
        (1.0, NEGATIVE, 0.3),
        (0.2, POSITIVE, 0.048),
        (0.2, NEGATIVE, -0.2),
        (0.5, POSITIVE, 0.15),
        (0.5, NEGATIVE, -0.15),
        (0.8, POSITIVE, 0.72),
        (0.8, NEGATIVE, 0.3),
        (0.0, POSITIVE3, 0.0),
        (0.0, NEGATIVE3, -0.25),
        (0.25, POSITIVE3, 0.055),
        (0.25, NEGATIVE3, -0.225),
        (0.5, POSITIVE3, 0.125),
        (0.5, NEGATIVE3, -0.2),
        (0.75, POSITIVE3, 0.45),
        (0.75, NEGATIVE3, -0.15),
        (1.0, POSITIVE3, 1.0),
        (1.0, NEGATIVE3, -0.1),
        (1 / 6, MIDDLES, 1.0),
        (0.5, MIDDLES, 3.0),
        (5 / 6, MIDDLES, 5.0),
        (0.3, AGGREGATED, 0.075),
        (0.5, AGGREGATED, 0.1277777777777778),
        (0.01, NONMONOTONIC, 0.0045),
        (0.5, NONMONOTONIC, 8.5),
        (0.99, NONMONOTONIC, 979.75),
    ],
)
def test_histograms_test_cases(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    """Each case of Prometheus' histograms.test gives the same quantile here."""
    assert bucket_quantile(q, buckets) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_out_of_range_and_nan_quantiles() -> None:
    """φ < 0 is -Inf, φ > 1 is +Inf and φ = NaN is NaN, as in PromQL (whatever the buckets)."""
    assert bucket_quantile(-0.1, POSITIVE) == -INF
    assert bucket_quantile(1.01, NEGATIVE) == INF
    assert math.isnan(bucket_quantile(math.nan, POSITIVE))
    assert bucket_quantile(-0.1, []) == -INF


def test_rank_in_inf_bucket_is_second_highest_bound() -> None:
    """A rank beyond the largest finite bucket gives that bucket's bound, never more."""
    assert bucket_quantile(0.99, [(1.0, 10.0), (5.0, 50.0), (INF, 100.0)]) == 5.0


def test_lowest_bucket_starts_at_zero_only_above_zero() -> None:
    """Interpolation in the lowest bucket starts at 0 if its bound is positive; a bound
    <= 0 is returned as is."""
    assert bucket_quantile(0.5, [(4.0, 10.0), (INF, 10.0)]) == 2.0
    assert bucket_quantile(0.5, [(-1.0, 10.0), (INF, 10.0)]) == -1.0
    assert bucket_quantile(0.5, [(0.0, 10.0), (INF, 10.0)]) == 0.0


def test_unsorted_input_and_duplicate_bounds() -> None:
    """Buckets are sorted by bound and equal bounds merged (le="0.2" and le="2e-1"), as
    in the ``mixed_bucket`` case: 0.15 for q=0.5, 0.2 for q=0.75 and q=1."""
    mixed = [(INF, 4.0), (0.2, 1.0), (0.1, 1.0), (0.2, 1.0), (0.2, 1.0)]
    assert bucket_quantile(0.5, mixed) == pytest.approx(0.15)
    assert bucket_quantile(0.75, mixed) == 0.2
    assert bucket_quantile(1.0, mixed) == 0.2


@pytest.mark.parametrize(
    "buckets",
    [
        pytest.param([], id="no buckets"),
        pytest.param([(0.1, 1.0), (0.2, 3.0)], id="no +Inf bucket"),
        pytest.param([(INF, 0.0), (INF, 0.0)], id="one bucket after merging (+inf and +Inf)"),
        pytest.param([(INF, 5.0)], id="only +Inf"),
        pytest.param([(0.1, 0.0), (0.2, 0.0), (INF, 0.0)], id="no observations (idle rate)"),
        pytest.param([(math.nan, 1.0), (INF, 2.0)], id="NaN bound"),
    ],
)
def test_nan_cases(buckets: list[tuple[float, float]]) -> None:
    """No +Inf bucket, fewer than two buckets, a zero total (or a NaN bound) give NaN."""
    assert math.isnan(bucket_quantile(0.5, buckets))


def _real_example(counts: list[float]) -> list[tuple[float, float]]:
    bounds = [1, 5, 10, 25, 50, 64, 80, 100, 250, 1000, INF]
    return list(zip(bounds, counts, strict=True))


REAL_MONOTONIC = [
    6454661.3014166197, 8339611.2001912938, 14118319.2444762159, 14130031.5272856522,
    46001270.3030008152, *[46008473.8585563600] * 6,
]  # fmt: skip
REAL_NOISY = [
    6454661.3014166225, 8339611.2001912957, 14118319.2444762159, 14130031.5272856504,
    46001270.3030008227, 46008473.8585563824, 46008473.8585563898, 46008473.8585563824,
    46008473.8585563824, 46008473.8585563898, 46008473.8585563824,
]  # fmt: skip
BOUNDS2 = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, INF]
COUNTS2 = [9.6, 9.688888889, 9.755555556, 9.844444444, *[9.888888889] * 11]
NOISY2 = [*COUNTS2[:10], 9.888888889001, 9.888888889, 9.888888888999, 9.888888889, 9.888888889]


@pytest.mark.parametrize(
    ("buckets", "fixed", "expected"),
    [
        pytest.param(
            [(10, 10.0), (15, 15.0), (20, 15.0), (30, 15.0), (INF, 15.0)],
            False,
            {1: 15.0, 0.99: 14.85, 0.9: 13.5, 0.5: 7.5},
            id="simple - monotonic",
        ),
        pytest.param(
            [(10, 10.0), (15, 15.0), (20, 15.00000000001), (30, 15.0), (INF, 15.0)],
            True,
            {1: 15.0, 0.99: 14.85, 0.9: 13.5, 0.5: 7.5},
            id="simple - non-monotonic middle",
        ),
        pytest.param(
            _real_example(REAL_MONOTONIC),
            False,
            {1: 64.0, 0.99: 49.64475715376406, 0.9: 46.39671690938454, 0.5: 31.96098248992002},
            id="real example - monotonic",
        ),
        pytest.param(
            _real_example(REAL_NOISY),
            True,
            {1: 64.0, 0.99: 49.64475715376406, 0.9: 46.39671690938454, 0.5: 31.96098248992002},
            id="real example - non-monotonic",
        ),
        pytest.param(
            list(zip(BOUNDS2, COUNTS2, strict=True)),
            False,
            {1: 0.1, 0.99: 0.03468750000281261, 0.9: 0.00463541666671875,
             0.5: 0.0025752314815104174},
            id="real example 2 - monotonic",
        ),
        pytest.param(
            list(zip(BOUNDS2, NOISY2, strict=True)),
            True,
            {1: 0.1, 0.99: 0.03468750000281261, 0.9: 0.00463541666671875,
             0.5: 0.0025752314815104174},
            id="real example 2 - non-monotonic",
        ),
    ],
)  # fmt: skip
def test_quantile_go_forced_monotonicity_cases(
    buckets: list[tuple[float, float]], fixed: bool, expected: dict[float, float]
) -> None:
    """quantile_test.go: differences below 1e-12 (relative) are float noise, ignored
    in either direction without counting as forced monotonicity."""
    for q, value in expected.items():
        result = bucket_quantile_detail(q, buckets)
        assert result.value == pytest.approx(value, rel=1e-12)
        assert result.forced_monotonic is False
        assert result.fixed_precision is fixed


def test_real_decrease_is_forced_and_reported() -> None:
    """A decrease beyond the tolerance is raised to the previous count and reported."""
    result = bucket_quantile_detail(0.5, NONMONOTONIC)
    assert result == (8.5, True, False)


def test_input_is_not_modified() -> None:
    """The caller's buckets keep their order and counts (Go sorts in place; we copy)."""
    buckets = [(INF, 80.0), (1.0, 10.0), (0.1, 20.0)]
    bucket_quantile(0.5, buckets)
    assert buckets == [(INF, 80.0), (1.0, 10.0), (0.1, 20.0)]
