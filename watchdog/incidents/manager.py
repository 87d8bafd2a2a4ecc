"""The incident manager, the package's public face: decisions open, join and resolve
incidents; ``tick`` and ``clock_jumped`` move their deadlines, under one lock. The
phases after opening, rollbacks, guards, verification, the ladder and the restore
after a restart are its helpers' jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.actions.playbook import Playbook
from watchdog.clock import Clock
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.evaluator import State
from watchdog.errors import StoreError
from watchdog.incidents.escalation import count_refused, escalate, refused
from watchdog.incidents.guards import ClockStep, record_clock_step
from watchdog.incidents.lifecycle import Lifecycle
from watchdog.incidents.model import (
    NOT_OVER,
    RESUME_AFTER_S,
    EngineView,
    Incident,
    Phase,
    log,
    manual_decision,
    rules_of,
    states_of,
)
from watchdog.incidents.outbound import Outbound
from watchdog.incidents.recorder import Recorder
from watchdog.incidents.restore import restore as restore_incidents
from watchdog.incidents.rollback import Rollbacks
from watchdog.incidents.silence import Silences
from watchdog.incidents.state import IncidentState, Instant, deadline
from watchdog.incidents.verification import baselines
from watchdog.rules.load import RuleSet
from watchdog.store.base import IncidentRecord, Store
from watchdog.units import format_duration, iso


@dataclass(frozen=True, slots=True)
class _Due:
    """A moment to try again: passed when either clock says so (a wall-clock step
    backwards must not hold a retry for an hour)."""

    wall: float
    mono: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> _Due:
        return cls(clock.now() + seconds, clock.monotonic() + seconds)

    def passed(self, clock: Clock) -> bool:
        return clock.now() >= self.wall or clock.monotonic() >= self.mono


class IncidentManager:
    """Turns decisions into incidents and actions; ``tick`` drives its deadlines."""

    def __init__(
        self,
        ruleset: Callable[[], RuleSet],
        engine: EngineView,
        playbook: Playbook,
        store: Store,
        silences: Silences,
        clock: Clock,
        dry_run: bool = False,
        on_event: Callable[[str, str, dict[str, Any]], None] | None = None,
        postmortem_dir: Path | None = None,
    ) -> None:
        self._ruleset = ruleset
        self.engine = engine
        self.store = store
        self.silences = silences
        self.clock = clock
        self.open: dict[str, Incident] = {}
        # Per rule: a decision refused because the store failed before an incident was
        # written, and when to try it again while the rule still fires.
        self._refused: dict[str, tuple[Decision, _Due]] = {}
        self._lock = asyncio.Lock()
        self._rec = Recorder(ruleset, playbook, store, clock, self.open, dry_run, on_event)
        self._rollbacks = Rollbacks(self._rec, engine, silences, self._lock)
        self._lifecycle = Lifecycle(self._rec, engine, self._rollbacks, silences, postmortem_dir)
        self.outbound = Outbound(self._rec)  # silences told, open incidents re-sent
        silences.on_change = self.outbound.silence_changed

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset()

    @property
    def playbook(self) -> Playbook:
        return self._rec.playbook

    def replace_playbook(self, playbook: Playbook) -> None:
        """A reload's new actions: the one reference every helper reads (the recorder's)."""
        self._rec.playbook = playbook

    @property
    def on_event(self) -> Callable[[str, str, dict[str, Any]], None] | None:
        """Called with every event recorded (the demo sets it after construction)."""
        return self._rec.on_event

    @on_event.setter
    def on_event(self, value: Callable[[str, str, dict[str, Any]], None] | None) -> None:
        self._rec.on_event = value

    async def restore(self) -> None:
        """Load open incidents and reconcile actions left at 'intent' by a crash."""
        await restore_incidents(self._rec, self._rollbacks, self._lifecycle)

    # --- decisions -----------------------------------------------------------------

    async def on_decision(self, decision: Decision) -> None:
        async with self._lock:
            self._refused.pop(decision.rule, None)  # a newer decision replaces it
            try:
                await self._on_decision(decision)
            except StoreError as exc:
                # Nothing unrecorded is done (no intent row, no action), but people
                # must hear that the watchdog is not acting.
                if decision.kind is DecisionKind.ROLLBACK:
                    count_refused(self.playbook)
                if decision.kind in (DecisionKind.ROLLBACK, DecisionKind.NOTIFY):
                    self._refused[decision.rule] = (
                        decision,
                        _Due.after(self.clock, RESUME_AFTER_S),
                    )
                await refused(
                    self._rec, decision, None, f"refused to act: state store failed ({exc})"
                )

    async def _retry_refused(self) -> None:
        """Decisions refused for a store failure, taken again while their rule still
        fires (a breach at a full disk must not be forgotten once the disk has room);
        one whose rule stopped firing is dropped. Told once, at the refusal."""
        for rule, (decision, due) in list(self._refused.items()):
            state = self.engine.states.get(rule)
            if state is None or state.state is not State.FIRING:
                self._refused.pop(rule)
                continue
            if not due.passed(self.clock):
                continue
            try:
                await self._on_decision(decision)
            except StoreError as exc:
                self._refused[rule] = (decision, _Due.after(self.clock, RESUME_AFTER_S))
                log.error(
                    "state store still failing; the decision waits", rule=rule, error=str(exc)
                )
            else:
                self._refused.pop(rule)
                log.info("a refused decision was taken once the store worked", rule=rule)

    async def _on_decision(self, decision: Decision) -> None:
        if decision.kind is DecisionKind.BLIND:
            await self._blind(decision)
            return
        incident = self._incident_for(decision)
        if decision.kind is DecisionKind.RESOLVED:
            # Over only when every rule in the incident is (one that joined may not be).
            if (
                incident is not None
                and decision.rule in rules_of(incident)
                and not any(s.state in NOT_OVER for s in states_of(self.engine, incident))
            ):
                await self._lifecycle.rule_resolved(incident, decision.why)
            return
        if incident is None:
            await self._open(decision)
            return
        await self._join(incident, decision)

    def _incident_for(self, decision: Decision) -> Incident | None:
        for incident in self.open.values():
            if incident.record.rule == decision.rule:
                return incident
            if set(decision.targets) & set(incident.record.targets):
                return incident
        return None

    async def _unique_id(self, now: float, rule: str) -> str:
        """``20261128T194900Z-error-rate``; a second incident of the same rule in the
        same second (a dry run, then the real thing) gets ``-2``, ``-3``, ...; unique in
        the whole store (a clock step back can make an old second current again), each
        candidate one primary-key lookup."""
        base = f"{iso(now).replace(':', '').replace('-', '')}-{rule}"
        candidate, n = base, 1
        while candidate in self.open or await self.store.has_incident(candidate):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    async def _new_incident(self, decision: Decision, phase: Phase) -> Incident:
        now = self.clock.now()
        incident_id = await self._unique_id(now, decision.rule)
        record = IncidentRecord(
            id=incident_id,
            opened_at=now,
            rule=decision.rule,
            severity=decision.severity,
            phase=phase.value,
            targets=list(decision.targets),
        )
        incident = Incident(record, IncidentState(decision))
        # Pre-incident baselines now, while the samples before the breach are in the
        # window (a restart before the rollback would lose them).
        incident.state.baselines = baselines(self.ruleset, self.engine.windows, incident)
        await self._rec.save(incident)
        self.open[incident_id] = incident  # only an incident the store holds
        await self._rec.event(incident_id, "detected", {"decision": decision.to_dict()})
        return incident

    async def _open(self, decision: Decision) -> None:
        rec = self._rec
        now = self.clock.now()
        incident = await self._new_incident(decision, Phase.WATCHING)
        incident_id = incident.id
        policy = self.ruleset.severities[decision.severity]
        rollback = decision.kind is DecisionKind.ROLLBACK
        kind = EventKind.OPENED if rollback else EventKind.NOTICE
        if rollback and policy.grace <= 0:
            # At once: a notification being retried (Slack down, a rate-limited status
            # page) must not hold the rollback up; it is sent alongside.
            await rec.set_phase(incident, Phase.ROLLING_BACK)
            self._rollbacks.start(incident)
            try:
                await rec.notify(incident, kind, phase="investigating")
            except StoreError as exc:  # the rollback journals (or refuses) on its own
                log.error("state store failed", incident=incident.id, error=str(exc))
            return
        await rec.notify(incident, kind, phase="investigating")
        if rollback:  # after a grace period
            incident.state.grace_until = Instant(now + policy.grace)
            await rec.set_phase(incident, Phase.GRACE)
            await rec.event(
                incident_id,
                "grace",
                {
                    "until": iso(now + policy.grace),
                    "why": f"severity {decision.severity}: wait "
                    f"{format_duration(policy.grace)} for a quick fix",
                },
            )
        elif policy.escalate_after is not None:
            incident.state.escalate_at = Instant(now + policy.escalate_after)
            await rec.set_phase(incident, Phase.WATCHING)

    async def _join(self, incident: Incident, decision: Decision) -> None:
        rec = self._rec
        await rec.event(incident.id, "joined", {"decision": decision.to_dict()})
        if decision.rule not in rules_of(incident):
            incident.state.joined_rules.append(decision.rule)
            await rec.save(incident)
        phase = incident.phase
        if decision.kind is not DecisionKind.ROLLBACK:
            return
        policy = self.ruleset.severities[decision.severity]
        grace_until = deadline(incident.state.grace_until)
        if phase is Phase.GRACE and self.clock.now() + policy.grace < grace_until:
            # A more urgent rule (say critical during a high one's grace) does not wait
            # for the grace of the less urgent one.
            self._adopt(incident, decision)
            if policy.grace <= 0:
                await rec.event(incident.id, "grace_over", {"why": f"{decision.rule} fired"})
                await rec.set_phase(incident, Phase.ROLLING_BACK)
                self._rollbacks.start(incident)
            else:
                incident.state.grace_until = Instant(self.clock.now() + policy.grace)
                await rec.set_phase(incident, Phase.GRACE)
            return
        if phase in (Phase.VERIFYING, Phase.MONITORING) and incident.state.rolled_back:
            # The rollback did not help: humans, never a second rollback.
            await escalate(rec, incident, f"{decision.rule} fired again after the rollback")
            return
        if phase is Phase.WATCHING and incident.state.blocked is None:
            # A notify-only incident became a rollback one (say medium, then critical).
            self._adopt(incident, decision)
            await rec.set_phase(incident, Phase.ROLLING_BACK)
            self._rollbacks.start(incident)

    @staticmethod
    def _adopt(incident: Incident, decision: Decision) -> None:
        """The joining decision now drives the incident (severity, correlation, why)."""
        incident.record.severity = decision.severity
        incident.state.decision = decision

    async def _blind(self, decision: Decision) -> None:
        rec = self._rec
        incident = self._incident_for(decision)
        incident_id = incident.id if incident is not None else f"blind-{decision.rule}"
        await rec.event(incident_id, "blind", {"decision": decision.to_dict()})
        event = IncidentEvent(
            kind=EventKind.BLIND,
            incident_id=incident_id,
            decision=decision,
            occurred_at=self.clock.now(),
            message=decision.why,
        )
        names = rec.notifier_names(decision.rule)
        results = await self.playbook.notify(event, names, rec.dry(decision))
        await rec.record_results(incident_id, results)

    async def manual_rollback(self, targets: list[str], reason: str, author: str) -> Incident:
        """The runbook's manual rollback through the same path as an automatic one:
        an incident, the journal, the playbook, purges and notifications. A person
        decided, so deploy correlation and cooldowns do not apply; the journal's
        one-rollback-per-target-per-incident does."""
        decision = manual_decision(targets, reason, author, self.clock.now())
        async with self._lock:
            incident = await self._new_incident(decision, Phase.ROLLING_BACK)
            await self._rec.notify(
                incident, EventKind.OPENED, phase="investigating", message=decision.why
            )
        await self._rollbacks.run(incident, resumed=False)
        return incident

    async def close(self, incident: Incident, why: str) -> None:
        async with self._lock:
            if incident.id in self.open:
                await self._lifecycle.close(incident, why)

    async def drain(self) -> None:
        await self._rollbacks.drain()
        await self._rec.ledgers.drain()
        await self.outbound.drain()

    async def stand_down(self) -> None:
        """Another replica leads now: stop the actions in flight (their intents are in
        the journal; the new leader reconciles them) and forget the open incidents
        (the store has them; ``restore`` reads them back on re-election)."""
        await self._rollbacks.cancel()
        await self.outbound.cancel()
        self.open.clear()
        self._refused.clear()  # a follower retries nothing

    # --- deadlines -----------------------------------------------------------------

    async def clock_jumped(self, seconds: float) -> None:
        """The wall clock jumped by ``seconds`` (an NTP step, a resumed VM; negative:
        backwards). Every open incident's deadlines move with it, so none comes an hour
        early or an hour late, and evidence seen after the jump counts as after the
        incident opened (else a jump back would hold a verification for the hour). The
        step is recorded: the cooldown and the hourly cap measure real time across it."""
        async with self._lock:
            try:  # the guards measure the journal's ages across it, after a restart too
                await record_clock_step(self.store, ClockStep(self.clock.now(), seconds))
            except StoreError as exc:
                log.error("state store failed; a clock step is not recorded", error=str(exc))
            for incident in list(self.open.values()):
                state = incident.state
                if state.evidence_after is None:
                    state.evidence_after = Instant(incident.record.opened_at)
                state.shift(seconds)
                try:
                    await self._rec.save(incident)
                    await self._rec.event(incident.id, "clock_jumped", {"seconds": seconds})
                except StoreError as exc:
                    log.error("state store failed", incident=incident.id, error=str(exc))

    def next_deadline(self) -> float:
        """The earliest moment a ``tick`` may do anything but at a decision or a rule's
        change of state (a replay ticks only then); ``now``: every tick may."""
        now = self.clock.now()
        if self._refused or self.outbound.refreshes():
            return now
        found = self._rec.ledgers.next_healthy_check(self.ruleset.guards.healthy_after)
        for incident in self.open.values():
            found = min(found, self._lifecycle.next_deadline(incident, now))
        return found

    async def tick(self) -> None:
        """Advance deadlines (grace, verification, stable, escalation) and healthy runs."""
        rules = self.ruleset
        self._rec.ledgers.healthy_tick(
            self.clock.now(),
            self.engine.states,
            rules.guards.healthy_after,
            rules.evidence_gap,
            self.engine.unsettled_at,
        )
        async with self._lock:
            await self._retry_refused()
            now = self.clock.now()
            for incident in list(self.open.values()):
                try:
                    await self._lifecycle.tick_one(incident, now)
                except StoreError as exc:  # its deadlines wait; the next tick tries again
                    log.error(
                        "state store failed; the incident waits",
                        incident=incident.id,
                        error=str(exc),
                    )
            self.outbound.refresh()  # after the deadlines: a closed incident is not renewed
