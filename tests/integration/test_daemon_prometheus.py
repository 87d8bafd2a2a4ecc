"""The daemon on loopback, reading a real Prometheus that scrapes the simulated app,
reaches ``firing`` when the app's errors rise (and not before)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.factories import ruleset
from tests.helpers import until
from tests.integration.conftest import StartPrometheus
from watchdog.clock import SystemClock
from watchdog.core.evaluator import State
from watchdog.demo.fakes.app import AppState, FakeApp, drive
from watchdog.http.server import serve
from watchdog.metrics import Metrics
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps

pytestmark = pytest.mark.integration

POLLS = 120  # at 0.5 s: the bound on how long Prometheus may take to show the change


async def _until(check: Callable[[], bool], what: str) -> None:
    await until(check, what, polls=POLLS, every_s=0.5)


async def test_daemon_fires_when_errors_rise(
    start_prometheus: StartPrometheus, tmp_path: Path
) -> None:
    """Healthy traffic: the rule stays inactive. 30% errors: pending, then firing,
    with the decision recorded and counted on /metrics."""
    app = FakeApp(state=AppState("v1", error_ratio=0.0), seed=3)
    async with serve(app.router) as app_srv, httpx.AsyncClient(timeout=5.0) as http:
        host = app_srv.url.removeprefix("http://")
        prometheus = await start_prometheus([host])
        rules = ruleset(
            tmp_path,
            "",
            base=f"""
version: 1
defaults: {{interval: 1s, blind_after: 1m}}
sources:
  prom: {{type: prometheus, url: "{prometheus.url}", timeout: 2s}}
signals:
  error_rate:
    source: prom
    query: >-
      sum(rate(http_requests_total{{code=~"5.."}}[10s]))
      / sum(rate(http_requests_total[10s]))
    requests_query: 'sum(increase(http_requests_total[10s]))'
    unit: ratio
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 3s, min_requests: 5,
     severity: critical}}
""",
        )
        watchdog = Watchdog(rules, SourceDeps(http=http, clock=SystemClock()), Metrics())
        traffic = asyncio.create_task(_traffic(app_srv.url, http))
        await watchdog.start()
        try:

            def state() -> State:
                return watchdog.engine.states["error-rate"].state

            await _until(lambda: state() is State.INACTIVE, "the healthy rule to be inactive")
            assert not watchdog.decisions
            app.deploy("v2", error_ratio=0.3)
            await _until(lambda: state() is State.FIRING, "the rule to fire")
            kinds = [d.kind.value for d in watchdog.decisions]
            assert kinds == ["notify"]  # no targets in this rule set: notify, not roll back
            decision = watchdog.decisions[-1]
            assert decision.observed > 0.05
            assert decision.requests is not None
            assert decision.requests >= 5
            metric = watchdog.metrics.registry.get_sample_value(
                "watchdog_decisions_total", {"rule": "error-rate", "kind": "notify"}
            )
            assert metric == 1.0
        finally:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
            await watchdog.stop()


async def _traffic(url: str, http: httpx.AsyncClient) -> None:
    while True:
        await drive(url, 50, 1.0, client=http)
