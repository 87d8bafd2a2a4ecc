"""A real ``prometheus`` server on loopback for integration tests.

``start_prometheus(targets)`` writes a config that scrapes ``targets`` every second,
starts the binary on a free port with a temporary TSDB, waits until ``/-/ready``
answers (a bounded number of polls) and stops it at teardown. Without the binary the
tests skip, except under ``CI`` where they fail: CI must not silently test less.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import until

READY_POLLS = 200  # x 0.05 s: Prometheus is usually ready in well under a second
POLL_INTERVAL_S = 0.05
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
SCRAPE_INTERVAL = "1s"


@dataclass
class RunningPrometheus:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def value(self, http: httpx.AsyncClient, promql: str, at: float | None = None) -> float:
        """The query's single value (NaN when the vector is empty)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        response = await http.get(f"{self.url}/api/v1/query", params=params)
        body = response.json()
        assert body["status"] == "success", body
        data = body["data"]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        result = data["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else math.nan

    async def poll_until(
        self,
        http: httpx.AsyncClient,
        promql: str,
        done: Callable[[float], bool],
        polls: int = 200,
    ) -> float:
        """Poll an instant query until ``done(value)``: waiting for scrapes to land,
        a bounded number of times; fails with the last value and the server log."""
        value = math.nan

        async def reached() -> bool:
            nonlocal value
            value = await self.value(http, promql)
            return done(value)

        await until(
            reached,
            f"{promql!r} to reach the expected value",
            polls=polls,
            every_s=POLL_INTERVAL_S,
            detail=lambda: f"last: {value}\n{self.log_tail()}",
        )
        return value


StartPrometheus = Callable[[Sequence[str]], Awaitable[RunningPrometheus]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _config(targets: Sequence[str]) -> str:
    listed = ", ".join(f'"{target}"' for target in targets)
    return (
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f"    static_configs: [{{targets: [{listed}]}}]\n"
    )


@pytest.fixture
def prometheus_binary() -> str:
    """The path of ``prometheus``; skip without it, or fail when ``CI`` is set."""
    path = shutil.which("prometheus")
    if path is None:
        message = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the integration tests")
        pytest.skip(message)
    return path


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        process.kill()
        await process.wait()


@pytest.fixture
async def start_prometheus(
    prometheus_binary: str, tmp_path: Path
) -> AsyncIterator[StartPrometheus]:
    """A starter for a Prometheus that scrapes the given ``host:port`` targets."""
    started: list[RunningPrometheus] = []

    async def start(targets: Sequence[str]) -> RunningPrometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        config = workdir / "prometheus.yml"
        config.write_text(_config(targets))
        failures: list[str] = []
        for attempt in range(START_ATTEMPTS):
            port = _free_port()
            log_path = workdir / f"prometheus-{attempt}.log"
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    prometheus_binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / f'data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            running = RunningPrometheus(f"http://127.0.0.1:{port}", process, log_path)
            started.append(running)
            if await _ready(running):
                return running
            await _stop(process)
            failures.append(running.log_tail())
        pytest.fail("prometheus did not become ready:\n" + "\n---\n".join(failures))

    yield start
    for running in started:
        await _stop(running.process)


async def _ready(running: RunningPrometheus) -> bool:
    async with httpx.AsyncClient(timeout=2.0) as http:
        for _ in range(READY_POLLS):
            if running.process.returncode is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{running.url}/-/ready")).status_code == 200:
                    return True
            await asyncio.sleep(POLL_INTERVAL_S)
    return False
