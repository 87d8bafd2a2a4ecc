"""The container's commands, outside a container (there is no Docker engine here): the
Dockerfile's ENTRYPOINT runs from this venv with the image's environment and a rules
directory, answers /healthz and /readyz, passes the image's HEALTHCHECK command, and on
SIGTERM (what ``docker stop`` and the kubelet send to PID 1) exits 0 within
WATCHDOG_SHUTDOWN_TIMEOUT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.deploy_support import dockerfile, exec_form, healthcheck_command
from watchdog.http.server import Request, Response, Router, serve
from watchdog.settings import Settings

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 30.0  # a bound for a cold interpreter start on a slow machine, not a wait
HTTP_SERVER_STOP_S = 2.0  # service.py: serve(..., shutdown_timeout_s=2.0)

RULES = """\
version: 1
sources:
  health: {{type: probe, url: "{url}/health", timeout: 2s, interval: 1s}}
rules:
  - name: site-down
    signal: health.up
    below: 1
    for: 1m
    severity: low
"""


@dataclass
class ProbedApp:
    """The loopback app the rules probe; counts probes and wakes waiters."""

    hits: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def health(self, _: Request, __: dict[str, str]) -> Response:
        self.hits += 1
        self.changed.set()
        return Response.text("ok\n")

    async def wait_for_hits(self, count: int) -> None:
        while self.hits < count:
            self.changed.clear()
            await self.changed.wait()


@dataclass
class Logs:
    """The daemon's JSON log lines from stderr, read as they come."""

    lines: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[str]:
        out = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                out.append(str(json.loads(line).get("event")))
        return out

    async def read(self, stream: asyncio.StreamReader) -> None:
        while raw := await stream.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())
            self.changed.set()
        self.changed.set()

    async def wait_for(self, event: str, process: asyncio.subprocess.Process) -> None:
        while event not in self.events():
            if process.returncode is not None:
                pytest.fail(f"the daemon exited ({process.returncode}):\n" + self.tail())
            self.changed.clear()
            await self.changed.wait()

    def tail(self, count: int = 30) -> str:
        return "\n".join(self.lines[-count:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def container_env(tmp_path: Path, port: int) -> dict[str, str]:
    """The image's ENV, as the runtime stage sets it, with only what cannot be the
    same outside a container swapped: the venv's bin for /app/.venv/bin, temporary
    directories for the rules, state and secrets paths, a free loopback port for
    0.0.0.0:9464. Nothing is inherited from this process's environment."""
    image = dockerfile()[-1].env()
    venv_bin = str(Path(sys.executable).parent)
    env = dict(image)
    env["PATH"] = (
        image["PATH"]
        .replace("/app/.venv/bin", venv_bin)
        .replace("${PATH}", "/usr/local/bin:/usr/bin:/bin")
    )
    rules = tmp_path / "etc" / "rules"
    state = tmp_path / "var" / "state"
    secrets = tmp_path / "run" / "secrets"
    for directory in (rules, state, secrets):
        directory.mkdir(parents=True)
    env["WATCHDOG_RULES"] = str(rules)
    env["WATCHDOG_STATE"] = str(state / Path(image["WATCHDOG_STATE"]).name)
    env["WATCHDOG_POSTMORTEM_DIR"] = str(state / "postmortems")
    env["WATCHDOG_SECRETS_DIR"] = str(secrets)
    env["WATCHDOG_LISTEN"] = f"127.0.0.1:{port}"
    return env


@contextlib.asynccontextmanager
async def probed_app() -> AsyncIterator[tuple[ProbedApp, str]]:
    app = ProbedApp()
    router = Router()
    router.add("GET", "/health", app.health)
    async with serve(router) as server:
        yield app, server.url


async def test_entrypoint_serves_health_passes_healthcheck_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """ENTRYPOINT from the Dockerfile, run with the image's env: it listens, probes the
    rules' loopback source, answers /healthz 200 and /readyz 200, the HEALTHCHECK command
    exits 0, and SIGTERM ends it with exit code 0 within the shutdown timeout, leaving
    its state in WATCHDOG_STATE."""
    runtime = dockerfile()[-1]
    entrypoint = exec_form(runtime.one("ENTRYPOINT").args)
    healthcheck = healthcheck_command(runtime.one("HEALTHCHECK").args)
    port = _free_port()
    env = container_env(tmp_path, port)
    shutdown_timeout = float(
        env.get("WATCHDOG_SHUTDOWN_TIMEOUT", Settings.model_fields["shutdown_timeout"].default)
    )
    program = shutil.which(entrypoint[0], path=env["PATH"])
    assert program is not None, f"{entrypoint[0]} is not in the venv"
    base = f"http://127.0.0.1:{port}"

    async with probed_app() as (app, url):
        (Path(env["WATCHDOG_RULES"]) / "rules.yaml").write_text(RULES.format(url=url))
        process = await asyncio.create_subprocess_exec(
            program,
            *entrypoint[1:],
            env=env,
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        logs = Logs()
        assert process.stderr is not None
        reader = asyncio.create_task(logs.read(process.stderr))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await logs.wait_for("listening", process)
                # Two probes: the first one's answer has been recorded by the second.
                await app.wait_for_hits(2)
            async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                health = await http.get("/healthz")
                assert (health.status_code, health.text) == (200, "ok\n")
                ready = await http.get("/readyz")
                assert ready.status_code == 200, ready.text

            checker = shutil.which(healthcheck[0], path=env["PATH"])
            assert checker is not None
            check = await asyncio.create_subprocess_exec(
                checker,
                *healthcheck[1:],
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await check.communicate()
            assert check.returncode == 0, (out + err).decode()
            assert out.decode().strip() == "200 ok"

            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(shutdown_timeout + HTTP_SERVER_STOP_S + 1):
                code = await process.wait()
            assert code == 0, logs.tail()
            await reader
            assert "shutting down" in logs.events()
            assert logs.events()[-1] == "stopped"
            assert await asyncio.to_thread(Path(env["WATCHDOG_STATE"]).is_file)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
