"""Benchmark: what a Tail Worker's events cost the daemon (the ``cloudflare-tail``
source). Batches of ``--batch`` events, shaped as ``deploy/tail-worker`` posts them, go
through the real route ``POST /api/v1/tail/<source>`` (``watchdog.api.tail`` on a
``Router``: JSON with its depth check, the parser, ``CloudflareTailSource.receive``)
over ``httpx.ASGITransport``, no socket; then one read. Prints CPU per event and the
events a core could take each second.

    .venv/bin/python bench/tail_ingest.py [--events 200000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.api import tail as tail_api
from watchdog.clock import SystemClock
from watchdog.http.server import Router
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareTailSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_tail import CloudflareTailSource

SPEC = CloudflareTailSourceSpec(type="cloudflare-tail", script="api")


def event(i: int) -> dict[str, object]:
    """One invocation as the Tail Worker forwards it (its ``slim``)."""
    return {
        "scriptName": "api",
        "scriptVersion": {"id": ("0f1e2d3c-new" if i % 10 == 0 else "9a8b7c6d-old")},
        "outcome": "exception" if i % 200 == 0 else "ok",
        "eventTimestamp": 1_790_000_000_000 + i,
        "wallTime": 20 + i % 97,
        "event": {"response": {"status": 500 if i % 200 == 0 else 200}},
    }


async def run(events: int, batch: int) -> None:
    body = json.dumps([event(i) for i in range(batch)]).encode()
    posts = max(1, events // batch)
    async with httpx.AsyncClient() as http:
        deps = SourceDeps(http=http, clock=SystemClock())
        source = CloudflareTailSource("edge", SPEC, deps)
        router = Router()
        tail_api.install(router, deps.inboxes)
        transport = httpx.ASGITransport(app=router)
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(posts):
                answer = await api.post("/api/v1/tail/edge", content=body, headers=headers)
                assert answer.status_code == 200, answer.text
            signal = ResolvedSignal(
                "edge.versions",
                "edge",
                SPEC,
                SignalSpec(source="edge", field="versions"),
                "ratio",
                5.0,
            )
            sample = (await source.sample([signal], time.time()))[signal.name]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    counted = sum(v.requests for v in sample.versions)
    assert counted == posts * batch, (counted, posts * batch)
    per = cpu / counted
    print(
        f"tail ingest: {int(counted):,} events in {posts:,} POSTs of {batch:,}: "
        f"{cpu:.2f}s CPU, {wall:.2f}s wall; {per * 1e6:.1f} us CPU per event, "
        f"{1 / per:,.0f} events a second on one core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.batch))


if __name__ == "__main__":
    main()
