"""Scale: the daemon's cost curve with 100, 300, 1,000 and 3,000 signals at 15 s.

For each size the daemon runs as its own process (``python -m watchdog run``) against
``scrape`` sources served by a separate metrics process (``--serve``: a raw asyncio
HTTP/1.1 server with keep-alive handing out pages rebuilt once a second, so it is never
the bottleneck). Each source's page holds ``--per-source`` signals (default 10): half
``error_ratio`` (two counters, 200s and 500s, rising with time), half ``gauge``; one
rule per signal, never breached. So 1,000 signals are 100 sources scraped every 15 s.

Figures per size, measured after a warm-up (first scrapes in, every rule evaluated):

- **CPU**: the daemon's user + system time over the measured window (``/proc``), as
  a share of one core;
- **RSS** at the end;
- **lateness**: each scrape's arrival at the metrics server against its slot (the
  source's first scrape + k x interval, the daemon's own schedule): p50, p99, the
  largest, and how many samples (scrapes x signals per source) were more than 1 s late
  or missed their slot entirely (a slot with no scrape).

Goal (issue 15): 1,000 signals at 15 s with no sample late by more than a second and
under 25 % of one core.

    .venv/bin/python bench/scale.py [--sizes 100,300,1000,3000] [--duration 120]
        [--warmup 20] [--interval 15] [--per-source 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localproc import Proc, cpu_seconds, free_port, rss_bytes, spawn, start_daemon

CPU_GOAL = 25.0  # % of one core at 1,000 signals
LATE_S = 1.0


# --- the metrics server (its own process) ---------------------------------------------


def page(source: int, per_source: int, now: float) -> bytes:
    """Source ``source``'s exposition at ``now``: counters rise 100 requests a second,
    0.5 % of them 500s; gauges hold still."""
    lines: list[str] = []
    for i in range(per_source):
        name = f"s{source}_{i}"
        if i % 2 == 0:
            ok, bad = int(now * 99.5), int(now * 0.5)
            lines.append(f"# TYPE {name}_requests_total counter")
            lines.append(f'{name}_requests_total{{code="200"}} {ok}')
            lines.append(f'{name}_requests_total{{code="500"}} {bad}')
        else:
            lines.append(f"# TYPE {name}_gauge gauge")
            lines.append(f"{name}_gauge 0.42")
    return ("\n".join(lines) + "\n").encode()


class MetricsServer:
    def __init__(self, sources: int, per_source: int) -> None:
        self.sources = sources
        self.per_source = per_source
        self.pages: dict[str, bytes] = {}
        self.arrivals: dict[str, list[float]] = {}

    async def rebuild(self) -> None:
        while True:
            now = time.time()
            self.pages = {f"/m/{k}": page(k, self.per_source, now) for k in range(self.sources)}
            await asyncio.sleep(1.0)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                path = head.split(b" ", 2)[1].decode()
                if path == "/arrivals":
                    body = json.dumps(self.arrivals).encode()
                else:
                    self.arrivals.setdefault(path, []).append(arrived)
                    body = self.pages.get(path, b"")
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def run(self, port: int) -> None:
        rebuild = asyncio.create_task(self.rebuild())
        server = await asyncio.start_server(self.handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()
        rebuild.cancel()


# --- the bench ----------------------------------------------------------------------------


def rules_file(url: str, signals: int, per_source: int, interval: float) -> str:
    sources: dict[str, Any] = {}
    specs: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    for n in range(signals):
        k, i = divmod(n, per_source)
        sources.setdefault(f"s{k}", {"type": "scrape", "url": f"{url}/m/{k}", "timeout": "5s"})
        name = f"s{k}_{i}"
        if i % 2 == 0:
            specs[name] = {
                "source": f"s{k}",
                "kind": "error_ratio",
                "metric": f"{name}_requests_total",
            }
            rules.append(
                {
                    "name": f"r-{name}",
                    "signal": name,
                    "above": "5%",
                    "for": "1m",
                    "severity": "critical",
                }
            )
        else:
            specs[name] = {"source": f"s{k}", "kind": "gauge", "metric": f"{name}_gauge"}
            rules.append(
                {"name": f"r-{name}", "signal": name, "above": 10, "for": "1m", "severity": "low"}
            )
    document = {
        "version": 1,
        "defaults": {"interval": f"{interval:g}s", "blind_after": "5m"},
        "sources": sources,
        "signals": specs,
        "rules": rules,
    }
    return yaml.safe_dump(document, sort_keys=False)


def lateness(
    arrivals: dict[str, list[float]], start: float, end: float, interval: float
) -> tuple[list[float], int]:
    """Per scrape in [start, end): its delay past its slot; and the slots with no scrape."""
    late: list[float] = []
    missed = 0
    for times in arrivals.values():
        if not times:
            continue
        first = times[0]
        slots: dict[int, float] = {}
        for at in times:
            k = round((at - first) / interval)
            slots.setdefault(k, at - (first + k * interval))
        lo, hi = int((start - first) // interval) + 1, int((end - first) // interval)
        for k in range(lo, hi + 1):
            if k in slots:
                late.append(max(slots[k], 0.0))
            else:
                missed += 1
    return late, missed


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_size(signals: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    per = args.per_source
    sources = (signals + per - 1) // per
    port = free_port()
    server = await spawn(
        f"metrics-{signals}",
        [
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--serve-sources",
            str(sources),
            "--per-source",
            str(per),
        ],
        port,
        work,
    )
    url = f"http://127.0.0.1:{port}"
    procs: list[Proc] = [server]
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    await http.get(f"{url}/arrivals")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            rules = work / f"rules-{signals}.yaml"
            rules.write_text(rules_file(url, signals, per, args.interval))
            env = {
                "WATCHDOG_RULES": str(rules),
                "WATCHDOG_STATE": str(work / f"state-{signals}.db"),
                "WATCHDOG_SECRETS_DIR": str(work / "no-secrets"),
                "WATCHDOG_LOG_LEVEL": "warning",
                "CLOUDFLARE_API_TOKEN": "unused",
                "CLOUDFLARE_ACCOUNT_ID": "unused",
            }
            daemon = await start_daemon(env, work, f"watchdog-{signals}")
            procs.append(daemon)
            await asyncio.sleep(args.warmup)
            start, cpu0 = time.time(), cpu_seconds(daemon.pid)
            await asyncio.sleep(args.duration)
            end, cpu1 = time.time(), cpu_seconds(daemon.pid)
            rss = rss_bytes(daemon.pid)
            arrivals = (await http.get(f"{url}/arrivals")).json()
    finally:
        await asyncio.gather(*(p.stop() for p in procs))
    late, missed = lateness(arrivals, start, end, args.interval)
    cpu = 100.0 * (cpu1 - cpu0) / (end - start)
    over = sum(1 for value in late if value > LATE_S)
    return {
        "signals": signals,
        "sources": sources,
        "cpu": cpu,
        "rss": rss / 2**20,
        "p50": pct(late, 0.5),
        "p99": pct(late, 0.99),
        "max": max(late) if late else float("nan"),
        "samples": len(late) * per,
        "late": over * per,
        "missed": missed * per,
    }


async def main(args: argparse.Namespace) -> int:
    sizes = [int(text) for text in args.sizes.split(",")]
    print(
        f"scale benchmark: scrape sources of {args.per_source} signals each (half error_ratio, "
        f"half gauge), one rule per signal, interval {args.interval:g}s, "
        f"{args.duration:g}s measured after a {args.warmup:g}s warm-up"
    )
    print(
        f"  {'signals':>7} {'sources':>7} {'CPU %core':>9} {'RSS MiB':>8} {'late p50':>9} "
        f"{'p99':>7} {'max':>7} {'samples':>8} {'>1s late':>8} {'missed':>7}"
    )
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for signals in sizes:
            row = await one_size(signals, args, Path(tmp))
            print(
                f"  {signals:>7} {int(row['sources']):>7} {row['cpu']:>8.1f}% {row['rss']:>8.1f} "
                f"{row['p50'] * 1000:>7.0f}ms {row['p99'] * 1000:>5.0f}ms "
                f"{row['max'] * 1000:>5.0f}ms "
                f"{int(row['samples']):>8} {int(row['late']):>8} {int(row['missed']):>7}"
            )
            if signals == 1000:
                ok = row["cpu"] < CPU_GOAL and row["late"] == 0 and row["missed"] == 0
    print(
        f"goal (1,000 signals at {args.interval:g}s: no sample more than {LATE_S:g}s late or "
        f"missed, under {CPU_GOAL:g}% of one core): {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100,300,1000,3000")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds measured per size")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds")
    parser.add_argument("--per-source", type=int, default=10, help="signals per scrape source")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--serve-sources", type=int, default=0, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        server = MetricsServer(arguments.serve_sources, arguments.per_source)
        asyncio.run(server.run(arguments.serve))
    else:
        sys.exit(asyncio.run(main(arguments)))
