"""The cooldown and the hourly cap measure real time: a wall-clock step (an NTP
step, a resumed VM) in either direction neither lifts nor stretches them. The steps
the watchdog noticed are in the store, so a restarted process measures the same."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.factories import T0, ruleset
from watchdog.incidents.guards import ClockStep, blocker, record_clock_step
from watchdog.incidents.model import Incident, manual_decision
from watchdog.incidents.state import IncidentState
from watchdog.model import Deploy, TargetState
from watchdog.rules.load import RuleSet
from watchdog.store.base import ActionRecord, IncidentRecord
from watchdog.store.sqlite import SQLiteStore

HOUR = 3600.0
MINUTE = 60.0
BASE = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "x", unit: ratio}
targets:
  worker: {type: cloudflare-worker, script: api}
  auth: {type: cloudflare-worker, script: auth}
  edge: {type: cloudflare-worker, script: edge}
"""
RULES = """
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     rollback: [worker, auth, edge]}
correlation: {enabled: false}
guards: {cooldown: 30m, max_rollbacks_per_hour: 2}
"""


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return ruleset(tmp_path, RULES, base=BASE)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()


def incident(now: float) -> Incident:
    # An automatic decision (a person's rollback skips the guards).
    decision = dataclasses.replace(manual_decision(["worker"], "x", "t", now), extra={})
    record = IncidentRecord("now", now, "error-rate", "critical", "rolling_back", ["worker"])
    return Incident(record, IncidentState(decision))


STATE = TargetState(
    "worker", "cloudflare-worker", Deploy("d3", "v3", T0 - 600), Deploy("d2", "v2", T0 - HOUR), ""
)


async def rolled_back(store: SQLiteStore, target: str, at: float) -> None:
    key = f"earlier/rollback/{target}"
    await store.journal_intent(
        ActionRecord(key, "earlier", "rollback", target, {}, "done", created_at=at)
    )


async def judge(rules: RuleSet, store: SQLiteStore, target: str, now: float) -> str | None:
    state = dataclasses.replace(STATE, target=target)
    return await blocker(rules, store, incident(now), target, state, now)


async def test_without_steps_the_cooldown_is_thirty_minutes(
    rules: RuleSet, store: SQLiteStore
) -> None:
    await rolled_back(store, "worker", T0)
    assert "cooldown" in str(await judge(rules, store, "worker", T0 + 29 * MINUTE))
    assert await judge(rules, store, "worker", T0 + 31 * MINUTE) is None


async def test_forward_step_keeps_the_cooldown(rules: RuleSet, store: SQLiteStore) -> None:
    """Rolled back at T0; ten real minutes later the wall clock steps an hour forward;
    twenty real minutes after the rollback the cooldown holds, 31 minutes after not."""
    await rolled_back(store, "worker", T0)
    await record_clock_step(store, ClockStep(T0 + 10 * MINUTE + HOUR, HOUR))
    why = await judge(rules, store, "worker", T0 + 20 * MINUTE + HOUR)
    assert why is not None
    assert why.startswith("cooldown: worker was rolled back")
    assert await judge(rules, store, "worker", T0 + 31 * MINUTE + HOUR) is None


async def test_backward_step_does_not_stretch_the_cooldown(
    rules: RuleSet, store: SQLiteStore
) -> None:
    """The wall clock steps an hour back after the rollback: the journal row lies in
    the future, yet the cooldown holds at 20 real minutes and ends at 31."""
    await rolled_back(store, "worker", T0)
    await record_clock_step(store, ClockStep(T0 + 10 * MINUTE - HOUR, -HOUR))
    assert "cooldown" in str(await judge(rules, store, "worker", T0 + 20 * MINUTE - HOUR))
    assert await judge(rules, store, "worker", T0 + 31 * MINUTE - HOUR) is None


async def test_forward_step_keeps_the_hourly_cap(rules: RuleSet, store: SQLiteStore) -> None:
    """Two rollbacks (the cap) within a minute, then a step an hour forward: a third
    target 40 real minutes later is refused by the cap; 61 real minutes later not."""
    await rolled_back(store, "worker", T0)
    await rolled_back(store, "auth", T0 + MINUTE)
    await record_clock_step(store, ClockStep(T0 + 10 * MINUTE + HOUR, HOUR))
    why = await judge(rules, store, "edge", T0 + 40 * MINUTE + HOUR)
    assert why is not None
    assert why.startswith("global cap: 2 rollbacks in the last hour")
    assert await judge(rules, store, "edge", T0 + 62 * MINUTE + HOUR) is None


async def test_a_step_told_by_two_replicas_counts_once(rules: RuleSet, store: SQLiteStore) -> None:
    """Both HA replicas notice the same step and record it: counted twice, the row
    would look an hour younger than it is and the cooldown would hold for 90 minutes."""
    await rolled_back(store, "worker", T0)
    await record_clock_step(store, ClockStep(T0 + 10 * MINUTE + HOUR, HOUR))
    await record_clock_step(store, ClockStep(T0 + 10 * MINUTE + HOUR + 7, HOUR + 0.4))
    assert "cooldown" in str(await judge(rules, store, "worker", T0 + 20 * MINUTE + HOUR))
    assert await judge(rules, store, "worker", T0 + 31 * MINUTE + HOUR) is None


async def test_a_rollback_after_the_step_is_measured_on_the_new_clock(
    rules: RuleSet, store: SQLiteStore
) -> None:
    """A step forward, then a rollback: nothing of the step applies to it."""
    await record_clock_step(store, ClockStep(T0 + HOUR, HOUR))
    await rolled_back(store, "worker", T0 + HOUR + 5 * MINUTE)
    assert "cooldown" in str(await judge(rules, store, "worker", T0 + HOUR + 30 * MINUTE))
    assert await judge(rules, store, "worker", T0 + HOUR + 36 * MINUTE) is None


CORRELATED = """
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     rollback: [worker]}
correlation: {enabled: true, max_deploy_age: 2h}
guards: {cooldown: 30m, max_rollbacks_per_hour: 2}
"""


async def test_a_backward_step_does_not_make_an_old_deploy_look_young(
    tmp_path: Path, store: SQLiteStore
) -> None:
    """Defect g (issue 10 follow-up): the live deploy went live 3 hours ago by
    Cloudflare's clock; our wall clock then stepped back 2 hours (noticed, recorded).
    Measured on the wall clock alone the deploy is 1 hour old, inside max_deploy_age,
    and was blamed. Its age is uncertain across the step: no rollback, and why."""
    rules = ruleset(tmp_path, CORRELATED, base=BASE)
    now = T0 - 2 * HOUR  # the wall clock, 2 hours behind
    await record_clock_step(store, ClockStep(now - 10 * MINUTE, -2 * HOUR))
    live = Deploy("d3", "v3", T0 - 3 * HOUR)
    state = dataclasses.replace(STATE, live=live, rollback_to=Deploy("d2", "v2", T0 - 5 * HOUR))
    why = await blocker(rules, store, incident(now), "worker", state, now)
    assert why is not None
    assert "clock" in why


async def test_without_a_step_a_recent_deploy_is_blamed(tmp_path: Path, store: SQLiteStore) -> None:
    rules = ruleset(tmp_path, CORRELATED, base=BASE)
    now = T0
    state = dataclasses.replace(STATE, live=Deploy("d3", "v3", T0 - HOUR))
    assert await blocker(rules, store, incident(now), "worker", state, now) is None
