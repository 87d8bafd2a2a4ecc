"""A production world on loopback for tests that run the real daemon as a subprocess
(``DaemonProc``): the local Cloudflare API with a Worker ``api`` and its deploy history
(v3, two minutes old, is the bad deploy; v2 the good one), the notification receivers,
and a "Prometheus" whose error rate follows what the fake serves. ``Stack`` reads the
daemon's state from outside (SQLite file or PostgreSQL database), and ``until`` polls
it a bounded number of times.

One daemon on a SQLite state by default; ``replicas=2`` with ``postgres_url`` for two
daemons sharing one PostgreSQL state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import string
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pytest

from tests.helpers import until
from tests.integration.daemon_proc import DaemonProc
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import Request, Response, Router, serve

if TYPE_CHECKING:
    import psycopg

TOKEN = "cf-proc-world-token"
SLACK_TOKEN = "slack-proc-world-secret"
DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
PURGE = "/zones/zone1/purge_cache"
EVENT_S = 30.0  # bound on waiting for the subprocess to reach a point (real seconds)
POLLS = 600  # x 0.05 s: generous for a loaded machine, bounded
POLL_S = 0.05
STALL_S = 3600.0  # "forever": released at teardown
HIGH, LOW = 0.08, 0.001  # the error rate while the bad deploy is live, and otherwise

RULES = """
version: 1
defaults: {{interval: 1s, blind_after: 1m}}
sources:
  prom: {{type: prometheus, url: "{prom}", timeout: 2s}}
signals:
  error_rate: {{source: prom, query: "job:errors:ratio", unit: ratio}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
{purges}notifiers:
  slack: {{type: slack, webhook_secret: slack_webhook}}
notify: [slack]
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 3s, severity: critical,
     rollback: [worker]}}
after_rollback:
{purge}  verify: [{{signal: error_rate, below: 0.5%, within: 1m}}]
  stable_for: 1s
escalation: []
correlation: {{enabled: true, max_deploy_age: 1h}}
guards: {{cooldown: 30m, max_rollbacks_per_hour: 3}}
"""


def rules_yaml(prom_url: str, *, purge: bool = False) -> str:
    """One rule (errors above 5% for 3s roll the Worker back), verified below 0.5%;
    with ``purge`` the zone's cache is purged after the rollback."""
    return RULES.format(
        prom=prom_url,
        purges="purges:\n  zone: {type: cloudflare-zone, zone: zone1, everything: true}\n"
        if purge
        else "",
        purge="  purge: [zone]\n" if purge else "",
    )


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


class State(Protocol):
    """The daemon's state store, read with plain SQL from outside the daemon."""

    async def rows(self, sql: str) -> list[tuple[Any, ...]]: ...


@dataclass
class SQLiteState:
    path: Path

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """A fresh connection per read (WAL: readers never block the daemon)."""

        def read() -> list[tuple[Any, ...]]:
            if not self.path.exists():
                return []
            conn = sqlite3.connect(self.path, timeout=5.0)
            try:
                return conn.execute(sql).fetchall()
            except sqlite3.OperationalError:  # not migrated yet
                return []
            finally:
                conn.close()

        return await asyncio.to_thread(read)


@dataclass
class PostgresState:
    conn: psycopg.AsyncConnection[tuple[Any, ...]]  # autocommit: each read sees the latest

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        try:  # bytes: the test's own constant SQL, which psycopg types as a literal
            cursor = await self.conn.execute(sql.encode())
        except psycopg.errors.UndefinedTable:  # not migrated yet
            return []
        return await cursor.fetchall()


@dataclass
class Stack:
    cf: FakeCloudflare
    procs: list[DaemonProc]  # one, or the replicas in start order
    state: State
    stalls: Stalls
    rules: Path
    bad: str
    good: str
    hold_errors: bool = False  # errors stay high even after the rollback
    calm: bool = False  # production healthy whatever is live

    @property
    def proc(self) -> DaemonProc:
        """The daemon (the first replica)."""
        return self.procs[0]

    def error_rate(self) -> float:
        if self.calm:
            return LOW
        if self.hold_errors or self.cf.live_versions("api") == [(self.bad, 100.0)]:
            return HIGH
        return LOW

    def posts(self) -> int:
        return self.cf.count("POST", DEPLOYMENTS)

    def created(self) -> int:
        """Deployments that took effect through the API (the watchdog's rollbacks)."""
        return sum(1 for d in self.cf.scripts["api"].deployments if d.source == "api")

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return await self.state.rows(sql)

    async def phase(self) -> str | None:
        rows = await self.rows("SELECT phase FROM incidents")
        assert len(rows) <= 1, rows
        return str(rows[0][0]) if rows else None

    async def event_kinds(self) -> list[str]:
        return [str(r[0]) for r in await self.rows("SELECT kind FROM events ORDER BY id")]

    async def rollback_state(self) -> str | None:
        rows = await self.rows("SELECT state FROM actions WHERE kind = 'rollback'")
        return str(rows[0][0]) if rows else None

    async def journal(self) -> dict[str, str]:
        """kind/target -> state of every journalled action."""
        rows = await self.rows("SELECT kind, target, state FROM actions")
        return {f"{kind}/{target}": state for kind, target, state in rows}

    def log_tails(self) -> str:
        if len(self.procs) == 1:
            return self.proc.log_tail()
        return "\n".join(
            f"--- {name}:\n{proc.log_tail()}"
            for name, proc in zip(string.ascii_lowercase, self.procs, strict=False)
        )

    async def until(self, check: Callable[[], Any], what: str) -> None:
        """Poll ``check`` (sync or async) a bounded number of times."""
        await until(check, what, polls=POLLS, every_s=POLL_S, detail=self.log_tails)

    async def stalled(self) -> None:
        """Wait (bounded) until a request to the local API stalls on an injected wait."""
        try:
            await asyncio.wait_for(self.stalls.began.wait(), EVENT_S)
        except TimeoutError:
            pytest.fail(f"the daemon never reached the stalled request\n{self.log_tails()}")

    async def resolved(self) -> None:
        async def done() -> bool:
            # The phase row is written just before the timeline's last events: wait
            # for the closing event itself, not only the phase.
            kinds = await self.event_kinds()
            return bool(kinds) and kinds[-1] == "resolved" and await self.phase() == "resolved"

        await self.until(done, "the incident to be resolved")

    def log_events(self, run: int) -> list[dict[str, Any]]:
        """The JSON log lines of one run (1-based) of the daemon."""
        out = []
        for line in self.proc.logs[run - 1].read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    async def metric(self, name: str, **labels: str) -> float:
        """One series of the daemon's /metrics (0 when it is not there)."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            text = (await http.get(f"{self.proc.url}/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series in (name, f"{name}{{{wanted}}}"):
                return float(value)
        return 0.0


@contextlib.asynccontextmanager
async def _state(tmp_path: Path, postgres_url: str | None) -> AsyncIterator[tuple[str, State]]:
    """WATCHDOG_STATE for the daemons, and the test's reader of it."""
    if postgres_url is None:
        path = tmp_path / "state.db"
        yield str(path), SQLiteState(path)
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        yield postgres_url, PostgresState(conn)


@contextlib.asynccontextmanager
async def stack(
    tmp_path: Path,
    *,
    purge: bool = False,
    postgres_url: str | None = None,
    replicas: int = 1,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """The world and ``replicas`` daemons on one state, not started yet (the test
    injects its faults first). At the end the stalls are released, then the daemons
    stopped (SIGTERM, then SIGKILL), then the servers."""
    stalls = Stalls()
    cf = FakeCloudflare(token=TOKEN, account_id="acct", sleep=stalls)
    now = cf.clock.now()
    versions = {}
    for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 120)):
        versions[name] = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], name, created_on=now - age)
    receivers = Receivers()
    holder: list[Stack] = []
    prom = Prometheus(lambda: holder[0].error_rate() if holder else LOW)
    async with (
        _state(tmp_path, postgres_url) as (where, state),
        serve(cf.router) as cf_srv,
        serve(receivers) as rx_srv,
        serve(prom.router) as prom_srv,
    ):
        rules = tmp_path / "rules.yaml"
        rules.write_text(rules_yaml(prom_srv.url, purge=purge))
        environ = {
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_STATE": where,
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url, SLACK_TOKEN),
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
            **(env or {}),
        }
        names = string.ascii_lowercase[:replicas]
        workdirs = [tmp_path] if replicas == 1 else [tmp_path / name for name in names]
        for workdir in workdirs:
            workdir.mkdir(exist_ok=True)
        procs = [DaemonProc(environ, workdir) for workdir in workdirs]
        s = Stack(cf, procs, state, stalls, rules, versions["v3"], versions["v2"])
        holder.append(s)
        try:
            yield s
        finally:
            stalls.released.set()  # let stalled handlers finish before the servers stop
            for proc in procs:
                await proc.stop()
