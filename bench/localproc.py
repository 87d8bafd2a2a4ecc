"""Real processes on loopback for the benchmarks: the daemon (``python -m watchdog
run``), ``prometheus`` and ``prometheus-alertmanager``, each on a free port with its
own log file, waited for (bounded) and stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
POLL_S = 0.05


class BenchError(RuntimeError):
    """A benchmark could not set itself up (a binary missing, a process not starting)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} is not installed (Debian: apt-get install {name})")
    return path


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, path: str, timeout_s: float = 20.0) -> None:
        """Poll ``url + path`` until it answers 200; ``BenchError`` with the log if not."""
        polls = int(timeout_s / POLL_S)
        async with httpx.AsyncClient(timeout=1.0) as http:
            for _ in range(polls):
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(self.url + path)).status_code == 200:
                        return
                await asyncio.sleep(POLL_S)
        raise BenchError(f"{self.name} did not become ready:\n{self.log_tail()}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=timeout_s)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def spawn(
    name: str,
    argv: Sequence[str],
    port: int,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> Proc:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    return Proc(name, process, f"http://127.0.0.1:{port}", log_path)


async def start_daemon(env: Mapping[str, str], workdir: Path, name: str = "watchdog") -> Proc:
    """``python -m watchdog run`` (what ``rollback-watchdog run`` runs), ready on /healthz."""
    port = free_port()
    proc = await spawn(
        name,
        [sys.executable, "-m", "watchdog", "run"],
        port,
        workdir,
        {"WATCHDOG_LOG_FORMAT": "json", **env, "WATCHDOG_LISTEN": f"127.0.0.1:{port}"},
    )
    await proc.wait_ready("/healthz")
    return proc


async def start_prometheus(config: str, rules: str, workdir: Path) -> Proc:
    """A Prometheus with ``config`` (which names ``rules.yml``) and a fresh TSDB."""
    home = workdir / "prometheus"
    home.mkdir()
    (home / "prometheus.yml").write_text(config)
    (home / "rules.yml").write_text(rules)
    port = free_port()
    proc = await spawn(
        "prometheus",
        [
            binary("prometheus"),
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        port,
        workdir,
    )
    await proc.wait_ready("/-/ready")
    return proc


async def start_alertmanager(name: str, config: str, workdir: Path) -> Proc:
    """``prometheus-alertmanager`` with ``config``, clustering off, its own storage."""
    home = workdir / name
    home.mkdir()
    (home / "alertmanager.yml").write_text(config)
    port = free_port()
    proc = await spawn(
        name,
        [
            binary("prometheus-alertmanager"),
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        port,
        workdir,
    )
    await proc.wait_ready("/-/ready")
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat, in clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for process {pid}")
