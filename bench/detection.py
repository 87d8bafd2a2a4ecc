"""Detection-to-rollback time: rollback-watchdog against Prometheus + Alertmanager.

One simulated app, one breach, watched at the same time by

- **rollback-watchdog**: ``python -m watchdog run`` (what ``rollback-watchdog run``
  runs) as its own process, with a ``scrape`` source reading the app's ``/metrics``
  itself (its natural mode: no Prometheus in between);
- **the pipeline a team would otherwise build**: a real Prometheus (Debian package)
  scraping the same app, with an alerting rule of the same expression, threshold and
  ``for:``, sending to two real Alertmanagers (Debian package), one with the default
  ``group_wait`` (30s) and one with ``group_wait: 0s`` / ``group_interval: 1s``. Each
  Alertmanager's webhook is a small loopback server in this process that POSTs the
  Worker rollback (create-deployment, the known-good version at 100 %) to the local
  Cloudflare API at once: no lookups, the most favourable peer.

The signal is the app's ``error_rate`` gauge (5xx share of its last 200 requests),
read as-is by both, so both evaluate exactly the same value: ``error_rate > 0.05``.
Scrape interval, rule evaluation interval and the watchdog's sampling interval are
the same, run once per ``--intervals`` value (default 1s then 15s). Each run starts
fresh processes, waits a random fraction of an interval (so the breach lands at a random
phase of everyone's sampling), ships a bad Worker version, then flips the app from 0.5 %
to 50 % errors (the gauge moves at once) at ``t0``.

Two figures per side, both timed by the local Cloudflare API on the rollback request's
arrival:

- **after t0 + for**: from the moment the condition has truly held for ``for:``. Any
  sampler first sees the breach up to one interval after it begins (uniform over the
  phase: half an interval in the median), so no sampler can be under that here.
- **after its hold**: from the side's own first breaching sample (the watchdog's rule's
  ``active_since``, from its log; Prometheus's alert ``activeAt``) plus ``for``: what the
  side adds once it has seen the breach. The watchdog takes one extra sample at that
  deadline (``watchdog.run.deadline``), so with a ``for:`` that is not a whole number of
  intervals (5s at 15s) it fires at the hold, where Prometheus waits for the next
  evaluation (10 s later), then for Alertmanager's ``group_wait``.

The goal (issue 15): the watchdog's median after its hold at most 150 ms at a 1 s
interval and at most 1 s at 15 s, and faster than both peers after ``t0 + for``. The
watchdog's action time (rule firing -> POST arrival, from its log) is printed too.

    .venv/bin/python bench/detection.py [--repeat 5] [--for 5] [--intervals 1,15]
        [--slack-latency S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localproc import (
    BenchError,
    Proc,
    start_alertmanager,
    start_daemon,
    start_prometheus,
)

from watchdog.demo.fakes.app import AppState, FakeApp
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import Request, Response, Router, serve

TOKEN = "bench-cloudflare-token"
ACCOUNT = "bench-account"
SCRIPT = "api"
DEPLOYMENTS = f"/accounts/{ACCOUNT}/workers/scripts/{SCRIPT}/deployments"
WINDOW = 200  # the gauge is the 5xx share of the last WINDOW requests
RPS = 100.0
HEALTHY = 0.005
BROKEN = 0.5
THRESHOLD = 0.05
WATCHDOG = "rollback-watchdog"
PEERS = {"am-30s": "Prometheus + Alertmanager, group_wait 30s (default)"}
PEERS["am-0s"] = "Prometheus + Alertmanager, group_wait 0s"
AM_MESSAGE = "alertmanager webhook"


@dataclass
class Run:
    late: dict[str, float | None] = field(default_factory=dict)  # seconds after t0 + for
    # Seconds after each side's own hold: its first breaching sample (the watchdog's
    # rule going pending, Prometheus's alert activeAt) + for.
    held: dict[str, float | None] = field(default_factory=dict)
    acting: float | None = None  # the watchdog's rule firing -> its POST arriving


class Hooks:
    """The Alertmanager webhook receivers: roll the Worker back on the first alert."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.cf_url = ""
        self.good_version = ""
        self.fired: set[str] = set()
        self.router = Router()
        self.router.add("POST", "/hook/{name}", self._hook)

    async def _hook(self, request: Request, params: dict[str, str]) -> Response:
        name = params["name"]
        body = request.json()
        firing = [a for a in body.get("alerts", []) if a.get("status") == "firing"]
        if firing and name not in self.fired:
            self.fired.add(name)
            response = await self.http.post(
                f"{self.cf_url}/client/v4{DEPLOYMENTS}",
                headers={"authorization": f"Bearer {TOKEN}"},
                json={
                    "strategy": "percentage",
                    "versions": [{"version_id": self.good_version, "percentage": 100}],
                    "annotations": {"workers/message": f"{AM_MESSAGE} {name}"},
                },
            )
            if response.status_code != 200:
                print(f"  ! {name}: rollback answered {response.status_code}: {response.text}")
        return Response.json({"ok": True})


def watchdog_rules(app_url: str, for_s: float, interval: float, slack: bool) -> str:
    notify = "notifiers: {slack: {type: slack, webhook_secret: slack_webhook}}\nnotify: [slack]\n"
    return (notify if slack else "") + textwrap.dedent(
        f"""\
        version: 1
        defaults: {{interval: {interval:g}s, blind_after: 1m}}
        sources:
          app: {{type: scrape, url: "{app_url}/metrics", timeout: 2s}}
        signals:
          error_rate: {{source: app, kind: gauge, metric: error_rate, unit: ratio}}
        targets:
          worker: {{type: cloudflare-worker, script: {SCRIPT}}}
        rules:
          - {{name: error-rate, signal: error_rate, above: {THRESHOLD * 100:g}%,
              for: {for_s:g}s, severity: critical, rollback: [worker]}}
        correlation: {{enabled: true, max_deploy_age: 1h}}
        """
    )


def prometheus_config(app_addr: str, alertmanagers: list[str], interval: float) -> str:
    ams = "".join(f'    - static_configs: [{{targets: ["{a}"]}}]\n' for a in alertmanagers)
    return (
        "global:\n"
        f"  scrape_interval: {interval:g}s\n"
        f"  scrape_timeout: {interval:g}s\n"
        f"  evaluation_interval: {interval:g}s\n"
        "rule_files: [rules.yml]\n"
        "alerting:\n"
        "  alertmanagers:\n"
        f"{ams}"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f'    static_configs: [{{targets: ["{app_addr}"]}}]\n'
    )


def prometheus_rules(for_s: float, interval: float) -> str:
    return textwrap.dedent(
        f"""\
        groups:
          - name: rollback
            interval: {interval:g}s
            rules:
              - alert: ErrorRateHigh
                expr: error_rate > {THRESHOLD:g}
                for: {for_s:g}s
                labels: {{severity: critical}}
        """
    )


def alertmanager_config(hook_url: str, group_wait: str | None) -> str:
    timing = f"  group_wait: {group_wait}\n  group_interval: 1s\n" if group_wait is not None else ""
    return (
        "route:\n"
        "  receiver: rollback\n"
        "  group_by: [alertname]\n"
        f"{timing}"
        "receivers:\n"
        "  - name: rollback\n"
        "    webhook_configs:\n"
        f"      - url: {hook_url}\n"
        "        send_resolved: false\n"
    )


def seed(cf: FakeCloudflare) -> str:
    now = time.time()
    good = ""
    for name, age in (("v1", 2 * 86400), ("v2", 86400)):
        good = cf.upload_version(SCRIPT, name, created_on=now - age - 60)
        cf.deploy(SCRIPT, [(good, 100.0)], f"deploy {name}", created_on=now - age)
    return good


async def traffic(app: FakeApp) -> None:
    """RPS requests a second, in-process: the metrics are what a scrape reads."""
    while True:
        app.simulate(1)
        await asyncio.sleep(1.0 / RPS)


@contextlib.asynccontextmanager
async def stopping(procs: list[Proc]) -> AsyncIterator[list[Proc]]:
    try:
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs))


async def wait_value(http: httpx.AsyncClient, prom: Proc, query: str, tries: int = 200) -> None:
    for _ in range(tries):
        with contextlib.suppress(httpx.TransportError):
            body = (await http.get(f"{prom.url}/api/v1/query", params={"query": query})).json()
            if body.get("data", {}).get("result"):
                return
        await asyncio.sleep(0.05)
    raise BenchError(f"prometheus never had {query!r}:\n{prom.log_tail()}")


def arrivals(cf: FakeCloudflare) -> dict[str, float]:
    """When each watcher's first create-deployment POST arrived."""
    seen: dict[str, float] = {}
    for call in cf.calls:
        if call.method != "POST" or call.path != DEPLOYMENTS:
            continue
        message = str((call.json or {}).get("annotations", {}).get("workers/message", ""))
        who = message.removeprefix(AM_MESSAGE).strip() if message.startswith(AM_MESSAGE) else ""
        seen.setdefault(who or WATCHDOG, call.at)
    return seen


def logged_at(log_path: Path, state: str, field: str = "timestamp") -> float | None:
    """When the daemon's rule first went ``state``, from its JSON log (same machine
    clock); with ``field="since"``, the stamp of the run's first breaching sample
    (``active_since``) that the line carries."""
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == "rule state" and entry.get("state") == state:
                if field == "since":
                    since = entry.get("since")
                    return float(since) if isinstance(since, int | float) else None
                stamp = str(entry["timestamp"]).replace("Z", "+00:00")
                return datetime.fromisoformat(stamp).timestamp()
    return None


async def active_at(http: httpx.AsyncClient, prom: Proc) -> float | None:
    """Prometheus's own first breaching evaluation (the alert's ``activeAt``)."""
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        body = (await http.get(f"{prom.url}/api/v1/alerts")).json()
        for alert in body["data"]["alerts"]:
            stamp = str(alert["activeAt"]).replace("Z", "+00:00")
            return datetime.fromisoformat(stamp).timestamp()
    return None


@dataclass(frozen=True)
class Options:
    for_s: float
    interval: float
    slack_latency: float | None  # a Slack notifier answering this slowly, or none


def slow_slack(seconds: float) -> Receivers:
    receivers = Receivers(statuspage_api_key="unused")

    async def delay(request: Request) -> Response | None:
        if request.path.startswith("/slack"):
            await asyncio.sleep(seconds)
        return None

    receivers.router.middleware.insert(0, delay)
    return receivers


@dataclass
class World:
    """The app, and one local Cloudflare API per side: the watchdog's and the peers'
    (a peer's rollback must not change what the watchdog finds live, or the reverse)."""

    work: Path
    http: httpx.AsyncClient
    app: FakeApp
    ours: FakeCloudflare
    theirs: FakeCloudflare
    app_url: str = ""
    ours_url: str = ""
    hook_url: str = ""
    env: dict[str, str] = field(default_factory=dict)


async def one_run(index: int, opts: Options, rng: random.Random) -> Run:
    app = FakeApp(state=AppState("v2", error_ratio=HEALTHY), seed=index, error_window=WINDOW)
    app.simulate(WINDOW)
    ours = FakeCloudflare(token=TOKEN, account_id=ACCOUNT)
    theirs = FakeCloudflare(token=TOKEN, account_id=ACCOUNT)
    seed(ours)
    good = seed(theirs)
    slack = slow_slack(opts.slack_latency or 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        async with httpx.AsyncClient(timeout=5.0) as http:
            world = World(Path(tmp), http, app, ours, theirs)
            hooks = Hooks(http)
            async with (
                serve(app.router) as app_srv,
                serve(ours.router) as ours_srv,
                serve(theirs.router) as theirs_srv,
                serve(hooks.router) as hook_srv,
                serve(slack) as slack_srv,
            ):
                hooks.cf_url, hooks.good_version = theirs_srv.url, good
                world.app_url, world.ours_url, world.hook_url = (
                    app_srv.url,
                    ours_srv.url,
                    hook_srv.url,
                )
                if opts.slack_latency is not None:
                    world.env["WATCHDOG_SECRETS__SLACK_WEBHOOK"] = Receivers.slack_webhook_url(
                        slack_srv.url
                    )
                load = asyncio.create_task(traffic(app))
                try:
                    return await _measure(world, opts, rng)
                finally:
                    load.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await load


async def _measure(world: World, opts: Options, rng: random.Random) -> Run:
    for_s, interval, work = opts.for_s, opts.interval, world.work
    hook = world.hook_url
    am30, am0 = await asyncio.gather(
        start_alertmanager("am-30s", alertmanager_config(f"{hook}/hook/am-30s", None), work),
        start_alertmanager("am-0s", alertmanager_config(f"{hook}/hook/am-0s", "0s"), work),
    )
    rules = work / "rules.yaml"
    rules.write_text(watchdog_rules(world.app_url, for_s, interval, opts.slack_latency is not None))
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(work / "state.db"),
        "WATCHDOG_CLOUDFLARE_API_URL": f"{world.ours_url}/client/v4",
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "WATCHDOG_SECRETS_DIR": str(work / "no-secrets"),
        "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
        **world.env,
    }
    am_addrs = [a.url.removeprefix("http://") for a in (am30, am0)]
    async with stopping([am30, am0]) as procs:
        prom, wd = await asyncio.gather(
            start_prometheus(
                prometheus_config(world.app_url.removeprefix("http://"), am_addrs, interval),
                prometheus_rules(for_s, interval),
                work,
            ),
            start_daemon(env, work),
        )
        procs += [prom, wd]
        await asyncio.gather(
            wait_value(world.http, prom, "error_rate", tries=int(200 + 3 * interval / 0.05)),
            wd.wait_ready("/readyz"),
        )
        await asyncio.sleep(3 * interval)  # both have evaluated the healthy app a few times
        for cf in (world.ours, world.theirs):  # the bad deploy goes live ...
            cf.deploy(SCRIPT, [(cf.upload_version(SCRIPT, "v3"), 100.0)], "deploy v3")
        await asyncio.sleep(interval + rng.random() * interval)  # a random phase
        world.app.deploy("v3", error_ratio=BROKEN)  # ... and its errors begin
        world.app.simulate(WINDOW)  # the gauge reflects the new state at once
        t0 = time.time()
        limit = t0 + for_s

        def seen() -> dict[str, float]:
            return {**arrivals(world.ours), **arrivals(world.theirs)}

        # Bounded wait: the slowest peer waits out its 30 s group_wait after for:.
        for _ in range(int((for_s + 30.0 + 10 * interval + 5.0) / 0.05)):
            if len(seen()) == 1 + len(PEERS):
                break
            await asyncio.sleep(0.05)
        got = seen()
        run = Run({name: got[name] - limit if name in got else None for name in got})
        for name in (WATCHDOG, *PEERS):
            run.late.setdefault(name, None)
        fired, pending = logged_at(wd.log_path, "firing"), logged_at(wd.log_path, "firing", "since")
        if fired is not None and WATCHDOG in got:
            run.acting = got[WATCHDOG] - fired
        active = await active_at(world.http, prom)
        for name in (WATCHDOG, *PEERS):
            since = pending if name == WATCHDOG else active
            run.held[name] = got[name] - (since + for_s) if name in got and since else None
        if run.late[WATCHDOG] is None:
            print(f"  ! the watchdog did not roll back; its log:\n{wd.log_tail()}")
        return run


def _fmt(value: float | None) -> str:
    return "missed" if value is None else f"{value:+.3f} s"


def _first(run: Run, peer: str) -> bool:
    ours, theirs = run.late[WATCHDOG], run.late[peer]
    return ours is not None and (theirs is None or ours < theirs)


def _values(runs: list[Run], name: str, held: bool = False) -> list[float]:
    return [v for v in ((r.held if held else r.late).get(name) for r in runs) if v is not None]


def _median(runs: list[Run], name: str, held: bool = False) -> float | None:
    values = _values(runs, name, held)
    return statistics.median(values) if values else None


def _range(runs: list[Run], name: str, held: bool = False) -> str:
    values = _values(runs, name, held)
    return f"[{min(values):+.3f} .. {max(values):+.3f}]" if values else ""


def goal_for(interval: float) -> float:
    """The issue's goal after the hold: 150 ms at a 1 s interval, 1 s at 15 s."""
    return 0.150 if interval <= 1.0 else 1.0


async def one_interval(repeat: int, opts: Options, rng: random.Random) -> bool:
    for_s, interval = opts.for_s, opts.interval
    print(f"interval {interval:g}s, for: {for_s:g}s, {repeat} runs")
    header = (
        f"  {'run':>3}  {'after t0+for':>13}  {'after its hold':>14}  {'(firing->POST)':>14}"
        + "".join(f"  {p + ' t0+for':>14}  {p + ' hold':>12}" for p in PEERS)
    )
    print(header)
    runs: list[Run] = []
    for index in range(repeat):
        run = await one_run(index, opts, rng)
        runs.append(run)
        act = "" if run.acting is None else f"({run.acting * 1000:.0f} ms)"
        cells = "".join(f"  {_fmt(run.late[p]):>14}  {_fmt(run.held[p]):>12}" for p in PEERS)
        print(
            f"  {index + 1:>3}  {_fmt(run.late[WATCHDOG]):>13}  "
            f"{_fmt(run.held[WATCHDOG]):>14}  {act:>14}{cells}"
        )
    print(f"  medians (seconds), interval {interval:g}s:")
    ours, ours_held = _median(runs, WATCHDOG), _median(runs, WATCHDOG, True)
    goal = goal_for(interval)
    ok = ours_held is not None and ours_held <= goal
    if ours is not None and ours_held is not None:
        print(
            f"    {'rollback-watchdog':50} after t0+for {ours:+7.3f} {_range(runs, WATCHDOG)}; "
            f"after its hold {ours_held:+7.3f} {_range(runs, WATCHDOG, True)}"
        )
        acting = [r.acting for r in runs if r.acting is not None]
        if acting:
            print(
                f"    {'  of which rule firing -> rollback POST arrival':50} "
                f"{statistics.median(acting) * 1000:7.0f} ms (from the daemon's log)"
            )
    for name, label in PEERS.items():
        theirs, theirs_held = _median(runs, name), _median(runs, name, True)
        if theirs is None or theirs_held is None:
            print(f"    {label:50} missed")
            ok = False
            continue
        won = sum(1 for r in runs if _first(r, name))
        print(
            f"    {label:50} after t0+for {theirs:+7.3f} {_range(runs, name)}; "
            f"after its hold {theirs_held:+7.3f} {_range(runs, name, True)}; "
            f"the watchdog first in {won} of {repeat}"
        )
        ok = ok and ours is not None and ours < theirs
    verdict = "met" if ok else "MISSED"
    print(
        f"  goal (interval {interval:g}s): median after the hold <= {goal * 1000:.0f} ms "
        f"and faster than both peers after t0+for: {verdict}"
    )
    print()
    return ok


async def main(repeat: int, opts: Options, intervals: list[float], seed_value: int) -> int:
    rng = random.Random(seed_value)
    print(
        f"detection benchmark: app error_rate gauge {HEALTHY:.1%} -> {BROKEN:.0%} "
        f"(threshold {THRESHOLD:.0%}, for: {opts.for_s:g}s), intervals "
        f"{', '.join(f'{i:g}s' for i in intervals)}, {repeat} runs each"
    )
    print(
        "  rollback-watchdog: `python -m watchdog run` subprocess, scrape source "
        "(reads the app's /metrics itself)"
        + (
            ""
            if opts.slack_latency is None
            else f"; notifies a Slack receiver answering in {opts.slack_latency:g} s"
        )
    )
    print(
        "  peer: Prometheus (scrape + rule eval every interval, same expression and for:) "
        "-> Alertmanager -> webhook -> POST create-deployment"
    )
    print(
        "  figures: rollback request arrival at the local Cloudflare API, after t0 + for "
        "(t0: the errors begin) and after each side's own hold (its first breaching "
        "sample or evaluation + for)"
    )
    print()
    started = time.monotonic()
    ok = True
    for interval in intervals:
        ok = await one_interval(repeat, dataclasses.replace(opts, interval=interval), rng) and ok
    print(f"all goals: {'met' if ok else 'MISSED'}; wall time {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--for", dest="for_s", type=float, default=5.0, help="seconds")
    parser.add_argument(
        "--intervals", default="1,15", help="comma-separated seconds (default 1,15)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--slack-latency",
        type=float,
        default=None,
        help="give the watchdog a Slack notifier that answers in this many seconds",
    )
    args = parser.parse_args()
    chosen = [float(text) for text in args.intervals.split(",") if text.strip()]
    options = Options(args.for_s, chosen[0], args.slack_latency)
    sys.exit(asyncio.run(main(args.repeat, options, chosen, args.seed)))
