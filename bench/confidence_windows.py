"""Benchmark: the confidence rules' windows at low traffic, on many simulated days fast.

A vectorized replay of just the confidence rules' verdicts (``above: 5%``,
``confidence`` and ``window`` as given, ``for: 0``, so a rule fires on its first
breaching sample): 15 s samples of Poisson traffic with the daily cycle of
``bench/decisions.py`` at a 0.5 % error baseline, each window's error and request sums
looked up in a table of ``watchdog.core.evidence.verdict`` (the engine's own function).
It answers what ``decisions.py`` cannot in the time: false days out of tens of
thousands, and the outage time of each window and of their union.

    .venv/bin/python bench/confidence_windows.py [--rate 1] [--days 20000] [--windows 5m,3m]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.core.evidence import Verdict, verdict

STEP = 15.0
DAY_STEPS = 5760
NMAX = 200  # window sums above this never occur at these rates


def breach_table(confidence: float) -> np.ndarray:
    table = np.zeros((NMAX + 1, NMAX + 1), bool)
    for n in range(1, NMAX + 1):
        for e in range(n + 1):
            table[e, n] = verdict(float(e), float(n), 0.05, "above", confidence) is Verdict.BREACH
    return table


def window_hits(table: np.ndarray, req: np.ndarray, err: np.ndarray, size: int) -> np.ndarray:
    """Per sample, whether the trailing ``size`` samples' counts breach."""
    cs_e, cs_n = np.cumsum(err, axis=1), np.cumsum(req, axis=1)
    e, n = cs_e.copy(), cs_n.copy()
    e[:, size:] -= cs_e[:, :-size]
    n[:, size:] -= cs_n[:, :-size]
    hits: np.ndarray = table[np.minimum(e, NMAX), np.minimum(n, NMAX)]
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1.0, help="requests a minute")
    parser.add_argument("--days", type=int, default=20000)
    parser.add_argument("--trials", type=int, default=20000, help="outages")
    parser.add_argument("--windows", default="5m,3m", help="whole minutes")
    parser.add_argument("--confidence", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(w.removesuffix("m")) * 4 for w in args.windows.split(",")]
    table = breach_table(args.confidence)
    rng = np.random.default_rng(args.seed)
    cycle = 1 + 0.5 * np.sin(2 * np.pi * np.arange(DAY_STEPS) * STEP / 86400)
    false = dict.fromkeys(sizes, 0)
    union = 0
    for start in range(0, args.days, 2000):
        k = min(2000, args.days - start)
        req = rng.poisson(args.rate * cycle * STEP / 60, size=(k, DAY_STEPS))
        err = rng.binomial(req, 0.005)
        any_hit = np.zeros(k, bool)
        for size in sizes:
            hit = window_hits(table, req, err, size).any(axis=1)
            false[size] += int(hit.sum())
            any_hit |= hit
        union += int(any_hit.sum())
    print(f"{args.rate:g} req/min, {args.days} healthy days, {args.confidence:.4g} confidence")
    for size in sizes:
        print(f"  {size // 4}m window: {false[size]} false days")
    print(f"  union: {union} false days")
    before = 240  # an hour at the baseline, then every request fails
    steps = before + 240
    req = rng.poisson(args.rate * STEP / 60, size=(args.trials, steps))
    failing = np.arange(steps) * STEP - STEP >= before * STEP
    err = rng.binomial(req, np.where(failing, 1.0, 0.005))
    first_any = np.full(args.trials, np.inf)
    for size in sizes:
        hit = window_hits(table, req, err, size)
        hit[:, :before] = False
        first = np.where(hit.any(axis=1), hit.argmax(axis=1) * STEP - before * STEP, np.inf)
        first_any = np.minimum(first_any, first)
        print(f"  outage, {size // 4}m: median {np.median(first) / 60:.2f} min, "
              f"p95 {np.quantile(first, 0.95) / 60:.2f} min")  # fmt: skip
    print(f"  outage, union: median {np.median(first_any) / 60:.2f} min, "
          f"p95 {np.quantile(first_any, 0.95) / 60:.2f} min")  # fmt: skip


if __name__ == "__main__":
    main()
