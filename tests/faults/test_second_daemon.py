"""Fault matrix, a second daemon on the same SQLite state: it refuses to start and
names the process that holds the state (pid, start time), while the operator
commands that go through the running daemon's API or read the store keep working
beside it. The lock dies with its holder, ``kill -9`` included."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.factories import MINIMAL_RULES
from tests.integration.daemon_proc import REPO, DaemonProc, free_port
from watchdog.errors import StoreError
from watchdog.store.lock import acquire

pytestmark = pytest.mark.integration

SECOND_START_TIMEOUT_S = 30.0


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonProc]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(tmp_path / "state" / "watchdog.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
        "WATCHDOG_RULES_WATCH_INTERVAL": "0",
    }
    proc = DaemonProc(env, tmp_path)
    try:
        yield proc
    finally:
        await proc.stop()


async def _cli(daemon: DaemonProc, *argv: str) -> tuple[int, str]:
    """Run ``python -m watchdog ARGV`` beside the daemon; exit code and all output."""
    env = {**os.environ, "WATCHDOG_LOG_FORMAT": "json", **daemon.env}
    env["WATCHDOG_LISTEN"] = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watchdog",
        *argv,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), SECOND_START_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"`watchdog {' '.join(argv)}` did not exit") from None
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_a_second_daemon_on_the_same_state_refuses_to_start(daemon: DaemonProc) -> None:
    await daemon.start()
    assert daemon.process is not None
    code, out = await _cli(daemon, "run")
    assert code == 1, out
    assert "another watchdog already runs on the state" in out
    assert f"pid {daemon.process.pid}, started 20" in out
    # The first one is untouched and still serves.
    assert daemon.process.returncode is None


async def test_operator_commands_work_beside_the_running_daemon(daemon: DaemonProc) -> None:
    """``silence add|query``, ``status`` (the API) and ``postmortem`` (the store) are
    not blocked by the daemon's lock."""
    await daemon.start()
    api = ("--url", daemon.url)
    code, out = await _cli(
        daemon, "silence", "add", "rule=error-rate", "--comment", "by hand", *api
    )
    assert code == 0, out
    code, out = await _cli(daemon, "silence", "query", *api)
    assert code == 0, out
    assert "by hand" in out
    code, out = await _cli(daemon, "status", *api)
    assert code == 0, out
    assert "error-rate" in out
    code, out = await _cli(daemon, "postmortem", "no-such-incident")
    assert code == 1, out
    assert "no single incident matches" in out


async def test_the_lock_dies_with_a_killed_holder(daemon: DaemonProc) -> None:
    """After ``kill -9`` the next daemon starts on the same state at once."""
    await daemon.start()
    await daemon.kill()
    await daemon.start()
    assert daemon.process is not None
    assert daemon.process.returncode is None


def test_the_lock_in_process_names_the_holder(tmp_path: Path) -> None:
    """Held once, refused a second time (another open file, as another process would
    have), taken again after release; PostgreSQL shares its store on purpose."""
    state = str(tmp_path / "watchdog.db")
    held = acquire(state, 1_790_000_000.0)
    assert held is not None
    with pytest.raises(StoreError, match=rf"pid {os.getpid()}, started 2026-09-21T"):
        acquire(state, 1_790_000_100.0)
    held.release()
    again = acquire(state, 1_790_000_200.0)
    assert again is not None
    again.release()
    assert acquire("postgresql://u@h/db", 0.0) is None
