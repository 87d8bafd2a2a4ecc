"""A real ``prometheus`` server on loopback for integration tests.

``start_prometheus(targets)`` writes a config that scrapes ``targets`` every second,
starts the binary on a free port with a temporary TSDB, waits until ``/-/ready``
answers (a bounded number of polls) and stops it at teardown. Without the binary the
tests skip, except under ``CI`` where they fail: CI must not silently test less.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import httpx
import pytest

from tests.helpers import until
from tests.integration.servers import POLL_INTERVAL_S, RunningServer, binary, launch, stop

SCRAPE_INTERVAL = "1s"


class RunningPrometheus(RunningServer):
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
    return binary(["prometheus"], "prometheus")


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

        def argv(port: int, attempt: int) -> list[str]:
            return [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / f'data-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ]

        running = await launch(RunningPrometheus, "prometheus", workdir, argv)
        started.append(running)
        return running

    yield start
    for running in started:
        await stop(running.process)
