"""Ramps the daemon owns (``rollback-watchdog ramp start|hold|promote|abort``): a new
Worker version moved through percentage steps, each held ``soak`` while the canary
rules pass, in the daemon so that it outlives the CLI.

Every split is journalled before it is posted (the action journal, key
``<ramp>/ramp-<n>/<target>``) and posted as a compare-and-swap from the deployment the
ramp last made, so a person's deploy is never overwritten. A regression is the canary
rule's own rollback (100 % of the old version): the ramp sees it and ends. A version
that is neither old nor new going live ends the ramp without touching anything. After
a restart, ``ramp_restore.restore`` reconciles each active ramp with what is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import structlog

from watchdog.actions.base import Target
from watchdog.actions.cloudflare_worker import WorkerDeployment, WorkerTarget
from watchdog.clock import Clock
from watchdog.errors import ActionError, PermanentActionError, StoreError
from watchdog.model import ActionResult
from watchdog.run.ramp_steps import (
    Gate,
    Live,
    RampError,
    classify,
    describe_live,
    parse_steps,
    soaked,
    split_for,
)
from watchdog.store.base import ActionRecord, RampRecord, Store
from watchdog.units import format_duration, iso

log = structlog.get_logger("watchdog.run.ramp")

TICK_S = 5.0  # how often a ramp reads what is live and asks the canary rules


class Ramps:
    """The active ramps and their tasks; the verbs run under each ramp's lock."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        targets: Callable[[], Mapping[str, Target]],
        gate: Callable[[str, str], Gate],
        tick_s: float = TICK_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.targets = targets
        self.gate = gate
        self.tick_s = tick_s
        self.leading = False  # the leader's ramps only (LeaderGate.elected restores them)
        self.active: dict[str, RampRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # --- the verbs ---------------------------------------------------------------------

    async def start(
        self, target: str | None, version: str, steps: Any, soak_s: float, by: str
    ) -> RampRecord:
        self._check_leading()
        parsed = parse_steps(steps)
        if not 0 <= soak_s <= 7 * 86400:
            raise RampError("soak: between 0 and 7 days", 400)
        name = self._target_name(target)
        if any(r.target == name for r in self.active.values()):
            raise RampError(f"target {name} already has an active ramp")
        gate = self.gate(name, version)
        if not gate.judged:
            raise RampError(f"{gate.why}: a ramp moves only while canary rules pass", 400)
        live = await self.read_live(name)
        old = live.sole_version if live is not None else None
        if live is None or old is None:
            serving = live.split_text() if live else "nothing"
            raise RampError(f"a ramp starts from one version at 100%; {name} serves {serving}")
        if old == version:
            raise RampError(f"version {version} already serves 100% of {name}")
        # The ledger outlives the engine (a restart forgets the canary's regression).
        away = [e for e in await self.store.ledger(name) if e.version == version and e.rolled_away]
        if away:
            raise RampError(
                f"version {version} was rolled away from ({away[0].rolled_away_why}): "
                "a ramp never brings it back"
            )
        now = self.clock.now()
        ramp = RampRecord(uuid.uuid4().hex[:12], name, old, version, parsed, soak_s, by, now)
        ramp.deployment, ramp.why, ramp.updated_at = live.id, f"started by {by}", now
        await self.store.save_ramp(ramp)
        log.info("ramp started", ramp=ramp.id, target=name, old=old, new=version)
        self.run(ramp)
        return ramp

    async def hold(self, ramp_id: str, by: str) -> RampRecord:
        ramp = self._get(ramp_id)
        async with self._lock(ramp):
            self._check_active(ramp)
            if ramp.phase != "held":
                now = self.clock.now()
                ramp.soaked_s, ramp.soak_from = soaked(ramp, now), None
                await self.save(ramp, "held", f"held by {by}")
        return ramp

    async def promote(self, ramp_id: str, by: str) -> RampRecord:
        """The next step now, the rest of the soak skipped (a held ramp resumes so);
        refused while a canary rule says the new version regressed."""
        ramp = self._get(ramp_id)
        async with self._lock(ramp):
            self._check_active(ramp)
            gate = self.gate(ramp.target, ramp.new)
            regressed = _regressed(ramp, gate)
            if regressed:
                raise RampError(f"not promoting: {regressed}")
            live = await self.live_for(ramp)
            if live is not None:
                await self._move(ramp, live, ramp.step + 1, f"promoted by {by}")
        return ramp

    async def abort(self, ramp_id: str, by: str) -> RampRecord:
        """Back to 100 % of the old version now; the ramp ends."""
        ramp = self._get(ramp_id)
        async with self._lock(ramp):
            self._check_active(ramp)
            live = await self.live_for(ramp)
            if live is not None:
                why = f"aborted by {by}: back to 100% of {ramp.old}"
                await self.revert(ramp, live, "aborted", why)
        return ramp

    # --- running -----------------------------------------------------------------------

    def run(self, ramp: RampRecord) -> None:
        """Keep ``ramp`` in memory and move it in its own task until it ends."""
        self.active[ramp.id] = ramp
        self._tasks[ramp.id] = asyncio.create_task(self._loop(ramp), name=f"ramp-{ramp.id}")

    async def _loop(self, ramp: RampRecord) -> None:
        while ramp.active:
            try:
                async with self._lock(ramp):
                    if ramp.active:
                        await self._tick(ramp)
            except (ActionError, StoreError) as exc:  # the next tick tries again
                log.warning("ramp tick failed", ramp=ramp.id, error=str(exc))
            except Exception:  # boundary: a ramp's task must outlive one bad tick
                log.exception("ramp tick failed", ramp=ramp.id)
            if ramp.active:
                await self.clock.sleep(self.tick_s)
        self.active.pop(ramp.id, None)
        self._tasks.pop(ramp.id, None)

    async def _tick(self, ramp: RampRecord) -> None:
        live = await self.live_for(ramp)
        if live is None or ramp.phase == "held":
            return
        gate = self.gate(ramp.target, ramp.new)
        if ramp.step < 0:
            await self._move(ramp, live, 0, "first step")
        elif why := _regressed(ramp, gate):
            # The canary rule's rollback deploys 100 % of old; this ramp sees it next tick.
            if ramp.why != why or not ramp.regressed:
                ramp.regressed = ramp.regressed or why
                await self.save(ramp, ramp.phase, why)
        elif gate.passing and soaked(ramp, _evidence_to(gate, self.clock.now())) >= ramp.soak_s:
            done = format_duration(ramp.soak_s)
            await self._move(ramp, live, ramp.step + 1, f"soaked {done}; {gate.why}")
        elif ramp.why != f"soaking: {gate.why}":  # say what the soak waits on, once
            await self.save(ramp, ramp.phase, f"soaking: {gate.why}")

    async def live_for(self, ramp: RampRecord) -> WorkerDeployment | None:
        """What is live, or None after ending ``ramp`` because someone else moved it."""
        live = await self.read_live(ramp.target)
        if live is None:
            await self.save(ramp, "failed", f"{ramp.target} has no deployment any more")
            return None
        seen = classify(ramp, live)
        if seen is Live.OURS:
            return live
        phase = {Live.OLD: "rolled-back", Live.NEW: "done"}.get(seen, "superseded")
        why = {
            Live.OLD: f"100% of the old version {ramp.old} is live again",
            Live.NEW: f"100% of {ramp.new} is live",
            Live.MOVED: "someone else moved the split",
            Live.FOREIGN: "a version that is neither old nor new went live",
        }[seen]
        await self.save(ramp, phase, f"{why} ({describe_live(live)}); ramp ended, nothing sent")
        return None

    # --- moving the split (journalled) --------------------------------------------------

    async def _move(self, ramp: RampRecord, live: WorkerDeployment, index: int, why: str) -> None:
        versions = split_for(ramp, index)
        intent = {"from_deployment": live.id, "versions": versions, "step": index, "why": why}
        result = await self.journaled(ramp, "ramp-step", intent)
        if not result.ok:
            await self.save(ramp, "held", f"step {index + 1} failed: {result.detail}")
            return
        self.adopt(ramp, index, str(result.data["deployment_id"]))
        pct = ramp.steps[index]
        if pct >= 100:
            await self.save(ramp, "done", f"{ramp.new} serves 100% ({why})")
        else:
            await self.save(ramp, "ramping", f"step {index + 1}: {ramp.new} at {pct:g}% ({why})")

    async def revert(self, ramp: RampRecord, live: WorkerDeployment, phase: str, why: str) -> None:
        intent = {"from_deployment": live.id, "versions": [(ramp.old, 100.0)], "why": why}
        intent["phase"] = phase
        result = await self.journaled(ramp, "ramp-revert", intent)
        if not result.ok:
            raise RampError(f"could not go back to 100% of {ramp.old}: {result.detail}", 502)
        ramp.deployment = str(result.data["deployment_id"])
        await self.save(ramp, phase, why)

    async def journaled(self, ramp: RampRecord, kind: str, intent: dict[str, Any]) -> ActionResult:
        """Journal the intent, post the split, journal the outcome (playbook's order)."""
        seq = len(await self.store.actions(ramp.id)) + 1
        key = f"{ramp.id}/ramp-{seq}/{ramp.target}"
        now = self.clock.now()
        await self.store.journal_intent(
            ActionRecord(key, ramp.id, kind, ramp.target, intent, "intent", now)
        )
        target = self._worker(ramp.target)
        message = f"rollback-watchdog ramp {ramp.id}: {intent['why']}"
        try:
            result = await target.set_split(intent["from_deployment"], intent["versions"], message)
        except ActionError as exc:
            result = ActionResult(kind, ramp.target, False, str(exc))
        outcome = {"ok": result.ok, "detail": result.detail, "data": result.data}
        await self.store.journal_outcome(
            key, "done" if result.ok else "failed", outcome, self.clock.now()
        )
        return result

    def adopt(self, ramp: RampRecord, index: int, deployment: str) -> None:
        """Step ``index`` is live as ``deployment``: its soak starts now."""
        ramp.step, ramp.deployment = index, deployment
        ramp.soaked_s, ramp.soak_from = 0.0, self.clock.now()

    # --- helpers -----------------------------------------------------------------------

    async def save(self, ramp: RampRecord, phase: str, why: str) -> None:
        ramp.phase, ramp.why, ramp.updated_at = phase, why, self.clock.now()
        await self.store.save_ramp(ramp)
        log.info("ramp", ramp=ramp.id, target=ramp.target, phase=phase, why=why)

    def _lock(self, ramp: RampRecord) -> asyncio.Lock:
        return self._locks.setdefault(ramp.id, asyncio.Lock())

    def _get(self, ramp_id: str) -> RampRecord:
        self._check_leading()
        found = [r for r in self.active.values() if r.id.startswith(ramp_id)] if ramp_id else []
        if len(found) != 1:
            names = ", ".join(sorted(self.active)) or "none"
            raise RampError(f"no single active ramp {ramp_id!r} (active: {names})", 404)
        return found[0]

    def _check_leading(self) -> None:
        if not self.leading:
            raise RampError("this replica does not lead: ramps run on the leader", 503)

    @staticmethod
    def _check_active(ramp: RampRecord) -> None:
        if not ramp.active:
            raise RampError(f"ramp {ramp.id} has ended ({ramp.phase}): {ramp.why}")

    def _target_name(self, target: str | None) -> str:
        workers = sorted(n for n, t in self.targets().items() if isinstance(t, WorkerTarget))
        if target is None:
            judged = [n for n in workers if self.gate(n, "").judged]
            if len(judged) != 1:
                raise RampError(f"name the target (--target): Workers judged: {judged}", 400)
            return judged[0]
        if target not in workers:
            raise RampError(f"target {target!r} is not a cloudflare-worker target: {workers}", 400)
        return target

    def _worker(self, name: str) -> WorkerTarget:
        target = self.targets().get(name)
        if not isinstance(target, WorkerTarget):
            raise PermanentActionError(f"target {name} is gone from the rules")
        return target

    async def read_live(self, name: str) -> WorkerDeployment | None:
        deployments = await self._worker(name).deployments()
        return deployments[0] if deployments else None

    async def stop(self) -> None:
        """Shutdown or deposed: the tasks stop; the store keeps every ramp for restore."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.active.clear()

    async def wait(self, ramp_id: str) -> None:
        """Until the ramp's task ends (tests, ``stop``)."""
        task = self._tasks.get(ramp_id)
        if task is not None:
            await asyncio.shield(task)


def _regressed(ramp: RampRecord, gate: Gate) -> str:
    """Why ``ramp``'s new version counts as regressed ("" if it does not): the canary's
    verdict now, else the one stored with the ramp (a restarted engine has none yet,
    and a sequential test's rejection stands for the split)."""
    return gate.why if gate.regression else ramp.regressed


def _evidence_to(gate: Gate, now: float) -> float:
    """How far the soak has run in evidence: a step soaks while the analytics report
    it, so a late source does not end a soak on data that covers part of it."""
    return now if gate.fresh_to is None else min(now, gate.fresh_to)


def ramp_json(ramp: RampRecord, now: float) -> dict[str, Any]:
    """A ramp for the API and ``-o json``: the record plus derived, readable fields."""
    step = ramp.steps[ramp.step] if 0 <= ramp.step < len(ramp.steps) else 0.0
    return {
        **asdict(ramp),
        "active": ramp.active,
        "percentage": step,
        "soaked": soaked(ramp, now) if ramp.active and ramp.step >= 0 else None,
        "created_at_iso": iso(ramp.created_at),
        "updated_at_iso": iso(ramp.updated_at),
    }
