"""The model behind the ramp history tests (issue 16, "Owning the ramp"): the ramp's
world of tests/scenarios/ramp_support.py (the local Cloudflare API on loopback, a
canary rule in a real Engine fed per-version counts of what the fake serves, the
SQLite store, the daemon's ``Ramps``, all on a virtual clock), the moves a history is
made of, and the invariants checked after every move from what Cloudflare recorded
(its deployment history) and the store's ledger, never from the ramp's own opinion.

The canary rule's rollback is the incident manager's in the daemon; here the model
does it the same way (the real ``WorkerTarget.rollback`` to 100 % of the split's old
version, then the ledger's "rolled away from" mark, as ``Ledgers.rolled_back``) as
soon as the rule fires, checked after every traffic window.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.scenarios.ramp_support import RampWorld, ramp_world
from watchdog.actions.cloudflare_worker import live_label
from watchdog.core.evaluator import State
from watchdog.demo.fakes.cloudflare import WorkerDeployment
from watchdog.errors import WatchdogError
from watchdog.model import RollbackPlan
from watchdog.store.base import LedgerEntry

GOOD, BAD = 0.005, 0.06  # the new version's error rate (the old one's is 0.5 %)
RAMP_MESSAGE = re.compile(r"^rollback-watchdog ramp (\w+): ")
ENDED = ("done", "aborted", "rolled-back", "superseded", "failed", "reverted")


# Invariant -> a defect this model found and left open, pinned by a strict xfail test
# in tests/model/test_ramp_found_defects.py: still checked, its violations collected in
# ``RampModel.waived`` instead of failing (RAMP_HISTORIES_ENFORCE=name asserts it).
# Empty: "no_promote_regressed" (a restart forgot the canary's regression) is fixed.
FOUND_OPEN: dict[str, str] = {}
ENFORCE = frozenset(filter(None, os.environ.get("RAMP_HISTORIES_ENFORCE", "").split(",")))


class InvariantError(AssertionError):
    """An invariant broken: which one, and the history that led there."""


@dataclass
class RampModel:
    w: RampWorld
    deployments: str  # the deployments path, relative to /client/v4
    log: list[str] = field(default_factory=list)
    persons: set[str] = field(default_factory=set)  # deployment ids a person made
    canary_made: set[str] = field(default_factory=set)  # the canary rollback's
    started_from: dict[str, str] = field(default_factory=dict)  # ramp id -> deployment
    # Moments are positions in Cloudflare's deployment history (its stamps may run
    # ahead of the clock by a millisecond per deployment).
    aborted: dict[str, tuple[str, int]] = field(default_factory=dict)  # ramp -> new, at
    regressed: dict[str, int] = field(default_factory=dict)  # version -> first seen at
    away_at: dict[str, int] = field(default_factory=dict)  # version -> rolled away at
    versions: list[str] = field(default_factory=list)  # every version ever ramped
    waived: list[str] = field(default_factory=list)  # violations of FOUND_OPEN invariants

    def say(self, line: str) -> None:
        self.log.append(f"{len(self.log) + 1}. t+{self.w.clock.now() - START:.0f}s {line}")

    async def settle(self) -> None:
        """Until no Cloudflare exchange is in flight (a person's deploy lands between
        a ramp's ticks, not between its read and its POST: see the report)."""
        for _ in range(4000):  # up to 2 s: a loopback exchange on a loaded machine
            if not self.w.clock._busy:
                return
            await asyncio.sleep(0.0005)

    def history(self) -> list[WorkerDeployment]:
        return sorted(self.w.fake._script("api").deployments, key=lambda d: d.created_on)

    async def active_ramp(self) -> str | None:
        return next((r.id for r in await self.w.store.ramps() if r.active), None)

    # --- the moves ------------------------------------------------------------------

    async def start(self, bad: bool, again: bool, steps: str, soak_s: float) -> None:
        await self.settle()
        if again and self.versions:
            version = self.versions[-1]
        else:
            version = self.w.fake.upload_version("api", f"v{len(self.versions) + 2}")
            self.w.error_rates[version] = BAD if bad else GOOD
        live = self.w.fake.live_deployment("api")
        try:
            ramp = await self.w.ramps.start(None, version, steps, soak_s, "ana")
        except WatchdogError as exc:
            self.say(f"start {version[:6]} refused: {exc}")
            return
        assert live is not None
        self.started_from[ramp.id] = live.id
        self.versions.append(version)
        kind = "bad" if self.w.error_rates.get(version) == BAD else "good"
        self.say(f"ramp {ramp.id} of {kind} {version[:6]} {steps} soak {soak_s:g}s")

    async def advance(self, seconds: float) -> None:
        """Time passes window by window; the canary's rollback acts when its rule fires."""
        end = self.w.clock.now() + seconds
        while self.w.clock.now() < end:
            await self.w.clock.sleep(min(self.w.traffic_every_s, end - self.w.clock.now()))
            await self.settle()
            await self.canary_acts()
        self.say(f"{seconds:g}s pass; live {self.live_text()}")

    async def canary_acts(self) -> None:
        engine = self.w.engine
        test = engine.canaries.tests.get("canary")
        if test is None or engine.states["canary"].state is not State.FIRING:
            return
        self.regressed.setdefault(test.split.new, len(self.history()))
        target = self.w.target()
        deployments = await target.deployments()
        if test.split.new not in deployments[0].version_ids:
            return
        plan = RollbackPlan("worker", live_label(deployments), test.split.old, "canary")
        before = {d.id for d in self.history()}
        with contextlib.suppress(WatchdogError):  # a fault: the next window tries again
            result = await target.rollback(plan)
            self.say(f"canary rolls back {test.split.new[:6]}: {result.detail}")
        self.canary_made |= {d.id for d in self.history()} - before
        if any(d.id in self.canary_made for d in self.history() if d.id not in before):
            away = LedgerEntry("worker", test.split.new, rolled_away_at=self.w.clock.now())
            away.rolled_away_why = "rolled back by the canary rule"
            await self.w.store.save_ledger([away])
            self.away_at.setdefault(test.split.new, len(self.history()))

    async def verb(self, verb: str) -> None:
        await self.settle()
        ramp_id = await self.active_ramp()
        if ramp_id is None:
            self.say(f"{verb}: no active ramp")
            return
        (ramp,) = [r for r in await self.w.store.ramps() if r.id == ramp_id]
        try:
            got = await getattr(self.w.ramps, verb)(ramp_id, "bo")
        except WatchdogError as exc:
            self.say(f"{verb} {ramp_id} refused: {exc}")
            return
        if verb == "abort" and got.phase == "aborted":
            self.aborted[ramp_id] = (ramp.new, len(self.history()))
        self.say(f"{verb} {ramp_id}: {got.phase}; live {self.live_text()}")

    async def person_deploys(self, split: bool) -> None:
        await self.settle()
        version = self.w.fake.upload_version("api", "hotfix")
        old = self.w.fake.live_versions("api")[0][0]
        self.w.error_rates[version] = GOOD
        versions = [(version, 30.0), (old, 70.0)] if split else [(version, 100.0)]
        self.persons.add(self.w.fake.deploy("api", versions, "by hand"))
        self.say(f"a person deploys {self.live_text()}")

    async def fault(self, after_apply: bool, times: int) -> None:
        fake = self.w.fake
        if after_apply:
            fake.fail_after_apply("POST", self.deployments, 500, times)
        else:
            fake.fail("POST", self.deployments, 503, times)
        self.say(f"Cloudflare fails the next {times} deployment POST(s), after_apply={after_apply}")

    async def restart(self) -> None:
        await self.settle()
        await self.w.restart()
        self.say(f"restart; ramps {[(r.id, r.phase) for r in await self.w.store.ramps()]}")

    def live_text(self) -> str:
        return ", ".join(f"{v[:6]}@{p:g}%" for v, p in sorted(self.w.live()))

    # --- the invariants -------------------------------------------------------------

    async def check(self) -> None:
        await self.settle()
        history = self.history()
        away = {e.version: e for e in await self.w.store.ledger("worker") if e.rolled_away}
        for i, d in enumerate(history):
            mine = RAMP_MESSAGE.match(d.message)
            if mine is None and d.id not in self.canary_made:
                continue
            for version, pct in d.versions:
                at = self.away_at.get(version) if version in away else None
                if pct > 0 and at is not None and at <= i:
                    self.fail("no_redeploy", f"{d.id} put {version[:6]} rolled away from back")
            if mine is None:
                continue
            ramp_id = mine.group(1)
            before = history[i - 1]
            if before.id in self.persons and before.id != self.started_from.get(ramp_id):
                self.fail("compare_and_swap", f"ramp {ramp_id} posted over a person's {before.id}")
            new, at_abort = self.aborted.get(ramp_id, ("", len(history)))
            if i >= at_abort and new in {v for v, _ in d.versions}:
                self.fail("abort_final", f"ramp {ramp_id} made {new[:6]} live after its abort")
            share = dict(before.versions)
            for version, pct in d.versions:
                seen = self.regressed.get(version)
                if seen is not None and seen <= i and pct > share.get(version, 0.0):
                    self.fail("no_promote_regressed", f"ramp {ramp_id} raised {version[:6]}")
        await self.no_split_left(history)

    async def no_split_left(self, history: list[WorkerDeployment]) -> None:
        ramps = await self.w.store.ramps()
        if not ramps or any(r.active for r in ramps) or history[-1].id in self.persons:
            return
        if len(history[-1].versions) != 1:
            self.fail("no_split_left", f"ramps ended ({[r.phase for r in ramps]}), live split")

    def fail(self, invariant: str, what: str) -> None:
        if invariant in FOUND_OPEN and invariant not in ENFORCE:
            if f"{invariant}: {what}" not in self.waived:
                self.waived.append(f"{invariant}: {what}")
            return
        raise InvariantError(f"{invariant}: {what}\nhistory:\n" + "\n".join(self.log))


START = 0.0


@contextlib.asynccontextmanager
async def ramp_model(tmp: Path, http: httpx.AsyncClient) -> AsyncIterator[RampModel]:
    global START
    async with ramp_world(tmp, http=http, idle_s=0.0005) as w:
        START = w.clock.now()
        w.error_rates[w.new] = GOOD
        path = f"/accounts/{w.fake.account_id}/workers/scripts/api/deployments"
        model = RampModel(w, path)
        model.persons.add(history_id(w))
        yield model


def history_id(w: RampWorld) -> str:
    live = w.fake.live_deployment("api")
    assert live is not None
    return live.id
