"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on loopback for tests.

``start_alertmanager(webhook_url, token)`` writes a config whose one receiver is a
webhook to ``webhook_url`` (with a Bearer token when given), grouping by alertname
and flushing every second, starts the binary on a free port with clustering off and a
temporary data directory, waits until ``/-/ready`` answers (a bounded number of
polls) and stops it at teardown. Without the binary the tests skip, except under
``CI`` where they fail: CI must not silently test less (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

READY_POLLS = 200  # x 0.05 s: Alertmanager is ready in well under a second
POLL_INTERVAL_S = 0.05
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


@dataclass
class RunningAlertmanager:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def alerts(self, http: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds as active (not resolved)."""
        response = await http.get(f"{self.url}/api/v2/alerts", params=filters)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


StartAlertmanager = Callable[[str, str | None], Awaitable[RunningAlertmanager]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def config(webhook_url: str, token_file: Path | None) -> str:
    auth = (
        f"        http_config:\n          authorization:\n"
        f"            credentials_file: {token_file}\n"
        if token_file is not None
        else ""
    )
    return (
        "route:\n"
        "  receiver: watchdog\n"
        "  group_by: [alertname]\n"
        "  group_wait: 0s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1m\n"
        "receivers:\n"
        "  - name: watchdog\n"
        "    webhook_configs:\n"
        f"      - url: {webhook_url}\n"
        "        send_resolved: true\n"
        f"{auth}"
    )


@pytest.fixture
def alertmanager_binary() -> str:
    path = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if path is None:
        message = "alertmanager is not installed (apt-get install prometheus-alertmanager)"
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
async def start_alertmanager(
    alertmanager_binary: str, tmp_path: Path
) -> AsyncIterator[StartAlertmanager]:
    started: list[RunningAlertmanager] = []

    async def start(webhook_url: str, token: str | None) -> RunningAlertmanager:
        workdir = tmp_path / f"alertmanager-{len(started)}"
        workdir.mkdir()
        token_file = None
        if token is not None:
            token_file = workdir / "token"
            token_file.write_text(token)
        conf = workdir / "alertmanager.yml"
        conf.write_text(config(webhook_url, token_file))
        failures: list[str] = []
        for attempt in range(START_ATTEMPTS):
            port = _free_port()
            log_path = workdir / f"alertmanager-{attempt}.log"
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    alertmanager_binary,
                    f"--config.file={conf}",
                    f"--storage.path={workdir / f'data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            running = RunningAlertmanager(f"http://127.0.0.1:{port}", process, log_path)
            started.append(running)
            if await _ready(running):
                return running
            await _stop(process)
            failures.append(running.log_tail())
        pytest.fail("alertmanager did not become ready:\n" + "\n---\n".join(failures))

    yield start
    for running in started:
        await _stop(running.process)


async def _ready(running: RunningAlertmanager) -> bool:
    async with httpx.AsyncClient(timeout=2.0) as http:
        for _ in range(READY_POLLS):
            if running.process.returncode is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{running.url}/-/ready")).status_code == 200:
                    return True
            await asyncio.sleep(POLL_INTERVAL_S)
    return False
