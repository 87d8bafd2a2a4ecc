"""Benchmark: canary rules on a gradual deployment, through the real engine, the real
``cloudflare`` source (``mode: versions``), the real Worker target and the local
Cloudflare API (issue 16).

Each simulated deploy: a Worker with its old version at 100 % for a day, then a split
of a new version at 10 % / old at 90 %. The Worker's front door
(``FakeCloudflare.edge``) routes 10 requests a second by the live split and records
one telemetry row per outcome; the telemetry query API delivers them ``--delay``
seconds late. The watchdog reads the telemetry every ``INTERVAL`` (15 s, at a random
phase), learns of the split as the deploy watch does (``run.deploys.split_of`` on the
deployments list, first read at a random point of its 30 s poll), feeds the samples to
one ``Engine`` with the canary rule of ``RULES``, and on a rollback decision deploys
100 % of the old version through ``WorkerTarget.rollback``. HTTP goes through
``httpx.ASGITransport`` to the local API's router (no socket: thousands of deploys).

Scenarios:

- ``bad``: the new version's errors are 5 % (old 0.5 %): seconds from the split going
  live to the rollback deployment (the incident manager's own steps, about a second
  in the demo, are not included); runs that reach ``BAD_HORIZON`` are misses.
- ``healthy``: both versions at 0.5 % for ``HEALTHY_HORIZON`` (a 20-minute soak):
  a rollback is a false one.
- ``no-traffic``: a bad new version at 0 % (nothing reaches it): never a rollback.
- ``source-down``: a bad new version at 10 % while every telemetry query fails (503):
  never a rollback; the rule is blind.
- ``slow`` (``--latency``): errors equal, wall times log-normal (median 100 ms, sigma
  0.5: 1.4 % over 300 ms); the new version doubles the wall time of a fifth of its
  requests (5.3 % over 300 ms). The rule is a latency canary (``slower_than: 300ms``):
  the source asks a second telemetry query per read for the events over the bound.
- ``slow-healthy`` (``--latency``): both versions with the old one's wall times for
  the 20-minute soak: a rollback is a false one.

``--source tail``: the same deploys watched through a ``cloudflare-tail`` source
instead: a Tail Worker attached to the script (``FakeCloudflare.attach_tail``) gets
one ``TraceItem`` per invocation and posts the due ones each simulated second through
the real route ``POST /api/v1/tail/edge`` (``watchdog.api.tail`` on a ``Router``,
``httpx.ASGITransport``); each event reaches the watchdog ``--tail-delays`` seconds
after its request, plus a jitter of up to ``TAIL_JITTER_S``. The watchdog reads every
``TAIL_INTERVAL`` (5 s). ``source-down`` is then a Tail Worker that stops delivering
at the split: blind after the source's ``staleness`` (120 s), never a rollback.

Peer: gradual-deployer (yomna-shousha/gradual-deployer) holds the new version's error
ratio against an absolute 5 %, passes with no traffic and passes when the query fails.

    .venv/bin/python bench/canary.py [--trials 200] [--healthy 1000] [--delays 0,30,60,120,180]
    .venv/bin/python bench/canary.py --latency [--trials 100] [--healthy 500]
    .venv/bin/python bench/canary.py --source tail [--tail-delays 2,10,30,60]

Seeded: the same arguments print the same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.actions.cloudflare_api import CloudflareClient
from watchdog.actions.cloudflare_worker import WorkerTarget
from watchdog.api.tail import install as install_tail
from watchdog.core.decision import DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.demo.fakes.cloudflare import API_PREFIX, FakeCloudflare
from watchdog.demo.fakes.cloudflare_tail import TailFeed
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour
from watchdog.http.server import Router
from watchdog.model import RollbackPlan, Sample
from watchdog.rules.load import ResolvedSignal, RuleSet, load_rules
from watchdog.rules.model import CloudflareSourceSpec, CloudflareTailSourceSpec
from watchdog.rules.response import WorkerTargetSpec
from watchdog.run.deploys import split_of
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_tail import CloudflareTailSource
from watchdog.sources.cloudflare_versions import CloudflareVersionsSource

T0 = 1_790_000_000.0
RPS = 10
INTERVAL = 15.0  # the telemetry source's reads
TAIL_INTERVAL = 5.0  # the tail source's reads: nothing to wait for but the push
TAIL_JITTER_S = 1.0  # each event's delivery: its delay plus up to this much
DEPLOY_POLL_S = 30.0
BAD_HORIZON = 900.0
HEALTHY_HORIZON = 1200.0
BASE = 0.005
BAD = 0.05
WALL_MS, WALL_SIGMA, SLOWER_THAN = 100.0, 0.5, "300ms"  # the latency scenarios
ERRORS_CANARY = "{{min_effect: 3x, confidence: {confidence}}}"
LATENCY_CANARY = f"{{{{min_effect: 3x, confidence: {{confidence}}, slower_than: {SLOWER_THAN}}}}}"
RULES = """
version: 1
sources:
  edge: {{type: cloudflare, script: api, mode: versions, interval: 15s, window: 15s,
          delay: {delay}s}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
rules:
  - name: canary
    signal: edge.versions
    canary: {canary}
    severity: critical
    rollback: [worker]
"""
TAIL_SOURCE = """  edge: {{type: cloudflare-tail, script: api, interval: {interval:g}s}}
"""


class Clock:
    """Virtual time the bench moves by hand."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - T0

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def ruleset(delay: float, confidence: str, latency: bool = False, tail: bool = False) -> RuleSet:
    canary = (LATENCY_CANARY if latency else ERRORS_CANARY).format(confidence=confidence)
    text = RULES.format(delay=f"{delay:g}", canary=canary)
    if tail:  # the same rule on a cloudflare-tail source
        start, end = text.index("  edge:"), text.index("targets:")
        text = text[:start] + TAIL_SOURCE.format(interval=TAIL_INTERVAL) + text[end:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "canary.yaml"
        path.write_text(text, encoding="utf-8")
        return load_rules([path])


def behaviours(scenario: str) -> tuple[Behaviour, Behaviour]:
    """The old and the new version's behaviour in ``scenario``."""
    if scenario.startswith("slow"):  # slow, slow-healthy, slow-no-traffic, slow-source-down
        old = Behaviour(BASE, WALL_MS, wall_sigma=WALL_SIGMA)
        if scenario == "slow-healthy":
            return old, old
        return old, Behaviour(BASE, WALL_MS, wall_sigma=WALL_SIGMA, slow_share=0.2, slow_factor=2)
    return Behaviour(BASE), Behaviour(BASE if scenario == "healthy" else BAD)


async def trial(
    rules: RuleSet, scenario: str, seed: int, horizon: float, tail_delay: float | None = None
) -> tuple[float | None, State]:
    """Seconds from the split to the rollback deployment (None: none), and the rule's
    final state. ``tail_delay``: watched through the Tail Worker's push, each event
    that late, instead of the telemetry query API."""
    rng = random.Random(seed)
    clock = Clock(T0 - 120)
    fake = FakeCloudflare(clock=clock, seed=seed)
    source_spec = rules.sources["edge"]
    if tail_delay is None:
        assert isinstance(source_spec, CloudflareSourceSpec)
        fake.telemetry.delay_s = source_spec.delay
    old = fake.publish("api", "old", created_on=T0 - 86400)
    new = fake.upload_version("api", "new", created_on=T0 - 60)
    feed = None
    if tail_delay is not None:
        feed = fake.attach_tail(
            "api", delay_s=tail_delay, jitter_s=TAIL_JITTER_S, seed=seed, slim=True
        )
    edge = fake.edge("api")
    edge.seed = seed
    edge.__post_init__()
    old_does, new_does = behaviours(scenario)
    edge.behaviours = {old: old_does, new: new_does}
    pct = 0.0 if scenario.endswith("no-traffic") else 10.0
    down = scenario.endswith("source-down")
    if down and feed is None:
        fake.fail("POST", "/accounts/{a}/workers/observability/telemetry/query", 503, times=None)
    base = "http://cloudflare.local" + API_PREFIX
    engine = Engine(rules)
    signal = rules.signals["edge.versions"]
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.router))
        )
        token = SecretStr(fake.token)
        deps = SourceDeps(http, clock, base, token, fake.account_id)
        read, post = await _watchdog_side(rules, deps, signal, feed, stack)
        client = CloudflareClient(http, base, token, clock)
        spec = WorkerTargetSpec(type="cloudflare-worker", script="api")
        target = WorkerTarget("worker", spec, fake.account_id, client)
        interval = INTERVAL if feed is None else TAIL_INTERVAL
        read_at = T0 - 120 + rng.uniform(0, interval)
        poll_at = T0 + rng.uniform(0, DEPLOY_POLL_S)
        split_seen = False
        deployed = False
        for second in range(int(horizon) + 120):
            now = T0 - 120 + second
            clock._now = now
            if not deployed and now >= T0:
                fake.deploy("api", [(new, pct), (old, 100 - pct)], "canary", created_on=T0)
                deployed = True
                if feed is not None:
                    feed.down = down  # the Tail Worker stops delivering at the split
            edge.simulate(now, RPS)
            if feed is not None:
                await feed.deliver(now, post)
            if deployed and not split_seen and now >= poll_at:
                found = split_of("worker", await target.deployments())
                engine.split("worker", found)
                split_seen = found is not None
                poll_at += DEPLOY_POLL_S
            if now >= read_at:
                read_at += interval
                sample = (await read([signal], now))[signal.name]
                for decision in engine.observe(signal.name, sample).decisions:
                    if decision.kind is DecisionKind.ROLLBACK:
                        plan = RollbackPlan("worker", new, old, decision.why)
                        result = await target.rollback(plan)
                        assert result.ok, result.detail
                        assert fake.live_versions("api") == [(old, 100.0)]
                        return now - T0, engine.states["canary"].state
    return None, engine.states["canary"].state


Read = Callable[[Sequence[ResolvedSignal], float], Awaitable[dict[str, Sample]]]
Post = Callable[[bytes], Awaitable[httpx.Response]]


async def _watchdog_side(
    rules: RuleSet,
    deps: SourceDeps,
    signal: ResolvedSignal,
    feed: TailFeed | None,
    stack: contextlib.AsyncExitStack,
) -> tuple[Read, Post]:
    """The source's read, and (tail) the Tail Worker's POST to the watchdog's real
    route ``POST /api/v1/tail/edge`` feeding that source."""
    spec = rules.sources["edge"]
    if feed is None:
        assert isinstance(spec, CloudflareSourceSpec)
        return CloudflareVersionsSource("edge", spec, deps).sample, _no_post
    assert isinstance(spec, CloudflareTailSourceSpec)
    source = CloudflareTailSource("edge", spec, deps)
    api = Router()
    install_tail(api, deps.inboxes)
    # The transport without a client: the client's layers (auth, redirects, cookies)
    # were a third of a trial and do nothing here.
    push = await stack.enter_async_context(httpx.ASGITransport(app=api))

    async def post(body: bytes) -> httpx.Response:
        request = httpx.Request("POST", TAIL_URL, content=body, headers=JSON)
        answer = await push.handle_async_request(request)
        await answer.aread()
        return answer

    return source.sample, post


JSON = {"content-type": "application/json"}
TAIL_URL = httpx.URL("http://localhost/api/v1/tail/edge")


async def _no_post(body: bytes) -> httpx.Response:
    raise AssertionError("the telemetry mode posts nothing")


def _chunk(
    args: tuple[str, float, str, float, list[int], bool],
) -> list[tuple[float | None, str]]:
    """One worker process's share of the trials (both cores: the deploys are independent).
    ``delay``: the analytics delay, or with ``tail`` each event's delivery delay."""
    scenario, delay, confidence, horizon, seeds, tail = args
    rules = ruleset(delay, confidence, latency=scenario.startswith("slow"), tail=tail)

    async def go() -> list[tuple[float | None, str]]:
        out = []
        for seed in seeds:
            took, state = await trial(rules, scenario, seed, horizon, delay if tail else None)
            out.append((took, state.value))
        return out

    return asyncio.run(go())


def run(
    scenario: str,
    delay: float,
    confidence: str,
    trials: int,
    horizon: float,
    seed0: int,
    jobs: int,
    tail: bool = False,
) -> list[float | None]:
    seeds = [seed0 + i for i in range(trials)]
    shares = [seeds[i::jobs] for i in range(jobs)]
    work = [(scenario, delay, confidence, horizon, share, tail) for share in shares if share]
    with ProcessPoolExecutor(len(work)) as pool:
        results = [r for part in pool.map(_chunk, work) for r in part]
    states: dict[str, int] = {}
    for _, state in results:
        states[state] = states.get(state, 0) + 1
    if scenario.endswith(("no-traffic", "source-down")):
        STATES[scenario] = states
    return [took for took, _ in results]


STATES: dict[str, dict[str, int]] = {}  # final rule states of the no-rollback scenarios


def upper95(failures: int, runs: int) -> float:
    """The exact (Clopper-Pearson) one-sided 95 % upper bound on a rate seen
    ``failures`` times in ``runs`` (bisection on the binomial tail: no scipy)."""
    lo, hi = failures / runs, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        tail = sum(
            math.comb(runs, i) * mid**i * (1 - mid) ** (runs - i) for i in range(failures + 1)
        )
        lo, hi = (mid, hi) if tail > 0.05 else (lo, mid)
    return hi


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="bad deploys per delay")
    parser.add_argument("--healthy", type=int, default=2000, help="healthy deploys (delay 60 s)")
    parser.add_argument("--delays", default="0,60,120")
    parser.add_argument("--confidences", default="99%,99.9%")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--others", type=int, default=100, help="no-traffic / source-down runs")
    parser.add_argument(
        "--latency", action="store_true", help="the latency scenarios (a latency canary rule)"
    )
    parser.add_argument(
        "--source",
        choices=("telemetry", "tail"),
        default="telemetry",
        help="telemetry: the telemetry query API (--delays); tail: a Tail Worker's push",
    )
    parser.add_argument(
        "--tail-delays",
        default="2,10,30,60",
        help="--source tail: seconds each event takes to reach the watchdog (the healthy "
        "and other runs use the first)",
    )
    args = parser.parse_args()
    jobs = max(1, args.jobs)
    tail = args.source == "tail"
    started = time.perf_counter()
    if args.latency:
        bad, healthy_name, prefix, horizon = "slow", "slow-healthy", "slow-", HEALTHY_HORIZON
        header = (
            f"canary bench, latency: new version at 10% of {RPS} req/s doubles the wall time "
            f"of a fifth of its requests (log-normal, median {WALL_MS:g}ms, sigma "
            f"{WALL_SIGMA:g}), reads every {{interval:g}}s; rule slower_than {SLOWER_THAN}, "
            "min_effect 3x"
        )
    else:
        bad, healthy_name, prefix, horizon = "bad", "healthy", "", BAD_HORIZON
        header = (
            f"canary bench: new version at 10% of {RPS} req/s, errors {BASE:.1%} -> {BAD:.0%}, "
            "reads every {interval:g}s; rule min_effect 3x"
        )
    if tail:
        header = header.replace("canary bench", "canary bench (source cloudflare-tail)", 1)
        header += f"; delivery jitter up to {TAIL_JITTER_S:g}s"
    print(header.format(interval=TAIL_INTERVAL if tail else INTERVAL))
    delays = [float(d) for d in (args.tail_delays if tail else args.delays).split(",")]
    # The healthy and other runs: 60 s of analytics delay, or the first tail delay.
    other_delay = delays[0] if tail else 60.0
    what = "tail delay" if tail else "analytics delay"
    for confidence in args.confidences.split(","):
        print(f"confidence {confidence}:")
        for delay in delays:
            took = run(bad, delay, confidence, args.trials, horizon, 1000, jobs, tail)
            caught = [t for t in took if t is not None]
            line = f"  {bad}, {what} {delay:>4g}s: caught {len(caught)}/{len(took)}"
            if caught:
                line += (
                    f"; time to rollback median {statistics.median(caught):.0f}s, "
                    f"p90 {quantile(caught, 0.9):.0f}s, max {max(caught):.0f}s"
                )
            print(line, flush=True)
        short = f"{'tail ' if tail else ''}delay {other_delay:g}s"
        if args.healthy:
            healthy = run(
                healthy_name,
                other_delay,
                confidence,
                args.healthy,
                HEALTHY_HORIZON,
                50_000,
                jobs,
                tail,
            )
            false = sum(t is not None for t in healthy)
            print(
                f"  {healthy_name} ({short}, {HEALTHY_HORIZON / 60:g} min soak): false "
                f"rollbacks {false}/{len(healthy)} = {1000 * false / len(healthy):.1f} per "
                f"1,000 deploys (95% upper bound {1000 * upper95(false, len(healthy)):.1f})",
                flush=True,
            )
        for other in ("no-traffic", "source-down") if args.others else ():
            scenario = prefix + other
            runs = run(
                scenario, other_delay, confidence, args.others, BAD_HORIZON, 90_000, jobs, tail
            )
            print(
                f"  {scenario} (bad new version, {short}): rollbacks "
                f"{sum(t is not None for t in runs)}/{len(runs)}; final rule states "
                f"{STATES[scenario]}",
                flush=True,
            )
    print(f"wall time {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
