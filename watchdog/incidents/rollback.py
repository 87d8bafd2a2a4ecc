"""Carrying out a rollback: plan per target (guards, silences, the journal when
resumed), run the playbook, record the outcome, then verify or escalate.

A store failure before anything was done refuses to act and says so; after the
playbook ran, the incident stays rolling back and resumes from its journal."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from watchdog.actions.notify.event import EventKind
from watchdog.actions.playbook import PlaybookOutcome
from watchdog.errors import StoreError
from watchdog.incidents.escalation import count_refused, escalate, refused
from watchdog.incidents.guards import blocker
from watchdog.incidents.model import (
    RESUME_AFTER_S,
    EngineView,
    Incident,
    Phase,
    log,
    rollback_message,
)
from watchdog.incidents.recorder import Recorder
from watchdog.incidents.silence import Silences, describe
from watchdog.incidents.state import Blocked, Hold, Instant
from watchdog.incidents.verification import baselines
from watchdog.model import RollbackPlan, TargetState


class Rollbacks:
    """Runs rollbacks, as background tasks or awaited; the manager's lock is taken for
    what follows the playbook, never while it runs."""

    def __init__(
        self, rec: Recorder, engine: EngineView, silences: Silences, lock: asyncio.Lock
    ) -> None:
        self.rec = rec
        self.engine = engine
        self.silences = silences
        self._lock = lock
        self._running: set[asyncio.Task[None]] = set()
        self._acted: set[str] = set()  # incidents whose playbook has run in this process

    def start(self, incident: Incident, resumed: bool = False) -> None:
        """Roll back in the background: the caller (holding the lock) goes on."""
        self._spawn(self._rollback_now(incident, resumed))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def cancel(self) -> None:
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _rollback_now(self, incident: Incident, resumed: bool = False) -> None:
        rec = self.rec
        try:
            await self.run(incident, resumed)
        except StoreError as exc:
            if resumed or incident.id in self._acted:
                await self._store_failed_after_acting(incident, exc)
                return
            # Refuse to act unrecorded: no intent was written, so nothing was done.
            log.error("state store failed; refusing to act", incident=incident.id, error=str(exc))
            count_refused(rec.playbook)
            async with self._lock:
                incident.state.blocked = Blocked(Hold.STORE_FAILED, f"state store failed: {exc}")
                incident.state.refused_at = Instant(rec.clock.now())  # retried while it fires
                why = f"refused to act: state store failed ({exc})"
                try:
                    await escalate(rec, incident, why)
                except StoreError:
                    await refused(rec, incident.decision, incident, why)

    async def _store_failed_after_acting(self, incident: Incident, exc: StoreError) -> None:
        """The playbook ran (each action's intent journalled first) but what came after
        could not be written. Nothing is redone blindly and nothing is called refused:
        the incident stays rolling back and, once the store works, resumes from its
        journal as it would after a restart (taken actions are found done, not redone)."""
        log.error(
            "state store failed after the playbook ran; resuming from the journal "
            "when the store works",
            incident=incident.id,
            error=str(exc),
        )
        incident.state.resume_at = Instant(self.rec.clock.now() + RESUME_AFTER_S)
        if not incident.state.store_failure_told:
            incident.state.store_failure_told = True
            why = (
                f"state store failed after the rollback ran ({exc}): its outcome is not "
                "recorded yet; the watchdog resumes from its journal when the store works"
            )
            await refused(self.rec, incident.decision, incident, why)

    async def run(self, incident: Incident, resumed: bool) -> None:
        """Plan, run the playbook and record the outcome; a StoreError propagates."""
        rec = self.rec
        decision = incident.decision
        dry = rec.dry(decision)
        plans, blocked, held = await self._plan(incident, resumed, dry)
        for name, why in blocked.items():
            await rec.event(incident.id, "rollback_blocked", {"target": name, "why": why})
        if held:
            # The headline reads "Would have rolled back worker: v3 → v2 (silenced by
            # AUTHOR until TIME: COMMENT)".
            await rec.notify(
                incident,
                EventKind.WOULD_ROLLBACK,
                message="; ".join(dict.fromkeys(why for _, why in held)),
                rolled_back=[(p.target, p.from_version, p.to_version) for p, _ in held],
            )
        if not plans:
            async with self._lock:
                if blocked:
                    incident.state.blocked = Blocked(Hold.GUARDS, targets=dict(blocked))
                    await escalate(
                        rec,
                        incident,
                        "no rollback: " + "; ".join(f"{k}: {v}" for k, v in blocked.items()),
                    )
                else:
                    incident.state.blocked = Blocked(Hold.SILENCED)
                    await rec.set_phase(incident, Phase.WATCHING)
            return
        await rec.event(
            incident.id, "rollback_started", {"plans": [p.__dict__ for p in plans], "dry_run": dry}
        )
        notifying = rec.notify(
            incident,
            EventKind.ROLLING_BACK,
            phase="identified",
            rolled_back=[(p.target, p.from_version, p.to_version) for p in plans],
            dry=dry,
        )
        outcome = await rec.playbook.execute(
            incident.id, plans, rec.ruleset.after_rollback.purge, dry, notify=notifying
        )
        self._acted.add(incident.id)  # from here a store failure is not a refusal
        async with self._lock:
            await self._after_rollback(incident, outcome, dry, blocked)

    async def _plan(
        self, incident: Incident, resumed: bool, dry: bool
    ) -> tuple[list[RollbackPlan], dict[str, str], list[tuple[RollbackPlan, str]]]:
        """Per target: a plan to run, a reason it is blocked, or a plan a silence holds
        (with the silence, said in a would_rollback event)."""
        rec = self.rec
        names = [t for t in incident.record.targets if t in rec.playbook.targets]
        # Resumed after a restart: a target with a journal row keeps the plan that was
        # journalled; what is live now may already be the rollback, and a fresh choice
        # from there would point the other way.
        kind = "would-rollback" if dry else "rollback"
        journalled = {
            a.target: a
            for a in (await rec.store.actions(incident.id) if resumed else [])
            if a.kind == kind
        }
        now = rec.clock.now()
        states = await rec.ledgers.inspect([n for n in names if n not in journalled])
        plans: list[RollbackPlan] = []
        blocked: dict[str, str] = {}
        held: list[tuple[RollbackPlan, str]] = []
        for name in names:
            row = journalled.get(name)
            if row is not None:
                plan = RollbackPlan(
                    name,
                    str(row.intent.get("from", "")),
                    str(row.intent.get("to", "")),
                    str(row.intent.get("reason", "")),
                )
            else:
                state = states[name]
                reason = await blocker(rec.ruleset, rec.store, incident, name, state, now)
                if reason is not None:
                    blocked[name] = reason
                    continue
                assert isinstance(state, TargetState)
                plan = self._fresh_plan(incident, name, state)
            why = await self._silenced(incident, plan)
            if why is None:
                plans.append(plan)
            else:
                held.append((plan, why))
        return plans, blocked, held

    @staticmethod
    def _fresh_plan(incident: Incident, name: str, state: TargetState) -> RollbackPlan:
        assert state.rollback_to is not None
        live = state.live.version if state.live is not None else "live"
        if state.live is not None:  # the verification baseline comes from before it
            incident.state.deployed_at[name] = state.live.created_at
        return RollbackPlan(
            name, live, state.rollback_to.version, rollback_message(incident.decision)
        )

    async def _silenced(self, incident: Incident, plan: RollbackPlan) -> str | None:
        """The silence that holds this plan, described, or None. Silences hold the
        automatic path; a person's explicit rollback acts, and the record says which
        silence it went past."""
        rec = self.rec
        decision = incident.decision
        name = plan.target
        silence = self.silences.match(decision.rule, decision.severity, name)
        if silence is None:
            return None
        if decision.extra.get("manual"):
            await rec.event(
                incident.id,
                "silence_overridden",
                {
                    "target": name,
                    "why": f"a person's explicit rollback acts; the silence holds only "
                    f"automatic ones ({describe(silence)})",
                },
            )
            return None
        why = describe(silence)
        await rec.event(
            incident.id,
            "would_rollback",
            {"target": name, "why": why, "from": plan.from_version, "to": plan.to_version},
        )
        return why

    async def _after_rollback(
        self, incident: Incident, outcome: PlaybookOutcome, dry: bool, blocked: dict[str, str]
    ) -> None:
        rec = self.rec
        await rec.record_results(incident.id, outcome.results)
        failed = [r for r in outcome.results if not r.ok and r.action != "notify"]
        if dry:
            await rec.event(
                incident.id,
                "would_rollback",
                {"dry_run": True, "results": [r.detail for r in outcome.results]},
            )
            await rec.notify(
                incident,
                EventKind.WOULD_ROLLBACK,
                message="dry run: nothing was changed",
                actions=outcome.results,
            )
            await rec.set_phase(incident, Phase.WATCHING)
            return
        if not outcome.any_rolled_back:
            await escalate(
                rec,
                incident,
                "rollback failed: " + "; ".join(f"{r.target}: {r.detail}" for r in failed),
            )
            return
        await rec.ledgers.rolled_back(incident.id, outcome.rolled_back)
        now = Instant(rec.clock.now())
        state = incident.state
        state.rolled_back, state.rolled_back_at = list(outcome.rolled_back), now
        state.baselines = baselines(rec.ruleset, self.engine.windows, incident)
        await rec.event(
            incident.id,
            "rollback_finished",
            {"rolled_back": outcome.rolled_back, "failed": [r.detail for r in failed]},
        )
        await rec.notify(
            incident,
            EventKind.ROLLED_BACK,
            phase="monitoring",
            rolled_back=outcome.rolled_back,
            actions=outcome.results,
        )
        if failed or blocked:
            await escalate(
                rec,
                incident,
                "part of the rollback failed: "
                + "; ".join(
                    [f"{r.target}: {r.detail}" for r in failed]
                    + [f"{k}: {v}" for k, v in blocked.items()]
                ),
            )
            return
        state.verify_started = now
        await rec.set_phase(incident, Phase.VERIFYING)
