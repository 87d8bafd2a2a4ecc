"""The version ledger and the rollback target it chooses, against the local Cloudflare
API on loopback and a real SQLite store: never the live version, never a version
anybody rolled away from, verified-healthy ones first; a rollback is a
compare-and-swap; the Pages walk goes on until the answer is certain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.factories import ruleset
from tests.helpers import T0, CloudflareStack, InstantClock, cloudflare_stack
from watchdog.actions.base import Target
from watchdog.actions.cloudflare_pages import PagesTarget
from watchdog.actions.cloudflare_worker import WorkerTarget
from watchdog.actions.ledger import Ledgers, LedgerTarget
from watchdog.core.engine import Engine
from watchdog.core.evaluator import RuleState, State
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.model import RollbackPlan, Sample, TargetState
from watchdog.rules.response import PagesTargetSpec, WorkerTargetSpec
from watchdog.store.base import ActionRecord
from watchdog.store.sqlite import SQLiteStore

ACCOUNT = "test-account"
DEPLOYMENTS = f"/accounts/{ACCOUNT}/workers/scripts/api/deployments"
PAGES_ROLLBACK = f"/accounts/{ACCOUNT}/pages/projects/site/deployments/{{id}}/rollback"
PAGES_LIST = f"/accounts/{ACCOUNT}/pages/projects/site/deployments"
COUNTED = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
"""

# These ticks are far apart and their samples old: no gap of evidence ends a run here.
DAY = 86400.0


def worker(stack: CloudflareStack) -> WorkerTarget:
    spec = WorkerTargetSpec(type="cloudflare-worker", script="api")
    return WorkerTarget("worker", spec, ACCOUNT, stack.client)


def pages(stack: CloudflareStack, max_pages: int = 400) -> PagesTarget:
    spec = PagesTargetSpec(type="cloudflare-pages", project="site")
    return PagesTarget("frontend", spec, ACCOUNT, stack.client, max_pages=max_pages)


def plan_from(state: TargetState, reason: str = "error rate 8% > 5%") -> RollbackPlan:
    """The plan the incident manager makes from a state."""
    assert state.live is not None
    assert state.rollback_to is not None
    return RollbackPlan(state.target, state.live.version, state.rollback_to.version, reason)


class HookClock(InstantClock):
    """An instant clock that runs ``during_wait`` on the first retry wait: what a
    person does while the watchdog waits out a 429."""

    def __init__(self, during_wait: Callable[[], object]) -> None:
        super().__init__()
        self.during_wait: Callable[[], object] | None = during_wait

    async def sleep(self, seconds: float) -> None:
        if self.during_wait is not None:
            self.during_wait()
            self.during_wait = None
        await super().sleep(seconds)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "state.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def ledgers(store: SQLiteStore, *targets: Target) -> Ledgers:
    by_name = {t.name: t for t in targets}
    return Ledgers(store, InstantClock(T0), lambda: by_name)


async def state_of(led: Ledgers, name: str) -> TargetState:
    found = (await led.inspect([name]))[name]
    assert isinstance(found, TargetState), found
    return found


# --- defect 1: a second rollback re-deployed the bad version -----------------------------


async def test_a_second_rollback_never_redeploys_the_version_rolled_away_from(
    store: SQLiteStore,
) -> None:
    """v1, v2, v3 live. The first rollback deploys v2; a second one (a later incident,
    a person) must not deploy v3, the version the first moved away from: it goes to v1.
    From the Cloudflare history alone (no store) and through the ledger alike."""
    fake = FakeCloudflare()
    v1, v2, v3 = (fake.publish("api", f"deploy v{i}") for i in (1, 2, 3))
    async with cloudflare_stack(fake) as cf:
        target = worker(cf)
        led = ledgers(store, target)
        first = await state_of(led, "worker")
        assert first.rollback_to is not None
        assert first.rollback_to.version == v2
        assert (await target.rollback(plan_from(first))).ok
        assert fake.live_versions("api") == [(v2, 100.0)]
        second = await state_of(led, "worker")
        history_only = await target.state()
    for state in (second, history_only):
        assert state.rollback_to is not None
        assert state.rollback_to.version == v1
        (skipped,) = [line for line in state.ledger if line.version == v3]
        assert skipped.status == "skipped"
        assert "rolled away from" in skipped.reason
    (entry,) = [e for e in await store.ledger("worker") if e.version == v3]
    assert entry.rolled_away


async def test_a_rollback_by_a_person_counts_too(store: SQLiteStore) -> None:
    """A person's ``wrangler rollback`` (v3 -> v2, triggered_by rollback) while the
    watchdog was not looking: v3 is rolled away from all the same."""
    fake = FakeCloudflare()
    v1, v2, v3 = (fake.publish("api", f"deploy v{i}") for i in (1, 2, 3))
    fake.deploy("api", [(v2, 100)], "Rollback", triggered_by="rollback")
    async with cloudflare_stack(fake) as cf:
        state = await state_of(ledgers(store, worker(cf)), "worker")
    assert state.rollback_to is not None
    assert state.rollback_to.version == v1
    assert {line.version: line.status for line in state.ledger} == {
        v2: "live",
        v3: "skipped",
        v1: "chosen",
    }


async def test_the_watchdogs_journal_marks_versions_rolled_away(store: SQLiteStore) -> None:
    """A rollback the journal holds as done (from v3 to v2) marks v3 rolled away from,
    even when the remote history no longer shows it (older deployments pruned)."""
    fake = FakeCloudflare()
    v1, v2, v3 = (fake.publish("api", f"deploy v{i}") for i in (1, 2, 3))
    v4 = fake.publish("api", "deploy v4")
    # The journal: an earlier incident rolled v3 back to v2, then v4 went out.
    await store.journal_intent(
        ActionRecord(
            "old/rollback/worker",
            "old",
            "rollback",
            "worker",
            {"from": v3, "to": v2, "reason": "x"},
            "intent",
            T0,
        )
    )
    await store.journal_outcome("old/rollback/worker", "done", {"ok": True}, T0 + 1)
    async with cloudflare_stack(fake) as cf:
        state = await state_of(ledgers(store, worker(cf)), "worker")
    assert fake.live_versions("api") == [(v4, 100.0)]
    assert state.rollback_to is not None
    assert state.rollback_to.version == v2
    (v3_line,) = [line for line in state.ledger if line.version == v3]
    assert "rolled back by the watchdog in incident old" in v3_line.reason
    assert v1 in {line.version for line in state.ledger}


async def test_verified_healthy_is_preferred_and_how_it_went_live_is_recorded(
    store: SQLiteStore,
) -> None:
    """A verified-healthy v1 wins over the newer, unverified v2. The ledger records how
    each version went live: a person (wrangler), CI (Workers CI), the watchdog (its
    signed ``workers/message``)."""
    fake = FakeCloudflare()
    v1 = fake.publish("api", "deploy v1")
    v2 = fake.upload_version("api")
    ci = fake.deploy("api", [(v2, 100)], "ci build 42")
    next(d for d in fake.scripts["api"].deployments if d.id == ci).source = "workersci"
    v3 = fake.publish("api", "deploy v3")
    async with cloudflare_stack(fake) as cf:
        led = ledgers(store, worker(cf))
        await led.verified("worker", v1, "verification passed after the rollback in incident i")
        state = await state_of(led, "worker")
    assert state.rollback_to is not None
    assert state.rollback_to.version == v1
    assert "verified healthy" in state.why
    how = {e.version: e.how for e in await store.ledger("worker")}
    assert how == {v1: "person", v2: "ci", v3: "person"}
    watchdog_step = fake.deploy("api", [(v1, 100)], "rollback-watchdog: error-rate 8% > 5%")
    assert watchdog_step
    async with cloudflare_stack(fake) as cf:
        state = await state_of(ledgers(store, worker(cf)), "worker")
    (v3_line,) = [line for line in state.ledger if line.version == v3]
    assert "by the watchdog" in v3_line.reason
    assert state.live_how == "watchdog"


async def test_no_version_left_refuses_and_says_why(store: SQLiteStore) -> None:
    """v3 rolled back to v2, then v2 to v1: every earlier version was rolled away from
    and v1 is live. No target, and the reason names each skipped version."""
    fake = FakeCloudflare()
    v1, v2, v3 = (fake.publish("api", f"deploy v{i}") for i in (1, 2, 3))
    fake.deploy("api", [(v2, 100)], "Rollback", triggered_by="rollback")
    fake.deploy("api", [(v1, 100)], "Rollback", triggered_by="rollback")
    async with cloudflare_stack(fake) as cf:
        state = await state_of(ledgers(store, worker(cf)), "worker")
    assert state.rollback_to is None
    assert "no version left to roll back to" in state.why
    assert f"{v2}: rolled away from" in state.why
    assert f"{v3}: rolled away from" in state.why
    assert [line.status for line in state.ledger] == ["live", "skipped", "skipped"]


# --- healthy runs ----------------------------------------------------------------------


async def test_a_healthy_run_verifies_the_live_version_and_a_breach_resets_it(
    store: SQLiteStore,
) -> None:
    """Every rule inactive for ``healthy_after`` on the same live deployment: verified
    healthy. A rule pending in between starts the run again; blindness is no evidence."""
    fake = FakeCloudflare()
    fake.publish("api", "deploy v1", created_on=T0 - 2000)
    v2 = fake.publish("api", "deploy v2", created_on=T0 - 1000)
    calm = {"r": RuleState(State.INACTIVE, at=T0)}
    pending = {"r": RuleState(State.PENDING, at=T0)}
    blind = {"r": RuleState(State.BLIND, at=T0)}
    async with cloudflare_stack(fake) as cf:
        led = ledgers(store, worker(cf))

        async def tick(at: float, states: dict[str, RuleState]) -> None:
            led.healthy_tick(at, states, 3600.0, DAY)
            await led.drain()

        await tick(T0, calm)  # the run starts
        await tick(T0 + 1800, pending)  # ends it
        await tick(T0 + 1900, calm)  # starts again
        await tick(T0 + 3700, calm)  # not an hour since the restart of the run
        assert not [e for e in await store.ledger("worker") if e.verified]
        await tick(T0 + 4000, blind)
        await tick(T0 + 4100, calm)
        await tick(T0 + 7800, calm)
    (entry,) = [e for e in await store.ledger("worker") if e.verified]
    assert entry.version == v2
    assert "every rule inactive" in entry.verified_why


async def test_a_healthy_run_spans_no_deploy(store: SQLiteStore) -> None:
    """A deploy in the middle of a run: the new deployment's run starts when it went
    live; it is verified once it has served a whole period. Before its first sample
    a rule proves nothing."""
    fake = FakeCloudflare()
    fake.publish("api", "deploy v1", created_on=T0 - 1000)
    calm = {"r": RuleState(State.INACTIVE, at=T0)}
    async with cloudflare_stack(fake) as cf:
        led = ledgers(store, worker(cf))
        led.healthy_tick(T0 - 500, {"r": RuleState(State.INACTIVE)}, 3600.0, DAY)
        led.healthy_tick(T0, calm, 3600.0, DAY)
        v2 = fake.publish("api", "deploy v2", created_on=T0 + 100)
        led.healthy_tick(T0 + 3700, calm, 3600.0, DAY)
        await led.drain()
        assert not [e for e in await store.ledger("worker") if e.verified]
        led.healthy_tick(T0 + 3800, calm, 3600.0, DAY)
        await led.drain()
    assert [e.version for e in await store.ledger("worker") if e.verified] == [v2]


async def test_an_inconclusive_minute_between_two_ticks_ends_the_run(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """The ledger ticks less often than samples arrive: a confidence rule inconclusive
    for a minute between two ticks (both ticks see it inactive) still ends the healthy
    run, as it would had a tick seen it. Calm means inactive on evidence throughout."""
    fake = FakeCloudflare()
    fake.publish("api", "deploy v1", created_on=T0 - 2000)
    fake.publish("api", "deploy v2", created_on=T0 - 1000)
    rules = ruleset(
        tmp_path,
        """
        rules:
          - {name: sure, signal: error_rate, above: 5%, confidence: 99%, window: 1m,
             severity: critical}
        """,
        base=COUNTED,
    )
    engine = Engine(rules)
    async with cloudflare_stack(fake) as cf:
        led = ledgers(store, worker(cf))

        async def tick(at: float) -> None:
            led.healthy_tick(at, engine.states, 3600.0, DAY, engine.unsettled_at)
            await led.drain()

        engine.observe("error_rate", Sample.ratio(T0, 0, 10_000))
        await tick(T0)  # calm: the run starts
        engine.observe("error_rate", Sample.ratio(T0 + 1800, 1, 10))  # cannot tell
        assert engine.states["sure"].state is State.INCONCLUSIVE
        engine.observe("error_rate", Sample.ratio(T0 + 1900, 0, 10_000))  # clear again
        await tick(T0 + 3700)  # every tick saw it inactive, and still no healthy run
        assert not [e for e in await store.ledger("worker") if e.verified]
        await tick(T0 + 1900 + 3600)  # a whole period after it settled
    assert len([e for e in await store.ledger("worker") if e.verified]) == 1


# --- defect 12: a rollback is a compare-and-swap -----------------------------------------


async def test_worker_retry_after_429_never_overwrites_a_newer_deploy() -> None:
    """The POST of v3 -> v2 meets a 429; during the wait a person ships a hotfix v4.
    The retry re-reads, finds neither v3 nor v2 live, and stops: "someone deployed
    meanwhile", nothing sent, v4 stays."""
    fake = FakeCloudflare()
    _v1, v2, v3 = (fake.publish("api", f"deploy v{i}") for i in (1, 2, 3))
    hotfix: list[str] = []
    fake.rate_limit("POST", DEPLOYMENTS, retry_after="5")
    clock = HookClock(lambda: hotfix.append(fake.publish("api", "hotfix v4")))
    async with cloudflare_stack(fake, clock=clock) as cf:
        result = await worker(cf).rollback(RollbackPlan("worker", v3, v2, "error rate"))
    assert not result.ok
    assert result.data["deployed_meanwhile"] is True
    assert "someone deployed meanwhile" in result.detail
    assert fake.live_versions("api") == [(hotfix[0], 100.0)]
    assert fake.count("POST", DEPLOYMENTS) == 1  # only the one answered 429


async def test_worker_replayed_plan_after_a_restart_checks_what_is_live() -> None:
    """A plan journalled before a restart (v3 -> v2); v4 went out while the watchdog
    was down: the replay sends nothing."""
    fake = FakeCloudflare()
    _v1, v2, v3 = (fake.publish("api", f"deploy v{i}") for i in (1, 2, 3))
    v4 = fake.publish("api", "hotfix v4")
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(RollbackPlan("worker", v3, v2, "resumed"))
    assert not result.ok
    assert result.data == {"deployed_meanwhile": True, "live": v4}
    assert fake.count("POST", DEPLOYMENTS) == 0


async def test_pages_retry_after_429_never_overwrites_a_newer_deploy() -> None:
    """The same for Pages: p3 -> p2 meets a 429, p4 is published during the wait."""
    fake = FakeCloudflare()
    _p1, p2, p3 = (fake.add_pages_deployment("site", commit_message=f"p{i}") for i in (1, 2, 3))
    fake.rate_limit("POST", PAGES_ROLLBACK.format(id=p2), retry_after="5")
    newer: list[str] = []
    clock = HookClock(lambda: newer.append(fake.add_pages_deployment("site", commit_message="p4")))
    async with cloudflare_stack(fake, clock=clock) as cf:
        result = await pages(cf).rollback(RollbackPlan("frontend", p3, p2, "error rate"))
    assert not result.ok
    assert result.data["deployed_meanwhile"] is True
    assert fake.canonical("site") == newer[0]
    assert fake.count("POST", PAGES_ROLLBACK) == 1


# --- issue 11: Pages with more than 1,000 production deployments ---------------------------


def many_pages(fake: FakeCloudflare, total: int, live_index: int) -> list[str]:
    """``total`` successful production deployments (oldest first); production was
    rolled back to the one at ``live_index``."""
    fake.add_project("site")
    ids = [fake.add_pages_deployment("site", created_on=T0 + i) for i in range(total)]
    fake.projects["site"].canonical_id = ids[live_index]
    return ids


async def test_pages_walk_goes_past_1000_deployments_until_certain(store: SQLiteStore) -> None:
    """1,060 production deployments, production rolled back to the 21st oldest: the
    target (the 20th) lies past page 40 (1,000 at 25 a page). The walk goes on until
    it has it, and every newer deployment is rolled away from."""
    fake = FakeCloudflare()
    ids = many_pages(fake, 1060, 20)
    async with cloudflare_stack(fake) as cf:
        state = await state_of(ledgers(store, pages(cf)), "frontend")
    assert state.rollback_to is not None
    assert state.rollback_to.id == ids[19]
    read = [c.query["page"] for c in fake.calls if c.path == PAGES_LIST]
    assert len(read) > 40
    rolled_away = {e.version for e in await store.ledger("frontend") if e.rolled_away}
    assert rolled_away == set(ids[21:])


async def test_pages_walk_stops_early_once_certain() -> None:
    """Newest first and the target on page 1: one page is enough."""
    fake = FakeCloudflare()
    ids = many_pages(fake, 1060, 1059)
    async with cloudflare_stack(fake) as cf:
        state = await pages(cf).state()
    assert state.rollback_to is not None
    assert state.rollback_to.id == ids[1058]
    assert [c.query["page"] for c in fake.calls if c.path == PAGES_LIST] == ["1"]


async def test_pages_walk_past_its_bound_says_uncertain_and_refuses() -> None:
    """When the bound on pages ends the walk before the answer is certain, the target
    is uncertain: no choice, and the reason says how much was read of how much."""
    fake = FakeCloudflare()
    many_pages(fake, 1060, 20)
    async with cloudflare_stack(fake) as cf:
        state = await pages(cf, max_pages=40).state()
    assert state.rollback_to is None
    assert "uncertain" in state.why
    assert "1000 production deployments in 40 pages" in state.why
    assert "of 1060" in state.why


async def test_pages_walk_stops_early_and_reads_a_verified_one_by_id(
    store: SQLiteStore,
) -> None:
    """A verified-healthy deployment far down the list is preferred without walking
    to it: the walk stops on page 1 and reads that one by its id. One deleted since
    is skipped."""
    fake = FakeCloudflare()
    ids = many_pages(fake, 1060, 1059)
    async with cloudflare_stack(fake) as cf:
        led = ledgers(store, pages(cf))
        await led.verified("frontend", ids[5], "verification passed")
        await led.verified("frontend", "deleted-deployment", "verification passed")
        state = await state_of(led, "frontend")
    assert state.rollback_to is not None
    assert state.rollback_to.id == ids[5]
    assert [c.query["page"] for c in fake.calls if c.path == PAGES_LIST] == ["1"]
    assert fake.count("GET", f"{PAGES_LIST}/{{id}}") == 2


class ProbedWorker(WorkerTarget):
    """A worker target that counts how often something looks for its ``observe``:
    what a runtime-checkable protocol's ``isinstance`` does for each of its members."""

    probes = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "observe":
            ProbedWorker.probes += 1
        return super().__getattribute__(name)


async def test_the_healthy_tick_tells_a_ledger_target_once_per_class(
    store: SQLiteStore,
) -> None:
    """Ticked at every sample of a replay: whether a target reads its history is a
    property of its class, not asked again each tick (a protocol check costs ~100 µs,
    10-20 % of a backtest)."""
    async with cloudflare_stack(FakeCloudflare()) as cf:
        spec = WorkerTargetSpec(type="cloudflare-worker", script="api")
        target = ProbedWorker("worker", spec, ACCOUNT, cf.client)
        led = ledgers(store, target)
        pending = {"r": RuleState(State.PENDING, at=T0)}
        ProbedWorker.probes = 0
        assert isinstance(target, LedgerTarget)
        one_check = ProbedWorker.probes
        ProbedWorker.probes = 0
        for k in range(200):
            led.healthy_tick(T0 + 15 * k, pending, 3600.0, DAY)
        assert ProbedWorker.probes <= one_check
