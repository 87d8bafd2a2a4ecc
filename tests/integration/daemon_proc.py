"""Run the real daemon (``python -m watchdog run``) as a subprocess for tests that
kill it: start it with an environment, wait until ``/healthz`` answers, SIGKILL it,
start it again on the same state. Output goes to one log file per run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
READY_POLLS = 200  # x 0.05 s
POLL_S = 0.05
START_ATTEMPTS = 3  # a free port can be taken between choosing and binding it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class DaemonProc:
    """One daemon, run as many times as a test restarts it."""

    env: Mapping[str, str]
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    url: str = ""
    runs: int = 0
    logs: list[Path] = field(default_factory=list)

    async def start(self, *args: str) -> None:
        """Start a run and wait until it serves /healthz (bounded); fails with the log."""
        assert self.process is None or self.process.returncode is not None, "already running"
        problems: list[str] = []
        for _ in range(START_ATTEMPTS):
            port = free_port()
            self.runs += 1
            log_path = self.workdir / f"daemon-{self.runs}.log"
            self.logs.append(log_path)
            env = {
                **os.environ,
                "WATCHDOG_LOG_FORMAT": "json",
                **self.env,
                "WATCHDOG_LISTEN": f"127.0.0.1:{port}",
            }
            with log_path.open("wb") as log:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "watchdog",
                    "run",
                    *args,
                    cwd=REPO,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            self.url = f"http://127.0.0.1:{port}"
            if await self._healthy():
                return
            await self.kill()
            problems.append(self.log_tail())
        raise AssertionError("the daemon did not start:\n" + "\n---\n".join(problems))

    async def _healthy(self) -> bool:
        assert self.process is not None
        async with httpx.AsyncClient(timeout=1.0) as http:
            for _ in range(READY_POLLS):
                if self.process.returncode is not None:
                    return False
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return True
                await asyncio.sleep(POLL_S)
        return False

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in ``kill -9`` or an OOM kill."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM and wait (bounded), SIGKILL if it does not stop; the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=timeout_s)
            except TimeoutError:
                await self.kill()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self.logs:
            return "(no log)"
        try:
            text = self.logs[-1].read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
