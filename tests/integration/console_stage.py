"""A small production on loopback for the console's browser test and its screenshot:
the local Cloudflare API with a Worker ``api`` (v3, two minutes old, is the bad deploy;
v2 the good one), a Slack receiver, a "Prometheus" with one series per signal, and the
real daemon (``python -m watchdog run``) watching four rules:

- ``error-rate`` (critical, rolls the Worker back): breaches while ``breach`` is set
  (a bad deploy whose errors outlive its rollback for a while: the page has time to show
  the rule red), verified once it is unset;
- ``slow-p95``: above its threshold but for a long ``for:`` (pending all along);
- ``checkout-errors``: calm (inactive);
- ``queue-lag``: its series is missing (blind).

The values wiggle a little, so the sparklines look like the real thing."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.daemon_proc import DaemonProc
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import Request, Response, Router, serve

TOKEN = "cf-console-stage-token"
SLACK_TOKEN = "slack-console-stage-secret"

RULES = """
version: 1
defaults: {{interval: 1s, blind_after: 1m}}
sources:
  prom: {{type: prometheus, url: "{prom}", timeout: 2s}}
signals:
  error_rate: {{source: prom, query: "job:errors:ratio", unit: ratio}}
  p95: {{source: prom, query: "job:latency:p95", unit: seconds}}
  checkout_errors: {{source: prom, query: "checkout:errors:ratio", unit: ratio}}
  queue_lag: {{source: prom, query: "queue:lag", unit: seconds}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
notifiers:
  slack: {{type: slack, webhook_secret: slack_webhook}}
notify: [slack]
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 3s, severity: critical,
     rollback: [worker]}}
  - {{name: slow-p95, signal: p95, above: 800ms, for: 30m, severity: high, rollback: [worker]}}
  - {{name: checkout-errors, signal: checkout_errors, above: 2%, for: 1m, severity: medium}}
  - {{name: queue-lag, signal: queue_lag, above: 30s, for: 5m, severity: low}}
after_rollback:
  verify: [{{signal: error_rate, below: 1%, within: 1m}}]
  stable_for: 30m
escalation: []
correlation: {{enabled: true, max_deploy_age: 1h}}
guards: {{cooldown: 30m, max_rollbacks_per_hour: 3}}
"""


@dataclass
class Prometheus:
    """``GET /api/v1/query``: one series per query, from ``values`` (None: no series)."""

    values: dict[str, Callable[[], float | None]]
    router: Router = field(default_factory=Router)

    def __post_init__(self) -> None:
        self.router.add("GET", "/api/v1/query", self._query)

    async def _query(self, request: Request, _: dict[str, str]) -> Response:
        at = float(request.arg("time") or 0)
        value = self.values.get(request.arg("query") or "", lambda: None)()
        result = [] if value is None else [{"metric": {}, "value": [at, repr(value)]}]
        return Response.json(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )


EVIL_PAGE = """<!doctype html><html><body><h1>win a prize</h1>
<form method="post" action="{target}/console/silences">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="matchers" value="rule=error-rate">
<input type="hidden" name="duration" value="7d">
<input type="hidden" name="created_by" value="mallory">
<input type="hidden" name="comment" value="silenced from another site">
<button type="submit">claim</button></form></body></html>"""


@dataclass
class Evil:
    """A page on another origin (another loopback port) with a form aimed at the
    console, carrying a CSRF token the test stole from the real page (``csrf``)."""

    target: str = ""
    csrf: str = ""
    router: Router = field(default_factory=Router)

    def __post_init__(self) -> None:
        self.router.add("GET", "/", self._page)

    async def _page(self, _: Request, __: dict[str, str]) -> Response:
        body = EVIL_PAGE.format(target=self.target, csrf=self.csrf)
        return Response.text(body, content_type="text/html; charset=utf-8")


@dataclass
class Stage:
    cf: FakeCloudflare
    proc: DaemonProc
    bad: str
    good: str
    evil: Evil
    evil_url: str
    breach: bool = False  # the bad deploy's errors show
    _rng: random.Random = field(default_factory=lambda: random.Random(7))
    _tick: int = 0

    @property
    def url(self) -> str:
        # localhost: the console (no token) answers to a Host that names this machine.
        return self.proc.url.replace("127.0.0.1", "localhost")

    def _wiggle(self, base: float, spread: float) -> float:
        self._tick += 1
        return base * (1 + spread * math.sin(self._tick / 5) + self._rng.uniform(-spread, spread))

    def error_rate(self) -> float:
        if self.breach:
            return self._wiggle(0.09, 0.15)
        return self._wiggle(0.004, 0.4)

    def values(self) -> dict[str, Callable[[], float | None]]:
        return {
            "job:errors:ratio": self.error_rate,
            "job:latency:p95": lambda: self._wiggle(0.9, 0.05),
            "checkout:errors:ratio": lambda: self._wiggle(0.006, 0.5),
            "queue:lag": lambda: None,
        }


@contextlib.asynccontextmanager
async def stage(workdir: Path, env: dict[str, str] | None = None) -> AsyncIterator[Stage]:
    """The world and the daemon, started; stopped (SIGTERM) at the end."""
    cf = FakeCloudflare(token=TOKEN, account_id="acct")
    now = cf.clock.now()
    versions = {}
    for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 120)):
        versions[name] = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], f"deploy {name}", created_on=now - age)
    receivers = Receivers()
    prom = Prometheus({})
    evil = Evil()
    async with (
        serve(cf.router) as cf_srv,
        serve(receivers) as rx_srv,
        serve(prom.router) as p_srv,
        serve(evil.router) as evil_srv,
    ):
        rules = workdir / "rules.yaml"
        rules.write_text(RULES.format(prom=p_srv.url))
        environ = {
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_STATE": str(workdir / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url, SLACK_TOKEN),
            "WATCHDOG_SECRETS_DIR": str(workdir / "no-secrets"),
            "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
            **(env or {}),
        }
        proc = DaemonProc(environ, workdir)
        s = Stage(cf, proc, versions["v3"], versions["v2"], evil, evil_srv.url)
        prom.values.update(s.values())
        await proc.start()
        evil.target = s.url
        try:
            yield s
        finally:
            await proc.stop()
