"""Burn-rate windows across a restart (issue 13): the minutes of the signals burn-rate
rules watch are kept in the store (SQLite and PostgreSQL, migration 3), and a fresh
engine on the same store starts with its 6h and 3d windows holding what they held."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import T0, ruleset
from tests.unit.test_store import Backend, postgres_backend, sqlite_backend
from watchdog.core import burn
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.model import Sample
from watchdog.rules.load import RuleSet
from watchdog.run.burn_history import BurnHistory

RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
rules:
  - name: slo
    signal: error_rate
    burn_rate:
      objective: 99.9%
      windows:
        - {long: 6h, short: 30m, factor: 6}
        - {long: 3d, short: 6h, factor: 1}
    severity: low
"""
PAIRS = ((6 * 3600.0, 1800.0, 6.0), (3 * 86400.0, 6 * 3600.0, 1.0))
EVERY = 300.0  # a sample each 5 minutes: three days in 864 samples


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgresql":
        return postgres_backend(request.getfixturevalue("postgres_url"))
    return sqlite_backend(tmp_path)


async def run_for(rules: RuleSet, backend: Backend, start: float, samples: int) -> Engine:
    """One life of the daemon: restore from the store, then ``samples`` samples."""
    store = backend.make()
    await store.open()
    try:
        engine = Engine(rules)
        history = BurnHistory(store, lambda: engine)
        await history.restore(start)
        for index in range(samples):
            at = start + index * EVERY
            errors = 3.0 if index % 7 else 0.0  # 3 of 1000 most minutes: 0.3% > 0.1%
            history.observed(engine.observe("error_rate", Sample.ratio(at, errors, 1000.0)))
        await history.drain()
        return engine
    finally:
        await store.close()


def windows(engine: Engine, at: float) -> list[tuple[float, float]]:
    judged = burn.judge(engine.states["slo"].minutes, at, 0.999, PAIRS)
    return [(j.long_errors, j.long_requests) for j in judged]


async def test_a_restart_keeps_the_6h_and_3d_windows(backend: Backend, tmp_path: Path) -> None:
    rules = ruleset(tmp_path, RULES, base="")
    days = int(3 * 86400 / EVERY) + 12
    before = await run_for(rules, backend, T0, days)
    stop = T0 + (days - 1) * EVERY
    assert before.states["slo"].state is State.FIRING  # the 3d window, covered: 0.26%
    # The restart: a fresh engine on the same store, one sample later.
    after = await run_for(rules, backend, stop + EVERY, 1)
    now = stop + EVERY
    held = windows(before, now)  # what the old life's minutes give at the same moment
    sample = (0.0, 1000.0)  # the new life's first sample (index 0: no error)
    # The minute open at the stop was never written: that one sample's counts.
    last_open = (before.states["slo"].minutes.errors[-1], 1000.0)
    for (errors, requests), (was_e, was_n) in zip(windows(after, now), held, strict=True):
        assert requests == was_n - last_open[1] + sample[1]
        assert errors == was_e - last_open[0] + sample[0]
    assert windows(after, now)[1][1] > 800_000  # three days of counts, not one sample
    assert after.states["slo"].state is State.FIRING  # covered at once: not inconclusive
    fresh = Engine(rules)  # what a restart without the history saw: an empty window
    fresh.observe("error_rate", Sample.ratio(now, *sample))
    assert fresh.states["slo"].state is State.INCONCLUSIVE


async def test_the_store_forgets_minutes_past_the_longest_window(
    backend: Backend, tmp_path: Path
) -> None:
    rules = ruleset(tmp_path, RULES, base="")
    days = int(4 * 86400 / EVERY)
    await run_for(rules, backend, T0, days)
    store = backend.make()
    await store.open()
    try:
        rows = await store.minutes("error_rate", 0.0)
    finally:
        await store.close()
    assert len(rows) <= 3 * 86400 / EVERY + 2  # bounded: three days, not four
    assert rows[0][0] >= T0 + (days - 1) * EVERY - 3 * 86400 - 2 * 60  # the last sample
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
