"""Benchmark: how well rules decide, on simulated traffic through the real engine.

Poisson requests with a daily cycle (±50 % around the mean), binomial errors at a
0.5 % healthy baseline, samples every 15 s on a virtual clock, fed to one
``watchdog.core.engine.Engine`` that holds every strategy's rules side by side on the
same simulated traffic (drawn with numpy, a whole stretch at once; the engine is fed
sample by sample, as live):

- (a) ``fixed``: the runbook's "error ratio > 5 % for 5 min", on the ratio of the
  trailing 5 minutes (``rate(errors[5m]) / rate(requests[5m])``, as usually written);
- (b) ``min-req``: the same with ``min_requests: 20`` (requests in those 5 minutes);
- (c) ``flagger``: a Flagger/Argo-style canary check, emulated here (it is not a
  watchdog rule): for the 10 minutes after a deploy, one check a minute on the last
  minute's point ratio, "no values" counted as a failed check (as Flagger does),
  rollback at 3 failed checks; nothing watches outside that analysis;
- (d) ``new``: confidence rules (99.9 %, 5 m and 3 m windows), a deploy-regression rule on
  errors (2x, 99 %), one on the share of requests slower than the healthy p95 (a
  latency histogram's bucket, 2x, 99 %) and burn-rate rules (99 % objective; 14.4x
  over 1 h and 5 m, 6x over 6 h and 30 m; with ``confidence: 99.9%``: both windows'
  lower bounds past the bar); the first of them to decide counts.

(a)-(c) may judge only the first ``--legacy-days`` healthy days (the same days, drawn
from the same seeds): each column says its N. Every strategy judges every incident run.

The health probe: every 15 s (at a random phase), down while the outage is total; the
runbook's "site down" rule as ``rules/example.yaml`` writes it (``health.up`` below 1
for 1m). A user of (a), (b) or (d) has it (the runbook's matrix, the shipped rules); a
Flagger/Argo-style analysis judges a deploy's metrics and watches nothing else. It is
fed in the outage scenario only (elsewhere the probe never fails, so it cannot fire;
flaky probes are not modelled), and the outage rows come twice: on counts only, and
with the probe.

Scenarios, per traffic level (requests a minute):

- ``healthy``: whole days at the baseline with one good deploy at noon; a day counts
  as a false rollback for a strategy that asks for one;
- ``outage``: an hour at the baseline, then every request fails: minutes to rollback;
- ``5pct`` / ``2pct``: an hour at the baseline, then a deploy that takes errors to 5 %
  (2 %): seconds from the deploy to the rollback request;
- ``latency``: an hour at the baseline, then a deploy that doubles the latency of a
  fifth of the requests (log-normal latencies, sigma 0.5: the share slower than the
  healthy p95 goes from 5 % to 12 %): seconds to the rollback request.

    .venv/bin/python bench/decisions.py [--days 20] [--legacy-days N] [--trials 200]
                                        [--rates 1,10,100,1000] [--workers 2]

False rollbacks: k/N days with the exact (Clopper-Pearson) one-sided 95 % upper bound
of the rate (0 in 10,000: 0.30 per 1,000).

Seeded: the same arguments print the same table (each chunk of work has its own seed,
whatever the number of workers).
"""

from __future__ import annotations

import argparse
import functools
import math
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evidence import interval
from watchdog.model import Sample
from watchdog.rules.load import RuleSet, load_rules

STEP = 15.0
DAY = 86400.0
BASELINE = 0.005
SLOW_BASELINE = 0.05  # the bucket bound is the healthy p95
# Doubling the latency of a fifth of log-normal(sigma 0.5) requests: those slower than
# half the p95 cross it. P(Z > (1.645 * 0.5 - ln 2) / 0.5) = 0.398.
SLOW_BAD = 0.8 * SLOW_BASELINE + 0.2 * 0.5 * math.erfc((1.645 * 0.5 - math.log(2)) / 0.5 / 2**0.5)
STRATEGIES = ("fixed", "min-req", "flagger", "new")
START = 3600.0  # an hour at the baseline before each incident (the windows fill)
CHUNK = 25  # days or trials per unit of work

COMMON = """
version: 1
defaults: {interval: 15s, blind_after: 1h}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
  health: {type: probe, url: "http://127.0.0.1:9/health"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
  # The runbook's rule as usually written: rate(errors[5m]) / rate(requests[5m]).
  ratio_5m: {source: prom, query: "q", requests_query: "r", unit: ratio}
  # Requests slower than the bound over all requests, from a latency histogram.
  slow: {source: prom, errors_query: "s", requests_query: "r"}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  # The runbook's "Critical: site down -> immediate rollback", as rules/example.yaml
  # writes it: the health probe down for a minute. Users of (a), (b) and (d) have it.
  - {name: site-down, signal: health.up, below: 1, for: 1m, severity: critical,
     rollback: [worker]}
"""
LEGACY = """
  - {name: fixed, signal: ratio_5m, above: 5%, for: 5m, severity: critical,
     rollback: [worker]}
  - {name: min-req, signal: ratio_5m, above: 5%, for: 5m, min_requests: 20,
     severity: critical, rollback: [worker]}
"""
NEW = """
  - {name: new-confidence, signal: error_rate, above: 5%, confidence: 99.9%, window: 5m,
     severity: critical, rollback: [worker]}
  # A shorter window sheds the successes from before an outage sooner (at 1 request a
  # minute the 5m window holds about five): outages at low traffic, three errors in.
  - {name: new-outage, signal: error_rate, above: 5%, confidence: 99.9%, window: 3m,
     severity: critical, rollback: [worker]}
  - name: new-regression
    signal: error_rate
    regression: {min_effect: 2x, confidence: 99%, baseline: 1h, watch: 1h}
    severity: critical
    rollback: [worker]
  - name: new-latency
    signal: slow
    regression: {min_effect: 2x, confidence: 99%, baseline: 1h, watch: 1h}
    severity: critical
    rollback: [worker]
  - name: new-burn
    signal: error_rate
    burn_rate:
      objective: 99%
      confidence: 99.9%   # low traffic: an hour at night holds ~30 requests
      windows: [{long: 1h, short: 5m, factor: 14.4}, {long: 6h, short: 30m, factor: 6}]
    severity: critical
    rollback: [worker]
"""
# The health probe's strategies: the runbook's users (a, b) and the watchdog's (d). A
# Flagger/Argo-style analysis (c) judges a deploy's metrics for its analysis only.
PROBED = ("fixed", "min-req", "new")


@dataclass(frozen=True)
class Scenario:
    label: str
    seconds: float
    error_after: float  # the error ratio from START on (BASELINE before)
    slow_after: float  # the slow share from START on
    deploy_at: float | None
    daily: bool
    unit: float  # seconds per reported unit


def scenarios() -> dict[str, Scenario]:
    bad_for = START + 1800
    return {
        "healthy": Scenario("false rollbacks", DAY, BASELINE, SLOW_BASELINE, DAY / 2, True, 1),
        "outage": Scenario("outage, counts: min", bad_for, 1.0, SLOW_BASELINE, None, False, 60),
        "5pct": Scenario("5%: s to rollback", bad_for, 0.05, SLOW_BASELINE, START, False, 1),
        "2pct": Scenario("2%: s to rollback", bad_for, 0.02, SLOW_BASELINE, START, False, 1),
        "latency": Scenario("latency x2 on 1/5: s", bad_for, BASELINE, SLOW_BAD, START, False, 1),
    }  # fmt: skip


@dataclass
class Run:
    """One simulated stretch: each judged strategy's first rollback time (None: never);
    ``legacy``: (a)-(c) judged it too (else only (d)); ``probe``: the site-down rule's
    first rollback (a run whose health probe was watched); ``by``: the rule behind
    (d)'s first rollback."""

    legacy: bool
    first: dict[str, float | None]
    probe: float | None = None
    by: str = ""


@functools.cache
def _ruleset(legacy: bool = True) -> RuleSet:
    """Parsed once per worker process: every strategy's rules, or only (d)'s. A rule's
    states and decisions do not depend on the other rules beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(COMMON + (LEGACY if legacy else "") + NEW)
        return load_rules([path])


def _warm() -> None:
    _ruleset(True)
    _ruleset(False)


def traffic(
    rng: np.random.Generator, per_minute: float, sc: Scenario
) -> tuple[list[float], list[int], list[int], list[int]]:
    """Times, requests, errors and slow requests of each 15 s sample of a stretch."""
    t = np.arange(0.0, sc.seconds, STEP)
    cycle = 1.0 + 0.5 * np.sin(2 * np.pi * t / DAY) if sc.daily else np.ones_like(t)
    requests = rng.poisson(per_minute * cycle * STEP / 60.0)
    # The sample at t counts (t - 15 s, t]: its errors are that stretch's.
    bad = (t - STEP) >= START
    errors = rng.binomial(requests, np.where(bad, sc.error_after, BASELINE))
    slow = rng.binomial(requests, np.where(bad, sc.slow_after, SLOW_BASELINE))
    return t.tolist(), requests.tolist(), errors.tolist(), slow.tolist()


NO_TRAFFIC = "no traffic: requests_query has no series"


def simulate(rng: np.random.Generator, per_minute: float, sc: Scenario, legacy: bool) -> Run:
    """One stretch through the engine; (a)-(c) judge it only when ``legacy``. The draws
    do not depend on ``legacy``: the same seed gives the same traffic either way."""
    engine = Engine(_ruleset(legacy))
    observe = engine.observe
    first: dict[str, float | None] = dict.fromkeys(STRATEGIES if legacy else ("new",))
    run = Run(legacy, first)
    times, requests, errors, slow = traffic(rng, per_minute, sc)
    # The health probe, every 15 s at its own phase: down from START in a total outage
    # only (the other scenarios keep it up, and it cannot fire: it is not fed there).
    probed = sc.error_after >= 1.0
    phase = float(rng.uniform(0.0, STEP)) if probed else 0.0
    old = _Legacy(engine, requests, errors, sc.deploy_at) if legacy else None
    deploy = (
        -1 if sc.deploy_at is None else next(i for i, t in enumerate(times) if t >= sc.deploy_at)
    )
    ratio, no_data = Sample.ratio, Sample.no_data
    for i, t in enumerate(times):
        if i == deploy:
            engine.deployed("worker", t)  # deploys fall on the 15 s grid: t is deploy_at
        if probed and t > 0:
            _probe(engine, run, t - STEP + phase)  # in (t - 15 s, t]: before the counts
        n = requests[i]
        if n:
            sample, slow_sample = ratio(t, errors[i], n), ratio(t, slow[i], n)
        else:
            sample = slow_sample = no_data(t, NO_TRAFFIC)
        found = observe("error_rate", sample).decisions
        found_slow = observe("slow", slow_sample).decisions
        if found or found_slow:
            _record(first, (*found, *found_slow), t, run)
        if old is not None:
            old.step(i, t, first)
        if None not in first.values() and (not probed or run.probe is not None):
            break  # every strategy has decided: the rest changes no figure
    return run


def _record(
    first: dict[str, float | None], decisions: Sequence[Decision], t: float, run: Run | None = None
) -> None:
    """Each strategy's first rollback request (and which of (d)'s rules asked)."""
    for decision in decisions:
        if decision.kind is DecisionKind.ROLLBACK:
            name = "new" if decision.rule.startswith("new-") else decision.rule
            if first[name] is None:
                first[name] = t
                if name == "new" and run is not None:
                    run.by = decision.rule


class _Legacy:
    """(a) and (b) on the trailing 5 minutes' ratio, and (c)'s checks after a deploy."""

    def __init__(
        self, engine: Engine, requests: list[int], errors: list[int], deploy_at: float | None
    ) -> None:
        self.engine, self.requests, self.errors, self.deploy_at = (
            engine,
            requests,
            errors,
            deploy_at,
        )
        self.e5 = np.convolve(errors, np.ones(20), mode="full")[: len(errors)].tolist()
        self.n5 = np.convolve(requests, np.ones(20), mode="full")[: len(requests)].tolist()
        self.failed = 0

    def step(self, i: int, t: float, first: dict[str, float | None]) -> None:
        n5 = self.n5[i]
        sliding = Sample.of(t, self.e5[i] / n5, n5) if n5 else Sample.no_data(t, "no traffic")
        _record(first, self.engine.observe("ratio_5m", sliding).decisions, t)
        if i % 4 == 3:  # a minute's samples: the Flagger-style check
            self.failed += _flagger_check(self.requests, self.errors, i, self.deploy_at, t)
            if self.failed >= 3 and first["flagger"] is None:
                first["flagger"] = t


def _probe(engine: Engine, run: Run, at: float) -> None:
    """One health probe: down from START (only fed in a total outage)."""
    sample = Sample.of(at, 0.0 if at >= START else 1.0)
    for decision in engine.observe("health.up", sample).decisions:
        if decision.kind is DecisionKind.ROLLBACK and run.probe is None:
            run.probe = at


def _flagger_check(
    requests: Sequence[int], errors: Sequence[int], i: int, deploy_at: float | None, t: float
) -> int:
    """1 when this minute's check fails during a 10-minute analysis after the deploy."""
    if deploy_at is None or not deploy_at <= t < deploy_at + 600:
        return 0
    n = sum(requests[i - 3 : i + 1])
    return 1 if n == 0 or sum(errors[i - 3 : i + 1]) / n > 0.05 else 0


def _work(job: tuple[str, float, int, int, int, int]) -> tuple[str, float, int, list[Run]]:
    """One chunk: ``count`` stretches of a scenario at a rate, from its own seed; (a)-(c)
    judge the stretches before the ``legacy``-th (each scenario's first ones)."""
    name, rate, count, seed, chunk, legacy = job
    rng = np.random.default_rng([seed, int(rate * 1000), chunk, len(name), ord(name[0])])
    sc = scenarios()[name]
    begin = chunk * CHUNK
    runs = [simulate(rng, rate, sc, begin + k < legacy) for k in range(count)]
    return name, rate, chunk, runs


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _show(values: list[float], unit: float) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return f"never (0/{len(values)})"
    median = statistics.median(values)
    p95 = _quantile(values, 0.95)
    text = "never" if not math.isfinite(median) else f"{median / unit:.1f}"
    text += " / " + ("never" if not math.isfinite(p95) else f"{p95 / unit:.1f}")
    return text + f" ({len(finite)}/{len(values)})"


def upper95(k: int, n: int) -> float:
    """The exact (Clopper-Pearson) one-sided 95 % upper bound of a rate seen k in n."""
    return interval(k, n, 0.90)[1]  # two-sided 90 %: each side 5 %


def _false_cell(runs: list[Run], name: str) -> str:
    """``k/N (<=b/1k)``: false days of the days the strategy judged, with the exact
    95 % upper bound of its rate per 1,000 days."""
    judged = [r for r in runs if name in r.first]
    k = sum(r.first[name] is not None for r in judged)
    if not judged:
        return "-"
    return f"{k}/{len(judged)} (<={1000 * upper95(k, len(judged)):.2f}/1k)"


def _times(runs: list[Run], name: str, probe: bool = False) -> list[float]:
    """Seconds from START to the strategy's first rollback (inf: never), in the runs it
    judged; with ``probe``, the site-down rule counts for the strategies that have it."""
    out = []
    for run in runs:
        if name not in run.first:
            continue
        first = run.first[name]
        if probe and name in PROBED and run.probe is not None:
            first = run.probe if first is None else min(first, run.probe)
        out.append(math.inf if first is None else first - START)
    return out


def _rows(rate: float, name: str, runs: list[Run]) -> list[str]:
    sc = scenarios()[name]
    if name == "healthy":
        cells = [_false_cell(runs, s) for s in STRATEGIES]  # days
        rows = [_row(rate, sc.label + " (days)", cells)]
        by = Counter(r.by for r in runs if r.by)
        if by:
            rows.append(
                f"{'':8} (d)'s false days by rule: "
                + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
            )
        return rows
    times = {s: _times(runs, s) for s in STRATEGIES}
    rows = [_row(rate, sc.label, [_show(times[s], sc.unit) for s in STRATEGIES])]
    if name == "outage":
        probed = [_show(_times(runs, s, probe=True), sc.unit) for s in STRATEGIES]
        rows.append(_row(rate, "outage + probe: min", probed))
        for label, probe in (("outage: in 3 min", False), ("outage + probe: in 3 min", True)):
            within = [sum(t <= 180 for t in _times(runs, s, probe)) for s in STRATEGIES]
            cells = [f"{k}/{len(times[s])}" for k, s in zip(within, STRATEGIES, strict=True)]
            rows.append(_row(rate, label, cells))
    if name == "2pct":
        caught = [f"{sum(t <= 600 for t in times[s])}/{len(times[s])}" for s in STRATEGIES]
        rows.append(_row(rate, "2%: caught in 10 min", caught))
    if name == "latency":
        caught = [f"{sum(t <= 120 for t in times[s])}/{len(times[s])}" for s in STRATEGIES]
        rows.append(_row(rate, "latency: caught in 2 min", caught))
    return rows


def _row(rate: float, label: str, cells: list[str]) -> str:
    return f"{rate:>8g} {label:24} " + " ".join(f"{c:>26}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=20, help="healthy days per traffic level")
    parser.add_argument(
        "--legacy-days",
        type=int,
        default=None,
        help="healthy days (the first ones) that (a)-(c) judge too (default: all)",
    )
    parser.add_argument("--trials", type=int, default=200, help="runs per incident scenario")
    parser.add_argument("--rates", default="1,10,100,1000", help="requests a minute")
    parser.add_argument("--scenarios", default=",".join(scenarios()))
    parser.add_argument("--workers", type=int, default=2, help="processes (the machine's cores)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    names = args.scenarios.split(",")
    legacy_days = args.days if args.legacy_days is None else args.legacy_days
    jobs = []
    for rate in rates:
        for name in names:
            healthy = name == "healthy"
            total = args.days if healthy else args.trials
            legacy = legacy_days if healthy else total  # incidents: every strategy, every run
            for chunk, begin in enumerate(range(0, total, CHUNK)):
                jobs.append((name, rate, min(CHUNK, total - begin), args.seed, chunk, legacy))
    started = time.perf_counter()
    results: dict[tuple[str, float], list[Run]] = {}
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_warm) as pool:
        for name, rate, chunk, runs in pool.map(_work, jobs):
            results.setdefault((name, rate), []).extend(runs)
            done = time.perf_counter() - started
            print(f"{rate:g}/min {name} chunk {chunk} done, {done:.0f} s", file=sys.stderr)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{'req/min':>8} {'scenario':24} " + " ".join(f"{s:>26}" for s in STRATEGIES))
    for rate in rates:
        for name in names:
            if (name, rate) in results:  # a scenario given no runs (--trials 0) has no row
                for row in _rows(rate, name, results[(name, rate)]):
                    print(row)
    elapsed = time.perf_counter() - started
    print(
        f"cells: median / p95 (runs that decided / runs judged); false rollbacks k/N days "
        f"with the exact 95% upper bound of the rate; {elapsed:.0f} s wall, "
        f"{cpu.ru_utime + cpu.ru_stime:.0f} s CPU on {args.workers} workers"
    )


if __name__ == "__main__":
    main()
