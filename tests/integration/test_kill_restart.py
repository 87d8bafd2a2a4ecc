"""``kill -9`` mid-incident, for real: the daemon runs as a subprocess against the
local Cloudflare API, a loopback "Prometheus" whose error rate follows what is live,
and the notification receivers. It is SIGKILLed (a) between the journalled intent
and the first API call, (b) between the call taking effect and the outcome row, and
(c) mid-verification; a new process on the same state file must finish the job with
exactly one rollback in total, and the incident must go on to resolved."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_proc import DaemonProc, daemon
from watchdog.fakes.cloudflare import FakeCloudflare, Fault
from watchdog.fakes.receivers import Receivers
from watchdog.httpserver import Request, Response, Router, serve

pytestmark = pytest.mark.integration

TOKEN = "cf-kill-test-token"
DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
POLLS = 400  # x 0.05 s: generous for a loaded machine, bounded
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
notifiers:
  slack: {{type: slack, webhook_secret: slack_webhook}}
notify: [slack]
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 3s, severity: critical,
     rollback: [worker]}}
after_rollback:
  verify: [{{signal: error_rate, below: 0.5%, within: 1m}}]
  stable_for: 1s
escalation: []
correlation: {{enabled: true, max_deploy_age: 1h}}
guards: {{cooldown: 30m, max_rollbacks_per_hour: 3}}
"""


class Prometheus:
    """``GET /api/v1/query`` in the Prometheus envelope, one series whose value the
    test decides (here: a function of what the fake Cloudflare serves)."""

    def __init__(self, value: Callable[[], float]) -> None:
        self.value = value
        self.router = Router()
        self.router.add("GET", "/api/v1/query", self._query)

    async def _query(self, request: Request, _: dict[str, str]) -> Response:
        at = float(request.arg("time") or 0)
        series = {"metric": {}, "value": [at, repr(self.value())]}
        return Response.json(
            {"status": "success", "data": {"resultType": "vector", "result": [series]}}
        )


@dataclass
class Stack:
    cf: FakeCloudflare
    proc: DaemonProc
    db: Path
    bad: str
    good: str
    hold_errors: bool = False  # errors stay high even after the rollback

    def error_rate(self) -> float:
        if self.hold_errors or self.cf.live_versions("api") == [(self.bad, 100.0)]:
            return 0.08
        return 0.001

    def posts(self) -> int:
        return self.cf.count("POST", DEPLOYMENTS)

    def created(self) -> int:
        """Deployments that took effect through the API (the watchdog's rollbacks)."""
        return sum(1 for d in self.cf.scripts["api"].deployments if d.source == "api")

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

    async def rollback_row(self) -> str | None:
        rows = await self.rows("SELECT state FROM actions WHERE kind = 'rollback'")
        return str(rows[0][0]) if rows else None

    async def phase(self) -> str | None:
        rows = await self.rows("SELECT phase FROM incidents")
        assert len(rows) <= 1, rows
        return str(rows[0][0]) if rows else None

    async def event_kinds(self) -> list[str]:
        return [str(r[0]) for r in await self.rows("SELECT kind FROM events ORDER BY id")]

    async def until(self, check: Callable[[], Any], what: str) -> None:
        """Poll ``check`` (sync or async) a bounded number of times."""
        for _ in range(POLLS):
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(POLL_S)
        pytest.fail(f"timed out waiting for {what}\n{self.proc.log_tail()}")

    async def resolved(self) -> None:
        async def done() -> bool:
            # The phase is saved just before the closing event is written.
            return await self.phase() == "resolved" and "resolved" in await self.event_kinds()

        await self.until(done, "the incident to be resolved")


@contextlib.asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    release = asyncio.Event()

    async def stall(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), seconds)

    cf = FakeCloudflare(token=TOKEN, account_id="acct", sleep=stall)
    now = cf.clock.now()
    versions = {}
    for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 120)):
        versions[name] = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], name, created_on=now - age)
    receivers = Receivers()
    holder: list[Stack] = []
    prom = Prometheus(lambda: holder[0].error_rate() if holder else 0.001)
    async with (
        serve(cf.router) as cf_srv,
        serve(receivers) as rx_srv,
        serve(prom.router) as prom_srv,
    ):
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(prom=prom_srv.url))
        env = {
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_STATE": str(tmp_path / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url),
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
        }
        async with daemon(env, tmp_path) as proc:
            s = Stack(cf, proc, tmp_path / "state.db", versions["v3"], versions["v2"])
            holder.append(s)
            try:
                yield s
            finally:
                release.set()  # let stalled handlers finish before the servers stop


async def assert_one_rollback_and_resolved(s: Stack) -> None:
    await s.resolved()
    assert s.created() == 1
    assert s.cf.live_versions("api") == [(s.good, 100.0)]
    assert await s.rollback_row() == "done"
    kinds = await s.event_kinds()
    assert "verification" in kinds
    assert kinds[-1] == "resolved"
    # The rollback is reported as journalled, bad → good, whichever run finished it.
    (finished,) = await s.rows("SELECT data FROM events WHERE kind = 'rollback_finished'")
    assert json.loads(finished[0])["rolled_back"] == [["worker", s.bad, s.good]]


async def test_kill_between_intent_and_call(tmp_path: Path) -> None:
    """SIGKILL after the intent row is committed, while the rollback's own read of
    the deployments (before its POST) hangs: no POST was made; the restart makes
    exactly one and the incident verifies and resolves."""
    async with stack(tmp_path) as s:
        # The first GET is the inspection; the second is the rollback re-reading
        # what is live right before it posts.
        stalled = s.cf.inject(Fault("GET", DEPLOYMENTS, "delay", times=1, delay_s=STALL_S, after=1))
        await s.proc.start()

        async def between() -> bool:
            return stalled.hits == 1 and await s.rollback_row() == "intent"

        await s.until(between, "the intent row and the stalled read")
        await s.proc.kill()
        assert s.posts() == 0
        assert await s.phase() == "rolling_back"
        await s.proc.start()
        await assert_one_rollback_and_resolved(s)
        assert s.posts() == 1


async def test_kill_between_call_and_outcome(tmp_path: Path) -> None:
    """SIGKILL after Cloudflare applied the create-deployment but before it answered
    (so before the outcome row): the restart reconciles the intent from what is
    live, posts nothing more, and the incident goes on to resolved."""
    async with stack(tmp_path) as s:
        s.cf.stall_after_apply("POST", DEPLOYMENTS, STALL_S)
        await s.proc.start()

        async def applied() -> bool:
            return s.created() == 1 and await s.rollback_row() == "intent"

        await s.until(applied, "the rollback applied with its row still at intent")
        await s.proc.kill()
        assert await s.rollback_row() == "intent"
        await s.proc.start()
        await assert_one_rollback_and_resolved(s)
        assert s.posts() == 1
        assert "reconciled" in await s.event_kinds()


async def test_kill_mid_verification(tmp_path: Path) -> None:
    """SIGKILL while verifying (errors have not fallen yet): the restarted daemon
    restores the incident, verifies on fresh samples and resolves it; the rollback
    is not repeated."""
    async with stack(tmp_path) as s:
        s.hold_errors = True
        await s.proc.start()

        async def verifying() -> bool:
            return await s.phase() == "verifying"

        await s.until(verifying, "verification to start")
        await s.proc.kill()
        assert s.created() == 1
        s.hold_errors = False
        await s.proc.start()
        await assert_one_rollback_and_resolved(s)
        assert s.posts() == 1
