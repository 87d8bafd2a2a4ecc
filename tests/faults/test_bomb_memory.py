"""Fault matrix, bounded memory: the real daemon (``python -m watchdog run``) in a
subprocess, every source it has (Prometheus, scrape, probe, Cloudflare analytics)
pointed at one loopback server that answers every request with the worst
decompression bomb (a 1 MB gzip of 1 GiB of zeros, or the same gzipped twice and
sent as ``Content-Encoding: gzip, gzip``: 1.8 KB on the wire), sampled every second
at the default 20 MB caps.

Asserts the daemon's peak RSS (``VmHWM`` from /proc, the kernel's high-water mark)
stays under 150 MB, the shipped Deployment's limit being 256Mi, and that
``/healthz`` keeps answering while the bombs are being read (``PROBES`` probes over
loopback): the median within 100 ms and the worst within 1 s (the liveness probe
allows 3 s; before the bounded read it stalled up to 5.9 s). The worst is held to the
stall the defect made, not to 100 ms: on a loaded CI machine one probe in twenty
can wait for a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.daemon_proc import REPO, DaemonProc

pytestmark = pytest.mark.integration

RSS_LIMIT_KB = 150 * 1024
HEALTHZ_MEDIAN_LIMIT_S = 0.100
HEALTHZ_WORST_LIMIT_S = 1.0
PROBES = 20
BOMBED_ROUNDS = 12  # requests per source to wait for: every source sampled many times

RULES = """
version: 1
defaults: {{interval: 1s, blind_after: 1m}}
sources:
  prom:   {{type: prometheus, url: "{url}", timeout: 5s}}
  app:    {{type: scrape, url: "{url}/metrics", timeout: 5s}}
  health: {{type: probe, url: "{url}/health", timeout: 5s}}
  cf:     {{type: cloudflare, script: api, timeout: 5s}}
signals:
  errors: {{source: prom, query: "job:http_errors:ratio_rate1m", unit: ratio}}
  p95:    {{source: app, kind: quantile, metric: http_request_duration_seconds}}
  cf_errors: {{source: cf, field: error_rate}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
rules:
  - {{name: errors, signal: errors, above: 5%, for: 1m, severity: critical, rollback: [worker]}}
  - {{name: p95, signal: p95, above: 2s, for: 1m, severity: critical, rollback: [worker]}}
  - {{name: down, signal: health.up, below: 1, for: 1m, severity: critical, rollback: [worker]}}
  - {{name: cf, signal: cf_errors, above: 5%, for: 1m, severity: critical, rollback: [worker]}}
"""


@contextlib.asynccontextmanager
async def bomb_server() -> AsyncIterator[str]:
    """``tests/faults/bomb_server.py`` in its own process; its URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.bomb_server",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert line.strip().isdigit(), f"the bomb server did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        process.kill()
        await process.wait()


async def rounds(http: httpx.AsyncClient, url: str) -> int:
    """Bombs served to the least-served source so far."""
    count = (await http.get(f"{url}/count")).json()
    paths = ("/api/v1/query", "/metrics", "/health", "cloudflare")
    return min(int(count.get(path, 0)) for path in paths)


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


async def test_every_source_bombed_at_once_stays_bounded_and_live(tmp_path: Path) -> None:
    async with bomb_server() as url:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(url=url))
        daemon = DaemonProc(
            {
                "WATCHDOG_RULES": str(rules),
                "WATCHDOG_STATE": str(tmp_path / "state.db"),
                "WATCHDOG_CLOUDFLARE_API_URL": f"{url}/client/v4",
                "CLOUDFLARE_API_TOKEN": "bomb-test-token",
                "CLOUDFLARE_ACCOUNT_ID": "acct",
                "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
                "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
            },
            tmp_path,
        )
        await daemon.start()
        took: list[float] = []
        try:
            assert daemon.process is not None
            async with httpx.AsyncClient(timeout=5.0) as http:
                for _ in range(600):  # bounded: a minute at most
                    served = await rounds(http, url)
                    if served >= BOMBED_ROUNDS and len(took) >= PROBES:
                        break
                    started = time.perf_counter()
                    response = await http.get(f"{daemon.url}/healthz")
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200
                    if served >= 1:  # only while bombs are being read
                        took.append(elapsed)
                    await asyncio.sleep(0.1)
            peak = peak_rss_kb(daemon.process.pid)
        finally:
            await daemon.stop()
    worst = max(took)
    median = sorted(took)[len(took) // 2]
    print(
        f"\nbombs: {served} rounds per source; peak RSS {peak / 1024:.1f} MB; "
        f"/healthz worst of {len(took)}: {worst * 1000:.1f} ms, "
        f"median {median * 1000:.1f} ms"
    )
    assert served >= BOMBED_ROUNDS, daemon.log_tail()
    assert peak < RSS_LIMIT_KB, f"peak RSS {peak / 1024:.0f} MB"
    assert median < HEALTHZ_MEDIAN_LIMIT_S, f"/healthz median {median * 1000:.0f} ms"
    assert worst < HEALTHZ_WORST_LIMIT_S, f"/healthz took {worst * 1000:.0f} ms"
