"""Fault matrix, the process: the real daemon (``python -m watchdog run``) as a
subprocess against the local Cloudflare API, a loopback Prometheus whose error rate
follows what is live, and the notification receivers.

- SIGKILL at every step of the journal (incident detected; rollback intent written;
  rollback applied but not journalled; rollback done and purge intent written; purge
  applied but not journalled; verifying): a new process on the same state file
  finishes the incident with exactly one rollback in total.
- SIGTERM mid-playbook: the process exits within its shutdown timeout, says what it
  left unfinished, and the journal holds it; the next process completes it.
- SIGHUP with a broken rules file: the old rules stay, /api/v1/status shows the
  error and ``watchdog_rules_last_reload_successful`` is 0; a fixed file reloads.

Waits on the subprocess are bounded: on the local API's own events (a request
stalled where the test wants the kill) where possible, otherwise by polling the
state file or the HTTP API a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import proc_world
from tests.integration.proc_world import DEPLOYMENTS, PURGE, SLACK_TOKEN, STALL_S, TOKEN, Stack
from watchdog.demo.fakes.cloudflare import Fault

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The process world with a zone purge after the rollback."""
    async with proc_world.stack(tmp_path, purge=True) as s:
        yield s
    # Whatever the row did to it, the daemon never logged a secret.
    for log in s.proc.logs:
        text = log.read_text(errors="replace")
        for secret in (TOKEN, SLACK_TOKEN):
            assert secret not in text, f"{secret!r} leaked into {log.name}"


# --- SIGKILL at every journal step -----------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: the fault that holds the daemon there, and what the journal
    must say at that moment."""

    fault: Fault | None
    journal: dict[str, str]
    purges_before: int
    purges_after: int  # a purge applied but not journalled is sent again (idempotent)


KILL_POINTS = {
    "detected": KillPoint(Fault("GET", DEPLOYMENTS, "delay", delay_s=STALL_S), {}, 0, 1),
    "rollback-intent": KillPoint(
        Fault("GET", DEPLOYMENTS, "delay", delay_s=STALL_S, after=1),
        {"rollback/worker": "intent"},
        0,
        1,
    ),
    "rollback-applied": KillPoint(
        Fault("POST", DEPLOYMENTS, "apply_then_stall", delay_s=STALL_S),
        {"rollback/worker": "intent"},
        0,
        1,
    ),
    "purge-intent": KillPoint(
        Fault("POST", PURGE, "delay", delay_s=STALL_S),
        {"rollback/worker": "done", "purge/zone": "intent"},
        0,
        1,
    ),
    "purge-applied": KillPoint(
        Fault("POST", PURGE, "apply_then_stall", delay_s=STALL_S),
        {"rollback/worker": "done", "purge/zone": "intent"},
        1,
        2,
    ),
    "verifying": KillPoint(None, {"rollback/worker": "done", "purge/zone": "done"}, 1, 1),
}


@pytest.mark.parametrize("step", list(KILL_POINTS))
async def test_sigkill_at_every_journal_step(tmp_path: Path, step: str) -> None:
    """SIGKILL at one journal step (see the id); the next process on the same state
    file finishes the incident: exactly one create-deployment in total, every action
    journalled as done, the incident resolved, and the restart says what it picked up."""
    point = KILL_POINTS[step]
    async with stack(tmp_path) as s:
        if point.fault is not None:
            s.cf.inject(point.fault)
        else:
            s.hold_errors = True  # the rollback does not help yet: still verifying
        await s.proc.start()
        if point.fault is not None:
            await s.stalled()
        else:

            async def verifying() -> bool:
                return await s.phase() == "verifying"

            await s.until(verifying, "verification to start")
        await s.proc.kill()
        assert await s.journal() == point.journal
        assert len(s.cf.purges) == point.purges_before
        assert await s.phase() == ("verifying" if point.fault is None else "rolling_back")
        s.hold_errors = False

        await s.proc.start()
        await s.resolved()
        assert s.created() == 1
        assert s.cf.live_versions("api") == [(s.good, 100.0)]
        assert await s.journal() == {"rollback/worker": "done", "purge/zone": "done"}
        assert len(s.cf.purges) == point.purges_after
        kinds = await s.event_kinds()
        assert kinds.count("rollback_finished") == 1
        assert kinds[-1] == "resolved"
        restarted = s.log_events(2)
        assert any(e.get("event") == "incidents restored" for e in restarted), restarted[-5:]
        if step == "rollback-applied":
            assert "reconciled" in kinds
            assert s.posts() == 1
        assert await s.metric("watchdog_actions_total", action="rollback", outcome="failure") == 0


# --- SIGTERM mid-playbook --------------------------------------------------------------


async def test_sigterm_mid_playbook_is_bounded_and_resumable(tmp_path: Path) -> None:
    """SIGTERM while the create-deployment request hangs: the process exits within
    its shutdown timeout (2 s, plus the HTTP server's), code 0, saying the journal
    holds what did not finish; the journal has the rollback at 'intent' (nothing
    lost, nothing half-recorded), and the next process completes it exactly once."""
    async with stack(tmp_path) as s:
        s.cf.inject(Fault("POST", DEPLOYMENTS, "delay", delay_s=STALL_S))
        await s.proc.start()
        await s.stalled()
        assert s.proc.process is not None
        s.proc.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(s.proc.process.wait(), timeout=15.0)
        assert code == 0
        events = [e.get("event") for e in s.log_events(1)]
        assert "shutdown: in-flight actions did not finish; the journal has them" in events
        assert events[-1] == "stopped"
        assert await s.journal() == {"rollback/worker": "intent"}
        assert await s.phase() == "rolling_back"
        assert s.created() == 0

        await s.proc.start()
        await s.resolved()
        assert s.created() == 1
        assert await s.journal() == {"rollback/worker": "done", "purge/zone": "done"}


# --- SIGHUP with a broken rules file ----------------------------------------------------


async def test_sighup_with_broken_rules_keeps_the_old_ones(tmp_path: Path) -> None:
    """SIGHUP after the rules file was broken: the running rules stay, the status API
    shows the reload error with its location, the metric says the last reload failed,
    a log line says so; fixing the file and SIGHUP again reloads it."""
    async with stack(tmp_path) as s:
        s.calm = True
        await s.proc.start()
        assert s.proc.process is not None
        good = s.rules.read_text()
        s.rules.write_text(good.replace("above: 5%", "above: five percent"))
        s.proc.process.send_signal(signal.SIGHUP)

        async with httpx.AsyncClient(timeout=5.0) as http:

            async def status() -> dict[str, Any]:
                answer = await http.get(f"{s.proc.url}/api/v1/status")
                body: dict[str, Any] = answer.json()
                return body

            async def failed() -> bool:
                return (await status())["last_reload_error"] is not None

            await s.until(failed, "the reload to fail")
            body = await status()
            assert "rules.yaml:" in body["last_reload_error"]
            assert "rules[0].above" in body["last_reload_error"]
            assert [r["rule"] for r in body["rules"]] == ["error-rate"]
            assert body["rules"][0]["threshold"] == 0.05
            assert await s.metric("watchdog_rules_last_reload_successful") == 0
            logged = [e for e in s.log_events(1) if e.get("level") == "error"]
            assert any("keeping the last good rules" in str(e.get("event")) for e in logged)

            s.rules.write_text(good.replace("above: 5%", "above: 6%"))
            s.proc.process.send_signal(signal.SIGHUP)

            async def reloaded() -> bool:
                threshold = (await status())["rules"][0]["threshold"]
                return bool(threshold == 0.06)

            await s.until(reloaded, "the fixed rules to load")
            assert (await status())["last_reload_error"] is None
            assert await s.metric("watchdog_rules_last_reload_successful") == 1
