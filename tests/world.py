"""A whole production world on loopback for scenario tests: the local Cloudflare API
with a Worker and a Pages project and their deploy history, the notification
receivers, and a watchdog ``Runtime`` on a virtual clock. Samples are fed straight
into the engine (generated series), so hours of virtual time take milliseconds.

The clock is an ``AutoClock`` that runs only while ``settle()`` waits for the
actions: a retry's back-off or ``Retry-After`` then passes in virtual time (the
clock jumps to the earliest waiting deadline, never while a request or a state
store call is in flight), and between feeds time stands still.
A fault that stalls the local Cloudflare API (``stall_after_apply``, ``delay``)
waits in real time until the client's timeout (``http_timeout_s``) or the end of
the world, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import textwrap
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from watchdog.clock import AutoClock
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.demo.transport import BusyTransport
from watchdog.http.server import serve
from watchdog.model import Sample
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.store.base import EventRecord
from watchdog.store.sqlite import SQLiteStore

R = TypeVar("R")

T0 = 1_790_000_000.0
TOKEN = "cf-test-token-5ec7e7"
SLACK_TOKEN = "slack-secret-path-1d2e3f"
PD_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # 32 characters, as PagerDuty requires
SP_KEY = "statuspage-key-77aa"

RULES = """
version: 1
defaults: {{interval: 15s, blind_after: 5m}}
sources:
  prom: {{type: prometheus, url: "http://127.0.0.1:9"}}
signals:
  error_rate: {{source: prom, query: "e", requests_query: "r", unit: ratio}}
  p95: {{source: prom, query: "p", unit: seconds}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
  frontend: {{type: cloudflare-pages, project: site}}
purges:
  zone: {{type: cloudflare-zone, zone: zone1, everything: true}}
notifiers:
  slack: {{type: slack, webhook_secret: slack_webhook}}
  oncall: {{type: pagerduty, routing_key_secret: pagerduty_routing_key, url: "{pd_url}"}}
  lead: {{type: slack, webhook_secret: slack_webhook}}
  status: {{type: statuspage, page_id: page1, component_id: comp1, url: "{sp_url}"}}
notify: [slack, status]
rules:
{rules}
severities:
  critical: {{act: rollback}}
  high: {{act: rollback, grace: 10m}}
  medium: {{act: notify, escalate_after: 30m}}
  low: {{act: notify}}
after_rollback:
  purge: [zone]
  verify:
    - {{signal: error_rate, below: 0.5%, within: 2m}}
    - {{signal: p95, baseline: true, within: 5m}}
  stable_for: 5m
escalation:
  - {{level: 1, name: On-Call Engineer, after: 0s, notify: [oncall]}}
  - {{level: 2, name: DevOps Lead, after: 10m, notify: [lead]}}
correlation: {{enabled: true, max_deploy_age: 2h}}
guards: {{cooldown: 30m, max_rollbacks_per_hour: 3}}
"""

DEFAULT_RULES = """
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     min_requests: 100, rollback: [worker, frontend]}
  - {name: slow-p95, signal: p95, above: 5s, for: 5m, severity: critical, rollback: [worker]}
"""


class BusyStore(SQLiteStore):
    """The SQLite store holding virtual time still while it works (a commit's fsync
    takes real milliseconds, in which no virtual second may pass)."""

    def __init__(self, path: str | Path, clock: AutoClock) -> None:
        super().__init__(path)
        self._clock = clock

    async def _run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        with self._clock.busy():
            return await super()._run(fn)


StoreFactory = Callable[[str, AutoClock], BusyStore]


@dataclass
class World:
    clock: AutoClock
    cloudflare: FakeCloudflare
    receivers: Receivers
    runtime: Runtime
    tmp: Path
    versions: dict[str, str]
    pages: dict[str, str]
    store_factory: StoreFactory = BusyStore

    @property
    def now(self) -> float:
        return self.clock.now()

    async def settle(self) -> None:
        """Let decision handlers and the actions they started finish (real loopback I/O),
        virtual time running for any retry waits among them."""
        clock = asyncio.create_task(self.clock.run(), name="world-clock")
        try:
            for _ in range(3):
                await self.runtime.watchdog.drain()
                await self.runtime.manager.drain()
                await self.runtime.manager.tick()
            await self.runtime.watchdog.drain()
            await self.runtime.manager.drain()
        finally:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock

    async def feed(
        self,
        signal: str,
        values: Iterable[float | None],
        interval: float = 15.0,
        requests: float = 1000.0,
        also: dict[str, float] | None = None,
    ) -> None:
        """One sample per interval (None: the source failed), advancing the clock;
        ``also`` feeds other signals a constant value at the same times."""
        for value in values:
            self.clock.set(self.clock.now() + interval)
            at = self.clock.now()
            if value is None:
                sample = Sample.error(at, "connection refused")
            else:
                sample = Sample.of(at, value, requests)
            self.runtime.watchdog.observe(signal, sample, "prom")
            for other, constant in (also or {}).items():
                self.runtime.watchdog.observe(other, Sample.of(at, constant, requests), "prom")
            await self.settle()

    async def restart(self, stop_timeout_s: float = 10.0) -> None:
        """An in-process restart: stop this Runtime, build a new one on the same
        settings and state file, and restore (open incidents, unfinished actions).
        Actions still in flight after ``stop_timeout_s`` (real seconds) are cancelled,
        as a SIGTERM's shutdown cancels them."""
        old = self.runtime
        await old.stop(stop_timeout_s)
        store = self.store_factory(old.settings.state, self.clock)
        self.runtime = await Runtime.build(old.settings, self.clock, old.http, store=store)
        await self.runtime.manager.restore()

    def worker_live(self) -> list[tuple[str, float]]:
        return self.cloudflare.live_versions("api")

    def worker_rollbacks(self) -> int:
        return self.cloudflare.count(
            "POST", "/accounts/{account}/workers/scripts/{script}/deployments"
        )

    def pages_rollbacks(self) -> int:
        return self.cloudflare.count(
            "POST", "/accounts/{account}/pages/projects/{project}/deployments/{id}/rollback"
        )

    async def events(self, kind: str | None = None) -> list[EventRecord]:
        out: list[EventRecord] = []
        for incident in await self.runtime.store.recent_incidents(50):
            out += await self.runtime.store.events(incident.id)
        return [e for e in out if kind is None or e.kind == kind]

    def slack_texts(self) -> list[str]:
        return [str(m.get("text", "")) for m in self.receivers.slack.messages]


def seed_history(cf: FakeCloudflare, now: float) -> tuple[dict[str, str], dict[str, str]]:
    """v1 two days ago, v2 yesterday (good), v3 ten minutes ago (the bad deploy)."""
    versions = {}
    for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 600)):
        versions[name] = cf.upload_version("api", f"release {name}", created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], f"deploy {name}", created_on=now - age)
    cf.add_project("site")
    pages = {}
    for name, age in (("p1", 2 * 86400), ("p2", 86400), ("p3", 600)):
        pages[name] = cf.add_pages_deployment("site", created_on=now - age, commit_message=name)
    return versions, pages


@contextlib.asynccontextmanager
async def world(
    tmp: Path,
    rules: str = DEFAULT_RULES,
    env: dict[str, str] | None = None,
    history: bool = True,
    http_timeout_s: float = 5.0,
    store_factory: StoreFactory | None = None,
) -> AsyncIterator[World]:
    clock = AutoClock(T0)
    released = asyncio.Event()

    async def stall(seconds: float) -> None:
        """The local API's injected waits, cut short when the world ends."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), seconds)

    cf = FakeCloudflare(token=TOKEN, account_id="acct", clock=clock, sleep=stall)
    versions, pages = seed_history(cf, T0) if history else ({}, {})
    receivers = Receivers(statuspage_api_key=SP_KEY, now=clock.now)
    receivers.statuspage.add_component("comp1")
    async with serve(cf.router) as cf_srv, serve(receivers) as rx_srv:
        rules_path = tmp / "rules.yaml"
        rules_path.write_text(
            textwrap.dedent(RULES).format(
                rules=textwrap.indent(textwrap.dedent(rules).strip("\n"), "  "),
                pd_url=Receivers.pagerduty_url(rx_srv.url),
                sp_url=Receivers.statuspage_url(rx_srv.url),
            )
        )
        environ = {
            "WATCHDOG_RULES": str(rules_path),
            "WATCHDOG_STATE": str(tmp / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url, SLACK_TOKEN),
            "WATCHDOG_SECRETS__PAGERDUTY_ROUTING_KEY": PD_KEY,
            "WATCHDOG_SECRETS__STATUSPAGE_API_KEY": SP_KEY,
            "WATCHDOG_SECRETS_DIR": str(tmp / "no-secrets"),
            **(env or {}),
        }
        settings = load_settings(environ)
        transport = BusyTransport(clock)  # virtual time waits for loopback I/O
        async with httpx.AsyncClient(timeout=http_timeout_s, transport=transport) as http:
            factory = store_factory or BusyStore
            runtime = await Runtime.build(
                settings, clock, http, store=factory(settings.state, clock)
            )
            await runtime.manager.restore()
            await runtime.silences.load()
            w = World(clock, cf, receivers, runtime, tmp, versions, pages, factory)
            try:
                yield w
            finally:
                released.set()
                await w.settle()  # the current runtime's, after a restart
                await w.runtime.store.close()


def first(items: list[Any]) -> Any:
    assert items, "expected at least one"
    return items[0]
