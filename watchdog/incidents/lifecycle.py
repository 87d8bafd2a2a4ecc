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
        data = incident.data
        firing, unsure, healthy = self._evidence(incident)
        if phase in (Phase.GRACE, Phase.WATCHING, Phase.ESCALATED) and healthy:
            await self.rule_resolved(incident, "the rule is no longer breaching")
        elif phase is Phase.GRACE and now >= data["grace_until"]:
            await self._grace_over(incident, firing, unsure)
        elif phase is Phase.WATCHING and data.get("escalate_at") and now >= data["escalate_at"]:
            if firing:
                data.pop("escalate_at")
                how_long = format_duration(now - incident.record.opened_at)
                await escalate(rec, incident, f"still breaching after {how_long}")
        elif phase is Phase.WATCHING and firing and self._silence_lifted(incident):
            await rec.event(incident.id, "silence_ended", {})
            incident.data.pop("blocked")
            await rec.set_phase(incident, Phase.ROLLING_BACK)
            self.rollbacks.start(incident)
        elif (
            phase is Phase.ESCALATED
            and firing
            and now >= data.get("refused_at", math.inf) + RESUME_AFTER_S
        ):
            await self._retry_refused(incident)
        elif phase is Phase.ROLLING_BACK and now >= data.get("resume_at", math.inf):
            data.pop("resume_at")
            self.rollbacks.start(incident, resumed=True)
        elif phase is Phase.VERIFYING:
            await verify(rec, self.engine.windows, incident, now)
        elif phase is Phase.MONITORING and now >= data.get("stable_until", math.inf):
            await self._stable_over(incident, firing, unsure)
        if incident.phase is Phase.ESCALATED:
            await ladder(rec, incident, now)

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
                if incident.data.get("rolled_back")
                else "stable: the breach is over"
            )
            await self.close(incident, why)

    def _evidence(self, incident: Incident) -> tuple[bool, bool, bool]:
        """Firing; unsure (pending: breaching, not yet for long enough; or blind: no
        evidence), no reason to act nor to call it over; healthy: evidence from every
        rule of the incident that the breach is over, even when no 'resolved' decision
        will come (the engine restarted, or went blind, since the rule fired)."""
        states = states_of(self.engine, incident)
        firing = any(s.state is State.FIRING for s in states)
        unsure = any(s.state in NOT_OVER for s in states)
        healthy = bool(states) and all(
            s.state is State.INACTIVE
            and s.at is not None
            and s.at > incident.data.get("evidence_after", incident.record.opened_at)
            for s in states
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
        incident.data.pop("refused_at", None)
        incident.data.pop("blocked", None)
        incident.record.phase = Phase.ROLLING_BACK.value
        # Started before the phase is saved: if that write fails, the rollback's own
        # refusal marks the incident for another retry.
        self.rollbacks.start(incident)
        await self.rec.set_phase(incident, Phase.ROLLING_BACK)

    def _silence_lifted(self, incident: Incident) -> bool:
        """A rollback held only by silences, none of which holds any more."""
        if incident.data.get("blocked") != {"silenced": True}:
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
            await rec.set_phase(
                incident,
                Phase.MONITORING,
                stable_until=rec.clock.now() + rec.ruleset.after_rollback.stable_for,
            )

    async def close(self, incident: Incident, why: str) -> None:
        """Closed: resolved with the all-clear, or, escalated (a failed or interrupted
        manual rollback), closed as escalated: humans own it, nothing says resolved."""
        rec = self.rec
        now = rec.clock.now()
        incident.record.closed_at = now
        if incident.phase is Phase.ESCALATED:
            await rec.store.save_incident(incident.record)
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
