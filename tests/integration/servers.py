"""Real Debian server binaries (Prometheus, Alertmanager) on loopback for tests: the
binary found or the test skipped (failed under ``CI``), a free port tried a few times,
``/-/ready`` polled a bounded number of times, the process stopped at teardown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

READY_POLLS = 200  # x 0.05 s: both are ready in well under a second
POLL_INTERVAL_S = 0.05
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


@dataclass
class RunningServer:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def binary(names: Sequence[str], package: str) -> str:
    """The first of ``names`` on PATH; skip without it, or fail when ``CI`` is set."""
    path = next((found for name in names if (found := shutil.which(name))), None)
    if path is None:
        message = f"{names[0]} is not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the integration tests")
        pytest.skip(message)
    return path


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _ready(running: RunningServer) -> bool:
    async with httpx.AsyncClient(timeout=2.0) as http:
        for _ in range(READY_POLLS):
            if running.process.returncode is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{running.url}/-/ready")).status_code == 200:
                    return True
            await asyncio.sleep(POLL_INTERVAL_S)
    return False


S = TypeVar("S", bound=RunningServer)


async def launch(
    kind: Callable[[str, asyncio.subprocess.Process, Path], S],
    name: str,
    workdir: Path,
    argv: Callable[[int, int], list[str]],
) -> S:
    """Start ``argv(port, attempt)`` on a free port until ``/-/ready`` answers (a few
    attempts: the port may be taken meanwhile); fail with each attempt's log tail."""
    failures: list[str] = []
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        log_path = workdir / f"{name}-{attempt}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *argv(port, attempt),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        running = kind(f"http://127.0.0.1:{port}", process, log_path)
        if await _ready(running):
            return running
        await stop(process)
        failures.append(running.log_tail())
    pytest.fail(f"{name} did not become ready:\n" + "\n---\n".join(failures))
