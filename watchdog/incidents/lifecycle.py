"""An open incident's way to resolved: each tick moves it on at its deadlines (grace,
escalate_at, a lifted silence, a resumed rollback, verification, the stable period),
a rule's resolution may close it, and closing writes the post-mortem draft."""

from __future__ import annotations

import math
from pathlib import Path

from watchdog.actions.notify.event import EventKind
from watchdog.core.evaluator import State
from watchdog.incidents.escalation import escalate, ladder
from watchdog.incidents.model import (
    NOT_OVER,
    RESUME_AFTER_S,
    EngineView,
    Incident,
    Phase,
    log,
    states_of,
)
from watchdog.incidents.postmortem import write_draft
from watchdog.incidents.recorder import Recorder
from watchdog.incidents.rollback import Rollbacks
from watchdog.incidents.silence import Silences
from watchdog.incidents.state import Hold, Instant, deadline
from watchdog.incidents.verification import verify
from watchdog.units import format_duration


class Lifecycle:
    """Phase transitions after an incident opened; the caller holds the manager's lock."""

    def __init__(
        self,
        rec: Recorder,
        engine: EngineView,
        rollbacks: Rollbacks,
        silences: Silences,
        postmortem_dir: Path | None,
    ) -> None:
        self.rec = rec
        self.engine = engine
        self.rollbacks = rollbacks
        self.silences = silences
        self.postmortem_dir = postmortem_dir

    async def tick_one(self, incident: Incident, now: float) -> None:
        rec = self.rec
        phase = incident.phase
        state = incident.state
        firing, unsure, healthy = self._evidence(incident)
        if phase in (Phase.GRACE, Phase.WATCHING, Phase.ESCALATED) and healthy:
            await self.rule_resolved(incident, "the rule is no longer breaching")
        elif phase is Phase.GRACE and now >= deadline(state.grace_until):
            await self._grace_over(incident, firing, unsure)
        elif phase is Phase.WATCHING and state.escalate_at and now >= state.escalate_at:
            if firing:
                state.escalate_at = None
                how_long = format_duration(now - incident.record.opened_at)
                await escalate(rec, incident, f"still breaching after {how_long}")
        elif phase is Phase.WATCHING and firing and self._silence_lifted(incident):
            await rec.event(incident.id, "silence_ended", {})
            state.blocked = None
            await rec.set_phase(incident, Phase.ROLLING_BACK)
            self.rollbacks.start(incident)
        elif (
            phase is Phase.ESCALATED
            and firing
            and now >= deadline(state.refused_at) + RESUME_AFTER_S
        ):
            await self._retry_refused(incident)
        elif phase is Phase.ROLLING_BACK and now >= deadline(state.resume_at):
            state.resume_at = None
            self.rollbacks.start(incident, resumed=True)
        elif phase is Phase.VERIFYING:
            await verify(rec, self.engine.windows, incident, now)
        elif phase is Phase.MONITORING and now >= deadline(state.stable_until):
            await self._stable_over(incident, firing, unsure)
        if incident.phase is Phase.ESCALATED:
            await ladder(rec, incident, now)

    def next_deadline(self, incident: Incident, now: float) -> float:
        """The earliest moment ``tick_one`` may act on ``incident`` other than at a
        rule's change of state (``healthy``, ``firing``); ``now`` where it reads
        samples or silences at every tick; ``inf``: only at a change of state. A
        deadline passed but not acted on (the evidence unsure) stays ``<= now``."""
        state = incident.state
        phase = incident.phase
        if phase in (Phase.GRACE, Phase.WATCHING, Phase.ESCALATED) and self._evidence(incident)[2]:
            return now  # healthy already (say verification just escalated): resolve it
        if phase is Phase.GRACE:
            return deadline(state.grace_until)
        if phase is Phase.WATCHING:
            blocked = state.blocked
            if blocked is not None and blocked.by is Hold.SILENCED:
                return now  # a silence may end or be expired at any moment
            return deadline(state.escalate_at) if state.escalate_at else math.inf
        if phase is Phase.ROLLING_BACK:
            return deadline(state.resume_at)
        if phase is Phase.MONITORING:
            return deadline(state.stable_until)
        if phase is Phase.ESCALATED:
            if state.escalated_at is None:
                return now
            return min(
                [deadline(state.refused_at) + RESUME_AFTER_S]
                + [
                    state.escalated_at + level.after
                    for level in self.rec.ruleset.escalation
                    if level.level > state.escalation_sent
                ]
            )
        return now  # verifying: each sample may decide a check

    async def _grace_over(self, incident: Incident, firing: bool, unsure: bool) -> None:
        if firing:
            await self.rec.event(incident.id, "grace_over", {"still_firing": True})
            await self.rec.set_phase(incident, Phase.ROLLING_BACK)
            self.rollbacks.start(incident)
        elif not unsure:
            await self.close(incident, "the breach was gone when the grace period ended")

    async def _stable_over(self, incident: Incident, firing: bool, unsure: bool) -> None:
        if firing:
            await escalate(self.rec, incident, "breaching again while monitoring")
        elif not unsure:
            why = (
                "stable after the rollback"
                if incident.state.rolled_back
                else "stable: the breach is over"
            )
            await self.close(incident, why)

    def _evidence(self, incident: Incident) -> tuple[bool, bool, bool]:
        """Firing; unsure (pending: breaching, not yet for long enough; or blind: no
        evidence), no reason to act nor to call it over; healthy: evidence from every
        rule of the incident that the breach is over, even when no 'resolved' decision
        will come (the engine restarted, or went blind, since the rule fired)."""
        states = states_of(self.engine, incident)
        moved = incident.state.evidence_after  # a clock jump's; else the opening
        after = incident.record.opened_at if moved is None else moved
        firing = any(s.state is State.FIRING for s in states)
        unsure = any(s.state in NOT_OVER for s in states)
        healthy = bool(states) and all(
            s.state is State.INACTIVE and s.at is not None and s.at > after for s in states
        )
        return firing, unsure, healthy

    async def _retry_refused(self, incident: Incident) -> None:
        """A rollback refused because the store failed (the intent could not be
        written, so nothing was done), while the rule still fires: try again, judged
        as a fresh one. The event is the first write: while the store still fails it
        raises, and the next tick tries again."""
        await self.rec.event(
            incident.id,
            "retrying",
            {"why": "the rollback was refused (state store failed); the rule still fires"},
        )
        incident.state.refused_at = incident.state.blocked = None
        incident.record.phase = Phase.ROLLING_BACK.value
        # Started before the phase is saved: if that write fails, the rollback's own
        # refusal marks the incident for another retry.
        self.rollbacks.start(incident)
        await self.rec.set_phase(incident, Phase.ROLLING_BACK)

    def _silence_lifted(self, incident: Incident) -> bool:
        """A rollback held only by silences, none of which holds any more."""
        blocked = incident.state.blocked
        if blocked is None or blocked.by is not Hold.SILENCED:
            return False
        decision = incident.decision
        return all(
            self.silences.match(decision.rule, decision.severity, target) is None
            for target in incident.record.targets
        )

    async def rule_resolved(self, incident: Incident, why: str) -> None:
        rec = self.rec
        phase = incident.phase
        await rec.event(incident.id, "rule_resolved", {"why": why})
        if phase is Phase.GRACE:
            await rec.event(incident.id, "fixed_within_grace", {})
            await self.close(incident, "fixed within the grace period; no rollback")
        elif phase is Phase.WATCHING:
            await self.close(incident, "the rule stopped breaching")
        elif phase is Phase.ESCALATED:
            stable_for = rec.ruleset.after_rollback.stable_for
            incident.state.stable_until = Instant(rec.clock.now() + stable_for)
            await rec.set_phase(incident, Phase.MONITORING)

    async def close(self, incident: Incident, why: str) -> None:
        """Closed: resolved with the all-clear, or, escalated (a failed or interrupted
        manual rollback), closed as escalated: humans own it, nothing says resolved."""
        rec = self.rec
        now = rec.clock.now()
        incident.record.closed_at = now
        if incident.phase is Phase.ESCALATED:
            await rec.save(incident)
            await rec.event(incident.id, "closed_unresolved", {"why": why})
        else:
            await rec.notify(incident, EventKind.RESOLVED, phase="resolved", message=why)
            await rec.set_phase(incident, Phase.RESOLVED)
            await rec.event(incident.id, "resolved", {"why": why})
        rec.open.pop(incident.id, None)
        if self.postmortem_dir is not None:
            path = await write_draft(rec.store, incident.id, self.postmortem_dir)
            log.info("post-mortem draft written", incident=incident.id, path=str(path))
        # Closing marks nothing healthy: being live when an incident closes is no
        # evidence (a dry run, a failed rollback). The version ledger records a passed
        # verification (verification.py) or a healthy run (the manager's tick).
