"""Benchmark: how fast *any* canary test can be on issue 16's traffic, and what the
faster-looking alternatives cost. A simulation of the statistics alone (no engine, no
analytics delay: add the delay to every time below), run through ``core.canary``.

Traffic: 10 requests/s, the new version at 10 %, 15 s windows, 0.5 % errors on the old
version; the bad new version at 5 % (10x). On the same simulated windows it runs:

- ``shipped``: ``core.canary`` as configured (mixture over ``min_effect`` 3x .. 51x);
- ``oracle point``: the same conditional test with all its weight on the true effect
  (10x): no mixture over effects can beat it, so it bounds what reshaping the mixture
  can win;
- ``grid 2x..20x``: a mixture concentrated on the effects that matter at 10 %;
- ``null margin 1.5x``: "at most 1.5x worse" as the null instead of "no worse";
- ``known baseline``: the new version's errors against the old version's rate taken as
  known (the true 0.5 %), the most the old version's large sample could give. Valid
  only if the old version's rate stays put during the split: the ``outage`` scenario
  (both versions at 5 % for 10 minutes, a backend failing) shows the price.

Scenarios: ``bad`` (seconds of data until the test rejects), ``healthy`` (false
rejections in 20-minute soaks, 80 windows) and ``outage`` (the same with the outage on
both versions from minute 5 to 15).

    .venv/bin/python bench/canary_limits.py [--bad 400] [--healthy 4000] [--outage 1000]
                                            [--bars 100,200,1000] [--seed 16]

``--bars`` replaces the variants by the shipped test at each bar (1 / (1 - confidence):
100 is 99 %, 1,000 is 99.9 %): where the frontier between speed and false rollbacks lies.

Seeded: the same arguments print the same figures.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.core.canary import grid, log_ratios, mixture
from watchdog.model import VersionCounts

WINDOW_S = 15.0
RPS = 10.0
SHARE = 0.1
BASE = 0.005
BAD = 0.05


@dataclass(frozen=True)
class Variant:
    name: str
    effects: tuple[float, ...]
    bar: float
    known: bool = False  # the old version's rate taken as known (BASE)
    margin: float = 1.0  # the null: the new version at most this many times worse


VARIANTS: tuple[Variant, ...] = (
    Variant("shipped, 99%", grid(3.0), 100.0),
    Variant("shipped, 99.9%", grid(3.0), 1000.0),
    Variant("oracle point 10x, 99.9%", (10.0,), 1000.0),
    Variant("grid 2x..20x, 99.9%", tuple(2.0 * 10 ** (i / 6) for i in range(7)), 1000.0),
    Variant("null margin 1.5x, 99%", grid(3.0), 100.0, margin=1.5),
    Variant("known baseline, 99.9%", grid(3.0), 1000.0, known=True),
)


def upper95(failures: int, runs: int) -> float:
    """The exact (Clopper-Pearson) one-sided 95 % upper bound, as bench/canary.py's
    (a copy: the bench scripts are run as files, not imported as a package)."""
    lo, hi = failures / runs, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        tail = sum(
            math.comb(runs, i) * mid**i * (1 - mid) ** (runs - i) for i in range(failures + 1)
        )
        lo, hi = (mid, hi) if tail > 0.05 else (lo, mid)
    return hi


def _binomial(rng: random.Random, n: int, p: float) -> int:
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


def _known(
    prev: tuple[float, ...], effects: tuple[float, ...], new: VersionCounts
) -> tuple[float, ...]:
    """Poisson likelihood ratio of the new version's errors, the old rate known."""
    mean = new.requests * BASE
    return tuple(
        v + new.errors * math.log(k) - mean * (k - 1.0) for k, v in zip(effects, prev, strict=True)
    )


def _margin(
    prev: tuple[float, ...], v: Variant, new: VersionCounts, old: VersionCounts
) -> tuple[float, ...]:
    """The conditional ratio against "k times worse" over "``margin`` times worse"."""
    if new.requests <= 0 or old.requests <= 0:
        return prev
    w = new.requests / (new.requests + old.requests)
    q = v.margin * w / (v.margin * w + 1.0 - w)
    out = []
    for k, before in zip(v.effects, prev, strict=True):
        p = k * w / (k * w + 1.0 - w)
        out.append(before + new.errors * math.log(p / q) + old.errors * math.log((1 - p) / (1 - q)))
    return tuple(out)


def _step(
    prev: tuple[float, ...], v: Variant, new: VersionCounts, old: VersionCounts
) -> tuple[float, ...]:
    if v.known:
        return _known(prev, v.effects, new)
    if v.margin != 1.0:
        return _margin(prev, v, new, old)
    return log_ratios(prev, v.effects, new, old)


def split(rng: random.Random, windows: int, rates: list[tuple[float, float]]) -> list[int | None]:
    """One simulated split: each variant's first rejecting window (None: none)."""
    logs = [len(v.effects) * (0.0,) for v in VARIANTS]
    first: list[int | None] = [None] * len(VARIANTS)
    for t in range(windows):
        n = _poisson(rng, RPS * WINDOW_S)
        n_new = _binomial(rng, n, SHARE)
        rate_new, rate_old = rates[t]
        new = VersionCounts("n", _binomial(rng, n_new, rate_new), n_new)
        old = VersionCounts("o", _binomial(rng, n - n_new, rate_old), n - n_new)
        for i, v in enumerate(VARIANTS):
            if first[i] is not None:
                continue
            logs[i] = _step(logs[i], v, new, old)
            if mixture(logs[i]) >= v.bar:
                first[i] = t + 1
        if all(f is not None for f in first):
            break
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bad", type=int, default=400)
    parser.add_argument("--healthy", type=int, default=4000)
    parser.add_argument("--outage", type=int, default=1000)
    parser.add_argument("--bars", help="the shipped test at these bars only (100 = 99%%)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    if args.bars:
        global VARIANTS  # noqa: PLW0603 (a script's variants, chosen once before any run)
        bars = [float(b) for b in args.bars.split(",")]
        VARIANTS = tuple(Variant(f"shipped, bar {b:g}", grid(3.0), b) for b in bars)
    started = time.perf_counter()
    rng = random.Random(args.seed)
    bad = [split(rng, 120, [(BAD, BASE)] * 120) for _ in range(args.bad)]
    healthy = [split(rng, 80, [(BASE, BASE)] * 80) for _ in range(args.healthy)]
    storm = [(BAD, BAD) if 20 <= t < 60 else (BASE, BASE) for t in range(80)]
    outage = [split(rng, 80, storm) for _ in range(args.outage)]
    print(f"canary limits: 10% of {RPS:g} req/s, {WINDOW_S:g}s windows, no analytics delay")
    for i, v in enumerate(VARIANTS):
        firsts = [r[i] for r in bad]
        took = sorted(math.inf if f is None else f * WINDOW_S for f in firsts)
        false = sum(r[i] is not None for r in healthy)
        storms = sum(r[i] is not None for r in outage)
        outage_text = f"; outage on both: {storms}/{len(outage)} false" if outage else ""
        print(
            f"  {v.name:24s} bad: median {statistics.median(took):.0f}s, "
            f"p90 {took[int(0.9 * len(took))]:.0f}s of data; healthy: {false}/{len(healthy)} false "
            f"= {1000 * false / len(healthy):.2f}/1,000 (95% upper bound "
            f"{1000 * upper95(false, len(healthy)):.2f}){outage_text}",
            flush=True,
        )
    print(f"wall time {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
