"""A counter reset (the app restarts) under the real scrape source and the engine:
no false breach, no false firing; a real breach after the restart still fires."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.factories import T0, ruleset
from watchdog.clock import FakeClock
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.demo.fakes.app import AppState, FakeApp
from watchdog.http.server import Receive, Scope, Send, serve
from watchdog.sources.base import SourceDeps
from watchdog.sources.scrape import ScrapeSource

RULES = """
version: 1
sources:
  app: {{type: scrape, url: "{url}/metrics"}}
signals:
  error_rate: {{source: app, kind: error_ratio, metric: http_requests_total}}
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 1m, min_requests: 10,
     severity: critical}}
"""


class Restartable:
    """One URL, an app that can be replaced by a fresh process (counters back to 0)."""

    def __init__(self, app: FakeApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app.router(scope, receive, send)


@pytest.mark.integration
async def test_counter_reset_is_no_breach(tmp_path: Path) -> None:
    """Healthy traffic, a restart that zeroes every counter, healthy traffic again:
    the rule never leaves inactive (after the first scrape); then a real 30% breach
    after the restart fires."""
    front = Restartable(FakeApp(state=AppState("v1", error_ratio=0.01), seed=1))
    clock = FakeClock(T0)
    async with serve(front) as srv, httpx.AsyncClient(timeout=5.0) as http:
        rules = ruleset(tmp_path, "", base=RULES.format(url=srv.url))
        (rule,) = rules.rules
        signal = rules.signals["error_rate"]
        assert signal.source.type == "scrape"
        source = ScrapeSource("app", signal.source, SourceDeps(http=http, clock=clock))
        engine = Engine(rules)
        states: list[State] = []

        async def scrape(requests: int) -> None:
            front.app.simulate(requests)
            clock.set(clock.now() + 15)
            sample = (await source.sample([signal], clock.now()))["error_rate"]
            engine.observe("error_rate", sample)
            states.append(engine.states[rule.name].state)

        for _ in range(10):
            await scrape(200)
        # The process restarts: a new app, every counter from zero, a little traffic.
        front.app = FakeApp(state=AppState("v1", error_ratio=0.01), seed=2)
        for _ in range(10):
            await scrape(200)
        assert states[0] is State.BLIND  # the first scrape has nothing to rate against
        assert set(states[1:]) == {State.INACTIVE}
        front.app.deploy("v2", error_ratio=0.3)
        for _ in range(6):
            await scrape(200)
        assert states[-1] is State.FIRING
