"""The live daemon's deploy watch: a new live deployment on the local Cloudflare API
starts the deploy-regression test in the engine (issue 13), the same engine call
the backtest makes from ``deployments``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.factories import ruleset
from tests.helpers import T0, cloudflare_stack
from watchdog.actions.cloudflare_worker import WorkerTarget
from watchdog.core.decision import DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.model import Sample
from watchdog.rules.response import WorkerTargetSpec
from watchdog.run.deploys import DeployWatch
from watchdog.store.sqlite import SQLiteStore

RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: regressed, signal: error_rate, regression: {min_effect: 2x, baseline: 30m},
     severity: critical, rollback: [worker]}
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "state.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_new_live_deployment_starts_the_test(tmp_path: Path, store: SQLiteStore) -> None:
    fake = FakeCloudflare()
    fake.publish("api", "v1", created_on=T0 - 86400)
    engine = Engine(ruleset(tmp_path, "", base=RULES))
    async with cloudflare_stack(fake) as cf:
        spec = WorkerTargetSpec(type="cloudflare-worker", script="api")
        target = WorkerTarget("worker", spec, "test-account", cf.client)
        watch = DeployWatch(lambda: {"worker": target}, store, lambda: engine)
        assert watch.watched() == {"worker"}
        assert await watch.poll(T0) == []  # a day-old deploy: nothing to test
        for minute in range(30):
            engine.observe("error_rate", Sample.ratio(T0 + minute * 60, 3, 600))
        fake.publish("api", "v2", created_on=T0 + 30 * 60 - 5)
        bad = engine.observe("error_rate", Sample.ratio(T0 + 30 * 60, 30, 600))
        assert bad.decisions == ()  # not seen yet
        told = await watch.poll(T0 + 30 * 60 + 20)
        assert [name for name, _ in told] == ["worker"]
        assert told[0][1] == pytest.approx(T0 + 30 * 60 - 5)
        assert await watch.poll(T0 + 30 * 60 + 50) == []  # the same deploy, once
        state = engine.states["regressed"]
        assert state.baseline is not None
        assert state.baseline[2] == 30 * 600  # the half hour before
        assert (state.errors, state.requests) == (30, 600)  # served before it was seen
        later = engine.observe("error_rate", Sample.ratio(T0 + 31 * 60, 30, 600))
    (decision,) = later.decisions
    assert decision.kind is DecisionKind.ROLLBACK
    assert engine.states["regressed"].state is State.FIRING


CANARY = """
version: 1
sources:
  cf: {type: cloudflare, script: api, mode: versions}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: canary, signal: cf.versions, canary: {min_effect: 3x}, severity: critical,
     rollback: [worker]}
"""


async def test_a_split_is_told_with_its_percentage_author_and_start(
    tmp_path: Path, store: SQLiteStore
) -> None:
    """Issue 16: the watch follows the Worker's deployments: a split's new version,
    percentage and author; a ramp keeps its start; 100 % of one version ends it."""
    fake = FakeCloudflare()
    old = fake.publish("api", "v1", created_on=T0 - 86400)
    new = fake.upload_version("api", "v2", created_on=T0 - 60)
    engine = Engine(ruleset(tmp_path, "", base=CANARY))
    async with cloudflare_stack(fake) as cf:
        spec = WorkerTargetSpec(type="cloudflare-worker", script="api")
        target = WorkerTarget("worker", spec, "test-account", cf.client)
        watch = DeployWatch(lambda: {"worker": target}, store, lambda: engine)
        assert watch.watched() == {"worker"}
        await watch.poll(T0)
        assert engine.canaries.splits == {}
        fake.deploy("api", [(new, 10), (old, 90)], "canary", created_on=T0)
        await watch.poll(T0 + 30)
        split = engine.canaries.splits["worker"]
        assert (split.new, split.old, split.new_percentage, split.at) == (new, old, 10.0, T0)
        assert split.author == "deployer@example.com"
        fake.deploy("api", [(new, 50), (old, 50)], "ramp", created_on=T0 + 600)
        await watch.poll(T0 + 630)
        split = engine.canaries.splits["worker"]
        assert (split.new_percentage, split.at) == (50.0, T0)  # the same pair: same test
        fake.deploy("api", [(old, 100)], "rolled back", created_on=T0 + 700)
        await watch.poll(T0 + 730)
        assert engine.canaries.splits == {}
