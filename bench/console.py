"""The console's page load with 100 rules and 1,000 incidents in the store.

Builds the state for real: a SQLite store file with 1,000 incidents (3 open, each with
a ten-step timeline; 997 closed, each with its own), a rules file of 100 rules on 100
signals with an hour of samples each at 15 s (some firing, some blind), a Worker target
on the local Cloudflare API; then serves the daemon's app (``build_app`` plus the
console, as ``rollback-watchdog run`` does) with uvicorn on loopback and times ``GET /``
from a client on the same machine: p50, p99 and max over ``--requests`` loads, after a
few warm-up loads (the first one starts the targets' background read).

    .venv/bin/python bench/console.py [--requests 300]

The loads come from a client in its own process (as a browser is).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from watchdog.api import console
from watchdog.api.app import build_app
from watchdog.clock import FakeClock
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.http.server import Request, serve
from watchdog.model import Sample
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.store.base import EventRecord, IncidentRecord
from watchdog.store.sqlite import SQLiteStore

T0 = 1_790_000_000.0
RULES, INCIDENTS, OPEN = 100, 1000, 3
INTERVAL = 15.0
CF_TOKEN = "bench-token"  # the local stand-in's
STEPS = (
    *("detected", "rollback_started", "action", "action", "rollback_finished"),
    *("verification", "action", "rule_resolved", "action", "resolved"),
)


def rules_yaml(cf_url: str) -> str:
    signals = "\n".join(
        f'  s{i}: {{source: prom, query: "q{i}", unit: ratio}}' for i in range(RULES)
    )
    rules = "\n".join(
        f"  - {{name: rule-{i:03d}, signal: s{i}, above: 5%, for: 5m, severity: critical, "
        "rollback: [worker]}"
        for i in range(RULES)
    )
    return (
        "version: 1\ndefaults: {interval: 15s, blind_after: 5m}\n"
        'sources:\n  prom: {type: prometheus, url: "http://127.0.0.1:9"}\n'
        f"signals:\n{signals}\n"
        "targets:\n  worker: {type: cloudflare-worker, script: api}\n"
        f"rules:\n{rules}\n"
    )


async def fill_store(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        for n in range(INCIDENTS):
            opened = T0 - (INCIDENTS - n) * 3600.0
            is_open = n >= INCIDENTS - OPEN
            record = IncidentRecord(
                id=f"inc-{n:04d}",
                opened_at=opened,
                rule=f"rule-{n % RULES:03d}",
                severity="critical",
                phase="verifying" if is_open else "resolved",
                targets=["worker"],
                closed_at=None if is_open else opened + 900.0,
            )
            await store.save_incident(record)
            for k, kind in enumerate(STEPS):
                data = {"why": f"step {k}", "action": "notify", "target": "slack", "ok": True}
                await store.add_event(EventRecord(record.id, opened + 30.0 * k, kind, data))
    finally:
        await store.close()


def feed(runtime: Runtime) -> None:
    """An hour of samples per signal: most calm, every 10th firing, every 25th blind."""
    runtime.watchdog.on_decision = None  # the state is built here, not acted on
    steps = int(3600 / INTERVAL)
    for i in range(RULES):
        for k in range(steps):
            at = T0 - 3600.0 + k * INTERVAL
            if i % 25 == 0 and k > steps - 30:
                sample = Sample.error(at, "connection refused")
            else:
                base = 0.09 if i % 10 == 0 and k > steps - 40 else 0.01
                sample = Sample.of(at, base * (1 + 0.3 * ((k * 7 + i) % 11) / 11), 1000.0)
            runtime.watchdog.observe(f"s{i}", sample, "prom")


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        state = Path(tmp) / "state.db"
        started = time.perf_counter()
        await fill_store(state)
        print(
            f"store: {INCIDENTS} incidents, {INCIDENTS * len(STEPS)} events in "
            f"{time.perf_counter() - started:.1f} s ({state.stat().st_size / 1e6:.1f} MB)"
        )
        cf = FakeCloudflare(token=CF_TOKEN, account_id="acct")
        for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 600)):
            version = cf.upload_version("api", name, created_on=T0 - age - 60)
            cf.deploy("api", [(version, 100.0)], name, created_on=T0 - age)
        async with serve(cf.router) as cf_srv, httpx.AsyncClient(timeout=10.0) as http:
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(rules_yaml(cf_srv.url))
            env = {
                "WATCHDOG_RULES": str(rules),
                "WATCHDOG_STATE": str(state),
                "WATCHDOG_SECRETS_DIR": str(Path(tmp) / "none"),
                "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
                "CLOUDFLARE_API_TOKEN": CF_TOKEN,
                "CLOUDFLARE_ACCOUNT_ID": "acct",
            }
            runtime = await Runtime.build(load_settings(env), FakeClock(T0), http)
            try:
                feed(runtime)
                app = build_app(runtime.watchdog, None, silences=runtime.silences)
                page = console.install(app, runtime, "127.0.0.1")
                async with serve(app) as srv, httpx.AsyncClient(base_url=srv.url) as client:
                    await measure(client, page, requests)
                await page.close()
            finally:
                await runtime.stop()


async def measure(client: httpx.AsyncClient, page: console.Console, requests: int) -> None:
    """Warm up in-process, then time the loads from a client in its own process (as a
    browser is), so the client's work is not the server's."""
    headers = {"host": "localhost"}
    (await client.get("/", headers=headers)).raise_for_status()
    await page.targets.wait()
    answer = await client.get("/", headers=headers)
    assert answer.text.count('class="rule state-') == RULES
    assert 'id="target-worker"' in answer.text
    loader = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        str(client.base_url),
        "--requests",
        str(requests),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await loader.communicate()
    times = sorted(json.loads(out))
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(
        f"GET / ({len(answer.content) / 1000:.0f} kB, {RULES} rules, {INCIDENTS} incidents, "
        f"{OPEN} open) over loopback, {requests} loads: p50 {statistics.median(times):.1f} ms, "
        f"p99 {p99:.1f} ms, max {times[-1]:.1f} ms (goal < 100 ms)"
    )
    # The page's own cost, apart from the client and the scheduler: CPU seconds of
    # this process per page built in-process (the store's worker thread included).
    request = Request("GET", "/", {}, {"host": "localhost"}, b"", "127.0.0.1")
    cpu = time.process_time()
    for _ in range(50):
        await page.index(request)
    print(f"building the page in-process: {(time.process_time() - cpu) / 50 * 1000:.1f} ms CPU")


def load(url: str, requests: int) -> list[float]:
    """The client process: ``requests`` sequential loads of ``/`` (ms each)."""
    times = []
    with httpx.Client(base_url=url, headers={"host": "localhost"}) as client:
        for _ in range(5):
            client.get("/").raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            client.get("/").raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the loader process
    args = parser.parse_args()
    if args.client:
        print(json.dumps(load(args.client, args.requests)))
    else:
        asyncio.run(main(args.requests))
