"""Benchmark: how well rules decide, on simulated traffic through the real engine.

Poisson requests with a daily cycle (±50 % around the mean), binomial errors at a
0.5 % healthy baseline, samples every 15 s on a virtual clock, fed to one
``watchdog.core.engine.Engine`` that holds every strategy's rules side by side on the
same simulated traffic:

- (a) ``fixed``: the runbook's "error ratio > 5 % for 5 min", on the ratio of the
  trailing 5 minutes (``rate(errors[5m]) / rate(requests[5m])``, as usually written);
- (b) ``min-req``: the same with ``min_requests: 20`` (requests in those 5 minutes);
- (c) ``flagger``: a Flagger/Argo-style canary check, emulated here (it is not a
  watchdog rule): for the 10 minutes after a deploy, one check a minute on the last
  minute's point ratio, "no values" counted as a failed check (as Flagger does),
  rollback at 3 failed checks; nothing watches outside that analysis;
- (d) ``new``: a confidence rule (99.9 %, 5 m window: at 99 % two failures in a
  row at one request a minute are conclusive, about one healthy day in thirty), a
  deploy-regression rule (2x, 99 %) and burn-rate rules (99 % objective; 14.4x over
  1 h and 5 m, 6x over 6 h and 30 m); the first of them to decide counts.

Scenarios, per traffic level (requests a minute):

- ``healthy``: whole days at the baseline with one good deploy at noon; a day counts
  as a false rollback for a strategy that asks for one;
- ``outage``: an hour at the baseline, then every request fails: minutes to rollback;
- ``5pct`` / ``2pct``: an hour at the baseline, then a deploy that takes errors to 5 %
  (2 %): seconds from the deploy to the rollback request.

    .venv/bin/python bench/decisions.py [--days 20] [--trials 200] [--rates 1,10,100,600,1000]

Seeded: the same arguments print the same table.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.core.decision import DecisionKind
from watchdog.core.engine import Engine
from watchdog.model import Sample
from watchdog.rules.load import RuleSet, load_rules

STEP = 15.0
DAY = 86400.0
BASELINE = 0.005
STRATEGIES = ("fixed", "min-req", "flagger", "new")

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 1h}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
  # The runbook's rule as usually written: rate(errors[5m]) / rate(requests[5m]).
  ratio_5m: {source: prom, query: "q", requests_query: "r", unit: ratio}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: fixed, signal: ratio_5m, above: 5%, for: 5m, severity: critical,
     rollback: [worker]}
  - {name: min-req, signal: ratio_5m, above: 5%, for: 5m, min_requests: 20,
     severity: critical, rollback: [worker]}
  - {name: new-confidence, signal: error_rate, above: 5%, confidence: 99.9%, window: 5m,
     severity: critical, rollback: [worker]}
  - name: new-regression
    signal: error_rate
    regression: {min_effect: 2x, confidence: 99%, baseline: 1h, watch: 1h}
    severity: critical
    rollback: [worker]
  - name: new-burn
    signal: error_rate
    burn_rate:
      objective: 99%
      windows: [{long: 1h, short: 5m, factor: 14.4}, {long: 6h, short: 30m, factor: 6}]
    severity: critical
    rollback: [worker]
"""


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:  # normal approximation: exact enough, and fast
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def binomial(rng: random.Random, n: int, p: float) -> int:
    if p >= 1.0:
        return n
    if n * p * (1 - p) > 25:
        return min(n, max(0, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))
    if n < 60:
        return sum(rng.random() < p for _ in range(n))
    return poisson(rng, n * p)  # small n*p: Poisson is the binomial's limit


@dataclass
class Run:
    """One simulated stretch: every strategy's first rollback time (None: never)."""

    first: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(STRATEGIES))


def simulate(
    ruleset: RuleSet,
    rng: random.Random,
    per_minute: float,
    seconds: float,
    ratio_at: Callable[[float], float],
    deploy_at: float | None,
    daily: bool,
) -> Run:
    engine = Engine(ruleset)
    run = Run()
    minute: list[tuple[float, int, int]] = []  # this minute's samples, for the flagger check
    failed = 0
    recent: deque[tuple[int, int]] = deque(maxlen=int(300 / STEP))
    t = 0.0
    deployed = False
    while t < seconds:
        if deploy_at is not None and not deployed and t >= deploy_at:
            engine.deployed("worker", deploy_at)
            deployed = True
        cycle = 1.0 + 0.5 * math.sin(2 * math.pi * t / DAY) if daily else 1.0
        requests = poisson(rng, per_minute * cycle * STEP / 60.0)
        # The sample at t counts (t - 15 s, t]: its errors are that stretch's.
        errors = binomial(rng, requests, ratio_at(t - STEP))
        sample = (
            Sample.ratio(t, errors, requests)
            if requests
            else Sample.no_data(t, "no traffic: requests_query has no series")
        )
        recent.append((errors, requests))
        e5, n5 = sum(e for e, _ in recent), sum(n for _, n in recent)
        sliding = Sample.of(t, e5 / n5, n5) if n5 else Sample.no_data(t, "no traffic in 5m")
        observed = engine.observe("error_rate", sample).decisions
        for decision in (*observed, *engine.observe("ratio_5m", sliding).decisions):
            if decision.kind is DecisionKind.ROLLBACK:
                name = "new" if decision.rule.startswith("new-") else decision.rule
                if run.first[name] is None:
                    run.first[name] = t
        minute.append((t, errors, requests))
        if len(minute) == 60 / STEP:
            failed += _flagger_check(minute, deploy_at, t)
            if failed >= 3 and run.first["flagger"] is None:
                run.first["flagger"] = t
            minute = []
        t += STEP
    return run


START = 3600.0  # an hour at the baseline before each incident (the windows fill)


def _step_to(bad: float) -> Callable[[float], float]:
    return lambda t: bad if t >= START else BASELINE


def _flagger_check(minute: list[tuple[float, int, int]], deploy_at: float | None, t: float) -> int:
    """1 when this minute's check fails during a 10-minute analysis after the deploy."""
    if deploy_at is None or not deploy_at <= t < deploy_at + 600:
        return 0
    errors = sum(e for _, e, _ in minute)
    requests = sum(n for _, _, n in minute)
    return 1 if requests == 0 or errors / requests > 0.05 else 0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _times(runs: list[Run], name: str, start: float) -> list[float]:
    out = []
    for run in runs:
        first = run.first[name]
        out.append(math.inf if first is None else first - start)
    return out


def _show(values: list[float], unit: float) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "never"
    median = statistics.median(values)
    p95 = _quantile(values, 0.95)
    text = "never" if not math.isfinite(median) else f"{median / unit:.1f}"
    text += " / " + ("never" if not math.isfinite(p95) else f"{p95 / unit:.1f}")
    return text + f" ({len(finite)}/{len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=20, help="healthy days per traffic level")
    parser.add_argument("--trials", type=int, default=200, help="runs per incident scenario")
    parser.add_argument("--rates", default="1,10,100,600,1000", help="requests a minute")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(RULES)
        ruleset = load_rules([path])
    rng = random.Random(args.seed)
    started = time.perf_counter()
    header = f"{'req/min':>8} {'scenario':22} " + " ".join(f"{s:>22}" for s in STRATEGIES)
    print(header)
    for rate in (float(r) for r in args.rates.split(",")):
        healthy = [
            simulate(ruleset, rng, rate, DAY, lambda t: BASELINE, DAY / 2, daily=True)
            for _ in range(args.days)
        ]
        cells = [
            f"{sum(r.first[s] is not None for r in healthy)}/{len(healthy)}" for s in STRATEGIES
        ]
        print(f"{rate:>8g} {'false rollbacks (days)':22} " + " ".join(f"{c:>22}" for c in cells))
        scenarios = (
            ("outage: min to rollback", 1.0, 60.0),
            ("5%: s to rollback", 0.05, 1.0),
            ("2%: s to rollback", 0.02, 1.0),
        )
        for label, bad, unit in scenarios:
            runs = [
                simulate(
                    ruleset,
                    rng,
                    rate,
                    START + 1800.0,
                    _step_to(bad),
                    None if bad >= 1.0 else START,
                    daily=False,
                )
                for _ in range(args.trials)
            ]
            cells = [_show(_times(runs, s, START), unit) for s in STRATEGIES]
            print(f"{rate:>8g} {label:22} " + " ".join(f"{c:>22}" for c in cells))
            if bad == 0.02:
                caught = [sum(t <= 600 for t in _times(runs, s, START)) for s in STRATEGIES]
                cells = [f"{c}/{len(runs)}" for c in caught]
                print(
                    f"{rate:>8g} {'2%: caught in 10 min':22} " + " ".join(f"{c:>22}" for c in cells)
                )
    print(f"cells: median / p95 (runs that decided / runs); {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
