"""Soak: the daemon for 10 minutes with 100 rules at a 1 s interval; its CPU and memory.

The daemon runs as its own process (``python -m watchdog run``, what
``rollback-watchdog run`` runs) against local sources served by this process: the
simulated app's ``/metrics`` (a ``scrape`` source: error ratio, p50/p90/p95/p99
latency, the error-rate gauge, the request rate) and its ``/health`` (a ``probe``
source: up and latency), with steady healthy traffic (in-process, 50 requests a
second), and the local Cloudflare API for the targets. 100 rules spread over those
nine signals with varied thresholds, windows and severities, none breached by
healthy traffic (a rollback or notification would be a finding, and is counted).

CPU share and RSS come from ``/proc/PID/stat`` and ``/proc/PID/status`` of the
daemon. The baseline is taken after a warm-up (imports done, first scrapes in,
every rule evaluated); growth and CPU are measured from there to the end.

Goal: RSS growth under 5 %, CPU under 10 % of one core.

    .venv/bin/python bench/soak.py [--duration 600] [--rules 100] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import math
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localproc import Proc, cpu_seconds, rss_bytes, start_daemon

from watchdog.core.engine import Engine
from watchdog.core.window import SignalWindow
from watchdog.demo.fakes.app import AppState, FakeApp, LatencyModel
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.http.server import serve
from watchdog.model import Sample

TOKEN = "soak-cloudflare-token"
ACCOUNT = "soak-account"
RPS = 50.0
HEALTHY = AppState("v2", error_ratio=0.005, latency=LatencyModel(0.08, 0.4))

# (signal, comparison, thresholds to cycle through): all far from healthy values.
FAMILIES: list[tuple[str, str, list[str]]] = [
    ("error_ratio", "above", ["5%", "8%", "10%", "15%", "20%", "30%"]),
    ("p50", "above", ["1s", "1500ms", "2s", "3s"]),
    ("p90", "above", ["2s", "3s", "4s", "6s"]),
    ("p95", "above", ["3s", "5s", "7500ms", "10s"]),
    ("p99", "above", ["5s", "10s", "15s", "20s"]),
    ("error_gauge", "above", ["5%", "10%", "25%"]),
    ("request_rate", "below", ["1", "2", "5"]),
    ("health.up", "below", ["1"]),
    ("health.latency", "above", ["1s", "2s", "5s"]),
]
FORS = ["5s", "10s", "30s", "1m", "5m"]
SEVERITIES = ["critical", "high", "medium", "low"]


def rules_file(app_url: str, count: int, interval: float) -> str:
    signals: dict[str, Any] = {
        "error_ratio": {"source": "app", "kind": "error_ratio", "metric": "http_requests_total"},
        "error_gauge": {"source": "app", "kind": "gauge", "metric": "error_rate", "unit": "ratio"},
        "request_rate": {"source": "app", "kind": "rate", "metric": "http_requests_total"},
    }
    for q in (50, 90, 95, 99):
        signals[f"p{q}"] = {
            "source": "app",
            "kind": "quantile",
            "metric": "http_request_duration_seconds",
            "quantile": q / 100,
        }
    rules: list[dict[str, Any]] = []
    for index in range(count):
        signal, comparison, thresholds = FAMILIES[index % len(FAMILIES)]
        round_ = index // len(FAMILIES)
        severity = SEVERITIES[index % len(SEVERITIES)]
        rule: dict[str, Any] = {
            "name": f"rule-{index:03d}-{signal.replace('.', '-')}",
            "signal": signal,
            comparison: thresholds[round_ % len(thresholds)],
            "for": FORS[round_ % len(FORS)],
            "severity": severity,
        }
        if signal in ("error_ratio", "p50", "p90", "p95", "p99"):
            rule["min_requests"] = 10
        if severity in ("critical", "high"):
            rule["rollback"] = ["worker"]
        rules.append(rule)
    document = {
        "version": 1,
        "defaults": {"interval": f"{interval:g}s", "blind_after": "1m"},
        "sources": {
            "app": {"type": "scrape", "url": f"{app_url}/metrics", "timeout": "2s"},
            "health": {"type": "probe", "url": f"{app_url}/health", "timeout": "2s"},
        },
        "signals": signals,
        "targets": {"worker": {"type": "cloudflare-worker", "script": "api"}},
        "rules": rules,
        "correlation": {"enabled": True, "max_deploy_age": "2h"},
    }
    return yaml.safe_dump(document, sort_keys=False)


async def traffic(app: FakeApp) -> None:
    batch = 5
    while True:
        app.simulate(batch)
        await asyncio.sleep(batch / RPS)


@dataclass
class Reading:
    at: float  # seconds since the baseline
    cpu_s: float
    rss: int


def read(proc: Proc, since: float) -> Reading:
    return Reading(time.monotonic() - since, cpu_seconds(proc.pid), rss_bytes(proc.pid))


def metric_sum(text: str, name: str, where: str = "") -> float:
    """Sum of a family's samples in Prometheus text (those whose line contains ``where``)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and where in line and not line.startswith("#"):
            value = float(line.rsplit(" ", 1)[1])
            if not math.isnan(value):
                total += value
    return total


def window_bytes_per_sample() -> float:
    """What one sample costs in the engine's per-signal window (tracemalloc)."""
    window = SignalWindow(span_s=1e9, max_samples=10_000)
    tracemalloc.start()
    try:
        for i in range(5000):
            window.add(Sample.of(1e9 + i, i / 5000, float(i)))
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return used / 5000


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


async def main(duration: float, count: int, interval: float, warmup: float) -> int:
    app = FakeApp(state=HEALTHY, seed=3)
    cf = FakeCloudflare(token=TOKEN, account_id=ACCOUNT)
    now = time.time()
    version = cf.upload_version("api", "v2", created_on=now - 86400 - 60)
    cf.deploy("api", [(version, 100.0)], "deploy v2", created_on=now - 86400)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = Path(tmp)
        async with (
            serve(app.router) as app_srv,
            serve(cf.router) as cf_srv,
            httpx.AsyncClient(timeout=5.0) as http,
        ):
            rules = work / "rules.yaml"
            rules.write_text(rules_file(app_srv.url, count, interval))
            load = asyncio.create_task(traffic(app))
            proc = await start_daemon(
                {
                    "WATCHDOG_RULES": str(rules),
                    "WATCHDOG_STATE": str(work / "state.db"),
                    "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
                    "CLOUDFLARE_API_TOKEN": TOKEN,
                    "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
                    "WATCHDOG_SECRETS_DIR": str(work / "no-secrets"),
                    "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
                },
                work,
                "soak-daemon",
            )
            try:
                return await _soak(proc, http, cf, duration, count, interval, warmup)
            finally:
                await proc.stop()
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load


async def _soak(
    proc: Proc,
    http: httpx.AsyncClient,
    cf: FakeCloudflare,
    duration: float,
    count: int,
    interval: float,
    warmup: float,
) -> int:
    await proc.wait_ready("/readyz")
    ready_rss = rss_bytes(proc.pid)
    print(
        f"soak: {count} rules over {len(FAMILIES)} signals (2 sources) at a {interval:g} s "
        f"interval, {duration:.0f} s after a {warmup:.0f} s warm-up; daemon pid {proc.pid}"
    )
    print(f"  RSS when ready: {mib(ready_rss)}")
    await asyncio.sleep(warmup)
    before = (await http.get(proc.url + "/metrics")).text
    start = read(proc, time.monotonic())
    origin = time.monotonic() - start.at
    print(f"  baseline after warm-up: RSS {mib(start.rss)}")
    readings = [start]
    step = max(duration / 10, 1.0)
    while readings[-1].at < duration:
        await asyncio.sleep(min(step, duration - readings[-1].at))
        readings.append(read(proc, origin))
        last = readings[-1]
        cpu = (last.cpu_s - start.cpu_s) / last.at if last.at > 0 else 0.0
        print(f"  t={last.at:6.0f} s  RSS {mib(last.rss):>10}  CPU so far {cpu:6.2%} of one core")
    after = (await http.get(proc.url + "/metrics")).text
    end = readings[-1]
    cpu_share = (end.cpu_s - start.cpu_s) / end.at
    growth = (end.rss - start.rss) / start.rss
    samples = metric_sum(after, "watchdog_samples_total") - metric_sum(
        before, "watchdog_samples_total"
    )
    expected = len(FAMILIES) * end.at / interval
    errors = metric_sum(after, "watchdog_source_errors_total", 'kind="error"')
    decisions = metric_sum(after, "watchdog_decisions_total")
    rollbacks = sum(1 for c in cf.calls if c.method == "POST")
    print()
    print(
        f"  samples taken: {samples:.0f} (expected about {expected:.0f}); "
        f"source errors {errors:.0f}"
    )
    print(f"  decisions: {decisions:.0f}; rollback requests: {rollbacks}")
    print(f"  RSS: {mib(start.rss)} at the baseline, {mib(end.rss)} at the end: {growth:+.2%}")
    print(f"       ({mib(ready_rss)} when ready: {(end.rss - ready_rss) / ready_rss:+.2%})")
    # The engine keeps each signal's samples for an hour (verification baselines):
    # retention by design, bounded, that a soak shorter than an hour sees as growth.
    per = window_bytes_per_sample()
    windows = samples * per
    span = float(inspect.signature(Engine).parameters["window_span_s"].default)
    cap = int(inspect.signature(SignalWindow).parameters["max_samples"].default)
    plateau = len(FAMILIES) * min(span / interval, cap) * per
    print(
        f"       of which the engine's sample windows: {mib(windows)} ({samples:.0f} samples x "
        f"{per:.0f} B); beyond them {(end.rss - start.rss - windows) / 2**20:+.2f} MiB"
    )
    print(
        f"       the windows stop growing after {span / 60:.0f} min, at {mib(plateau)} "
        f"({plateau / start.rss:+.1%} of the baseline)"
    )
    print(
        f"  CPU: {end.cpu_s - start.cpu_s:.1f} s over {end.at:.0f} s = {cpu_share:.2%} of one core"
    )
    ok = growth < 0.05 and cpu_share < 0.10
    print()
    print(f"goal (RSS growth < 5 %, CPU < 10 % of one core): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the baseline")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.duration, args.rules, args.interval, args.warmup)))
