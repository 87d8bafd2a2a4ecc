"""The canary test's statistics, by simulation through ``core.canary`` itself (issue 16):
false rejections under the null stay below ``1 - confidence`` (with the exact 95 %
upper bound of the simulated rate, not a point estimate), also when an outage hits
both versions and the split moves; and the speed on a bad version, on a fixed seed.

The traffic is the bench's: 10 requests/s, the new version at 10 %, 15 s windows,
0.5 % errors (5 % for the bad version)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable

from watchdog.core.canary import grid, log_ratios, mixture
from watchdog.model import VersionCounts

Update = Callable[
    [tuple[float, ...], tuple[float, ...], VersionCounts, VersionCounts], tuple[float, ...]
]

WINDOW_S = 15.0
RPS = 10.0


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Inversion: quick for the small means here (Python 3.11 has no binomialvariate)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    u, k = rng.random(), 0
    pk = (1.0 - p) ** n
    cdf = pk
    while u > cdf and k < n:
        pk *= (n - k) / (k + 1) * p / (1.0 - p)
        k += 1
        cdf += pk
    return k


def _poisson(rng: random.Random, mean: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _first_crossing(
    rng: random.Random,
    windows: int,
    bar: float,
    share: float,
    rates: Callable[[int], tuple[float, float]],
    update: Update = log_ratios,
) -> int | None:
    """The first window (1-based) whose mixture reaches ``bar``, or None."""
    effects = grid(3.0)
    logs = len(effects) * (0.0,)
    for t in range(windows):
        n = _poisson(rng, RPS * WINDOW_S)
        n_new = _binomial(rng, n, share)
        rate_new, rate_old = rates(t)
        new = VersionCounts("n", _binomial(rng, n_new, rate_new), n_new)
        old = VersionCounts("o", _binomial(rng, n - n_new, rate_old), n - n_new)
        logs = update(logs, effects, new, old)
        if mixture(logs) >= bar:
            return t + 1
    return None


def _upper95(failures: int, runs: int) -> float:
    """The exact one-sided 95 % upper bound (Clopper-Pearson) of a binomial rate."""
    lo, hi = failures / runs, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        tail = sum(
            math.comb(runs, i) * mid**i * (1 - mid) ** (runs - i) for i in range(failures + 1)
        )
        lo, hi = (mid, hi) if tail > 0.05 else (lo, mid)
    return hi


def test_the_upper_bound_is_the_exact_one() -> None:
    assert abs(_upper95(0, 3000) - (1 - 0.05 ** (1 / 3000))) < 1e-6  # 0 seen: 1 - 0.05^(1/n)
    # 20 seen in 3,000: the Poisson approximation chi2_0.95(42) / 6000 = 58.124 / 6000
    assert abs(_upper95(20, 3000) - 58.124 / 6000) < 0.0001


def test_false_rollbacks_stay_below_one_percent_at_99_percent() -> None:
    """2,000 healthy 20-minute soaks (80 windows): the rate's 95 % upper bound is below
    1 %, so the simulation would see a test that breaks its guarantee."""
    rng = random.Random(16)
    runs = 2000
    crossed = sum(
        _first_crossing(rng, 80, 100.0, 0.1, lambda _: (0.005, 0.005)) is not None
        for _ in range(runs)
    )
    assert _upper95(crossed, runs) <= 0.01, crossed


def test_an_outage_on_both_versions_and_a_moving_split_are_not_blamed_on_the_new_one() -> None:
    """The concurrent control: errors jump to 30 % on both versions for 5 minutes and
    the share differs per split (1 % to 50 %); at 90 % confidence (a bar of 10, so
    that a broken guarantee shows with few runs) false rejections stay below 10 %."""
    rng = random.Random(61)
    runs = 1500
    crossed = sum(
        _first_crossing(rng, 40, 10.0, rng.uniform(0.01, 0.5), _outage) is not None
        for _ in range(runs)
    )
    assert _upper95(crossed, runs) <= 0.10, crossed


def _outage(t: int) -> tuple[float, float]:
    rate = 0.3 if 10 <= t < 30 else 0.005
    return rate, rate


def _known_rate(
    prev: tuple[float, ...], effects: tuple[float, ...], new: VersionCounts, _: VersionCounts
) -> tuple[float, ...]:
    """A test that takes the old version's rate (0.5 %) as known, ignoring its counts."""
    mean = new.requests * 0.005
    return tuple(
        v + new.errors * math.log(k) - mean * (k - 1.0) for k, v in zip(effects, prev, strict=True)
    )


def test_the_outage_check_catches_a_test_that_ignores_the_concurrent_old_version() -> None:
    """The check above can fail: a known-baseline test breaks its 10 % at once."""
    rng = random.Random(62)
    crossed = sum(
        _first_crossing(rng, 40, 10.0, rng.uniform(0.01, 0.5), _outage, _known_rate) is not None
        for _ in range(100)
    )
    assert crossed > 50


def test_speed_on_a_bad_version_on_a_fixed_seed() -> None:
    """0.5 % -> 5 % at 10 % of 10 req/s: the evidence suffices at 99 % after a median
    of 105 s of data and a p90 of 210 s (the bench adds the analytics delay and the
    read phase to reach 156 s / 263 s at a 60 s delay: goals 180 s / 300 s)."""
    rng = random.Random(1016)
    took = []
    for _ in range(300):
        windows = _first_crossing(rng, 120, 100.0, 0.1, lambda _: (0.05, 0.005))
        took.append(math.inf if windows is None else windows * WINDOW_S)
    took.sort()
    median, p90 = statistics.median(took), took[int(0.9 * len(took))]
    assert (median, p90) == (105.0, 210.0), (median, p90)
