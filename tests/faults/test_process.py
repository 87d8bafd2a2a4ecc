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
import json
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.servers import faulty_server, prometheus_value
from tests.integration.daemon_proc import DaemonProc, daemon
from watchdog.fakes.cloudflare import FakeCloudflare, Fault
from watchdog.fakes.receivers import Receivers
from watchdog.httpserver import serve

pytestmark = pytest.mark.integration

TOKEN = "cf-process-fault-token"
SLACK_TOKEN = "slack-process-fault-secret"
DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
PURGE = "/zones/zone1/purge_cache"
EVENT_S = 30.0  # bound on waiting for the subprocess to reach a point (real seconds)
POLLS = 600  # x 0.05 s
POLL_S = 0.05
STALL_S = 3600.0  # "forever": released at teardown

RULES = """
version: 1
defaults: {{interval: 1s, blind_after: 1m}}
sources:
  prom: {{type: prometheus, url: "{prom}", timeout: 2s}}
signals:
  error_rate: {{source: prom, query: "job:errors:ratio", unit: ratio}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
purges:
  zone: {{type: cloudflare-zone, zone: zone1, everything: true}}
notifiers:
  slack: {{type: slack, webhook_secret: slack_webhook}}
notify: [slack]
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 3s, severity: critical,
     rollback: [worker]}}
after_rollback:
  purge: [zone]
  verify: [{{signal: error_rate, below: 0.5%, within: 1m}}]
  stable_for: 1s
escalation: []
correlation: {{enabled: true, max_deploy_age: 1h}}
guards: {{cooldown: 30m, max_rollbacks_per_hour: 3}}
"""


class Stalls:
    """The local API's injected waits: each one signals that it began, and all end
    when released (at teardown)."""

    def __init__(self) -> None:
        self.began = asyncio.Event()
        self.released = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.began.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), seconds)


@dataclass
class Stack:
    cf: FakeCloudflare
    proc: DaemonProc
    stalls: Stalls
    db: Path
    rules: Path
    bad: str
    good: str
    hold_errors: bool = False
    calm: bool = False  # production healthy whatever is live

    def error_rate(self) -> float:
        if self.calm:
            return 0.001
        if self.hold_errors or self.cf.live_versions("api") == [(self.bad, 100.0)]:
            return 0.08
        return 0.001

    def created(self) -> int:
        """Deployments that took effect through the API (the watchdog's rollbacks)."""
        return sum(1 for d in self.cf.scripts["api"].deployments if d.source == "api")

    def posts(self) -> int:
        return self.cf.count("POST", DEPLOYMENTS)

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the daemon's state file from outside (WAL: readers never block it)."""

        def read() -> list[tuple[Any, ...]]:
            if not self.db.exists():
                return []
            conn = sqlite3.connect(self.db, timeout=5.0)
            try:
                return conn.execute(sql).fetchall()
            except sqlite3.OperationalError:  # not migrated yet
                return []
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    async def journal(self) -> dict[str, str]:
        """kind/target -> state of every journalled action."""
        rows = await self.rows("SELECT kind, target, state FROM actions")
        return {f"{kind}/{target}": state for kind, target, state in rows}

    async def phase(self) -> str | None:
        rows = await self.rows("SELECT phase FROM incidents")
        assert len(rows) <= 1, rows
        return str(rows[0][0]) if rows else None

    async def event_kinds(self) -> list[str]:
        return [str(r[0]) for r in await self.rows("SELECT kind FROM events ORDER BY id")]

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        for _ in range(POLLS):
            if await check():
                return
            await asyncio.sleep(POLL_S)
        pytest.fail(f"timed out waiting for {what}\n{self.proc.log_tail()}")

    async def stalled(self) -> None:
        try:
            await asyncio.wait_for(self.stalls.began.wait(), EVENT_S)
        except TimeoutError:
            pytest.fail(f"the daemon never reached the stalled request\n{self.proc.log_tail()}")

    async def resolved(self) -> None:
        async def done() -> bool:
            # The phase row is written just before the timeline's last events.
            kinds = await self.event_kinds()
            return bool(kinds) and kinds[-1] == "resolved" and await self.phase() == "resolved"

        await self.until(done, "the incident to be resolved")

    def log_events(self, run: int) -> list[dict[str, Any]]:
        """The JSON log lines of one run (1-based)."""
        out = []
        for line in self.proc.logs[run - 1].read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    async def metric(self, name: str, **labels: str) -> float:
        async with httpx.AsyncClient(timeout=5.0) as http:
            text = (await http.get(f"{self.proc.url}/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series in (name, f"{name}{{{wanted}}}"):
                return float(value)
        return 0.0


@contextlib.asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    stalls = Stalls()
    cf = FakeCloudflare(token=TOKEN, account_id="acct", sleep=stalls)
    now = cf.clock.now()
    versions = {}
    for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 120)):
        versions[name] = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], name, created_on=now - age)
    receivers = Receivers()
    holder: list[Stack] = []
    prom = prometheus_value(lambda: holder[0].error_rate() if holder else 0.001)
    async with (
        serve(cf.router) as cf_srv,
        serve(receivers) as rx_srv,
        faulty_server(prom) as prom_srv,
    ):
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(prom=prom_srv.url))
        env = {
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_STATE": str(tmp_path / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url, SLACK_TOKEN),
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
        }
        async with daemon(env, tmp_path) as proc:
            s = Stack(
                cf, proc, stalls, tmp_path / "state.db", rules, versions["v3"], versions["v2"]
            )
            holder.append(s)
            try:
                yield s
            finally:
                stalls.released.set()  # let stalled handlers finish before the servers stop
        # Whatever the row did to it, the daemon never logged a secret.
        for log in proc.logs:
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
