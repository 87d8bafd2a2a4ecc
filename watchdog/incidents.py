"""Incidents: what the watchdog does with a decision, safely.

A firing rule opens an incident (or joins the open one for the same targets). The
severity matrix decides: ``critical`` rolls back at once; ``high`` waits a grace
period and rolls back only if the breach is still there; ``medium`` notifies and
escalates if it lasts; ``low`` notifies. Before any rollback:

- deploy correlation: the live deploy must have gone live before the breach began
  and be younger than ``max_deploy_age``; otherwise a rollback would not help, so
  notify and escalate instead;
- guards: one automatic rollback per target per incident (the journal key), a
  cooldown per target, a global cap per hour;
- silences: a silenced action is recorded and notified as "would have rolled
  back", never taken.

After a rollback: purge, verify (below a value / back to the pre-incident baseline
within a time), then Monitoring, Resolved after a stable period and the all-clear;
not verified escalates along the ladder. Never a second rollback.

Every step is an event in the store; deadlines live in the incident's data, so a
restarted watchdog picks the incident up where it was. Time comes from the clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog

from watchdog.actions.base import ActionResult, RollbackPlan, TargetState
from watchdog.clock import Clock, iso
from watchdog.decision import Decision, DecisionKind
from watchdog.errors import ActionError, StoreError
from watchdog.evaluator import RuleState, State
from watchdog.notify.event import EventKind, IncidentEvent, StatusPhase
from watchdog.playbook import Playbook, PlaybookOutcome
from watchdog.postmortem import write_draft
from watchdog.rules import RuleSet
from watchdog.silence import Silences, describe
from watchdog.store import EventRecord, IncidentRecord, Store
from watchdog.units import format_duration, format_value
from watchdog.window import SignalWindow

log = structlog.get_logger("watchdog.incidents")

# A rule in one of these states keeps its incident open: breaching, or unknown.
_NOT_OVER = (State.FIRING, State.PENDING, State.BLIND)
# After the store failed behind a playbook that ran: how soon to try to resume it.
RESUME_AFTER_S = 15.0
# An incident's wall-clock times, moved with the wall clock when it jumps.
_CLOCK_FIELDS = (
    "grace_until",
    "escalate_at",
    "verify_started",
    "stable_until",
    "escalated_at",
    "rolled_back_at",
    "resume_at",
    "evidence_after",
)


class Phase(StrEnum):
    GRACE = "grace"  # high: waiting for a quick fix before rolling back
    WATCHING = "watching"  # notified; watching (notify-only, blocked or silenced rollback)
    ROLLING_BACK = "rolling_back"
    VERIFYING = "verifying"
    MONITORING = "monitoring"  # verified (or recovered); resolves after stable_for
    ESCALATED = "escalated"  # humans own it; the ladder goes on
    RESOLVED = "resolved"


class EngineView(Protocol):
    """What the incident manager reads from the engine (never writes)."""

    states: dict[str, RuleState]
    windows: dict[str, SignalWindow]


@dataclass
class Incident:
    record: IncidentRecord
    decision: Decision

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def phase(self) -> Phase:
        return Phase(self.record.phase)

    @property
    def data(self) -> dict[str, Any]:
        return self.record.data


def decision_from(data: Mapping[str, Any]) -> Decision:
    fields = {k: v for k, v in data.items() if not k.endswith(("_iso", "_text"))}
    fields["kind"] = DecisionKind(fields["kind"])
    fields["targets"] = tuple(fields["targets"])
    return Decision(**fields)


def rollback_message(decision: Decision) -> str:
    """The ``workers/message`` annotation: why, in at most 100 bytes."""
    if decision.extra.get("manual"):
        text = f"rollback-watchdog manual: {decision.extra.get('reason', '')}"
        return text.encode()[:100].decode(errors="ignore")
    op = ">" if decision.comparison == "above" else "<"
    text = (
        f"rollback-watchdog: {decision.rule} {decision.observed_text} {op} "
        f"{decision.threshold_text} for {format_duration(decision.window_s)}"
    )
    return text.encode()[:100].decode(errors="ignore")


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
        self.playbook = playbook
        self.store = store
        self.silences = silences
        self.clock = clock
        self.dry_run = dry_run
        self.on_event = on_event
        self.postmortem_dir = postmortem_dir
        self.open: dict[str, Incident] = {}
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()
        self._acted: set[str] = set()  # incidents whose playbook has run in this process

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset()

    # --- restore -------------------------------------------------------------------

    async def restore(self) -> None:
        """Load open incidents and reconcile actions left at 'intent' by a crash."""
        for record in await self.store.open_incidents():
            self.open[record.id] = Incident(record, decision_from(record.data["decision"]))
        for action in await self.store.unfinished_actions():
            await self._reconcile(action.incident_id, action.kind, action.target, action.intent)
        for incident in list(self.open.values()):
            if incident.phase is Phase.ROLLING_BACK:
                # The process died mid-playbook: finish it (journalled steps are not redone).
                self._spawn(self._rollback_now(incident, resumed=True))
        if self.open:
            log.info("incidents restored", open=sorted(self.open))

    async def _reconcile(
        self, incident_id: str, kind: str, target: str, intent: dict[str, Any]
    ) -> None:
        """An action journalled as intent but never finished: read the remote state."""
        if kind == "rollback" and target in self.playbook.targets:
            try:
                state = (await self.playbook.inspect([target]))[target]
            except StoreError:
                return
            if (
                isinstance(state, TargetState)
                and state.live is not None
                and (state.live.version == intent.get("to"))
            ):
                await self.store.journal_outcome(
                    f"{incident_id}/{kind}/{target}",
                    "done",
                    {
                        "ok": True,
                        "detail": f"completed before a restart: live is {intent['to']}",
                        "data": {"reconciled": True},
                    },
                    self.clock.now(),
                )
                await self._event(
                    incident_id, "reconciled", {"target": target, "live": intent.get("to")}
                )
                log.info(
                    "reconciled a rollback that finished before the restart",
                    incident=incident_id,
                    target=target,
                )
            # Otherwise it stays 'intent': the resumed playbook re-runs it, and the
            # target re-reads what is live before it posts anything.

    # --- decisions -----------------------------------------------------------------

    async def on_decision(self, decision: Decision) -> None:
        async with self._lock:
            try:
                await self._on_decision(decision)
            except StoreError as exc:
                # Nothing unrecorded is done (no intent row, no action), but people
                # must hear that the watchdog is not acting.
                if decision.kind is DecisionKind.ROLLBACK:
                    self._count_refused()
                await self._refused(decision, None, f"refused to act: state store failed ({exc})")

    async def _on_decision(self, decision: Decision) -> None:
        if decision.kind is DecisionKind.BLIND:
            await self._blind(decision)
            return
        incident = self._incident_for(decision)
        if decision.kind is DecisionKind.RESOLVED:
            # Over only when every rule in the incident is (one that joined may not be).
            if (
                incident is not None
                and decision.rule in self._rules_of(incident)
                and not any(s.state in _NOT_OVER for s in self._states_of(incident))
            ):
                await self._rule_resolved(incident, decision.why)
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
        same second (a dry run, then the real thing) gets ``-2``, ``-3``, ..."""
        base = f"{iso(now).replace(':', '').replace('-', '')}-{rule}"
        taken = {i.id for i in await self.store.recent_incidents(50)} | set(self.open)
        candidate, n = base, 1
        while candidate in taken:
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
            data={"decision": decision.to_dict(), "statuspage": {}},
        )
        incident = Incident(record, decision)
        # Pre-incident baselines now, while the samples before the breach are in the
        # window (a restart before the rollback would lose them).
        record.data["baselines"] = self._baselines(incident)
        await self.store.save_incident(record)
        self.open[incident_id] = incident  # only an incident the store holds
        await self._event(incident_id, "detected", {"decision": decision.to_dict()})
        return incident

    async def _open(self, decision: Decision) -> None:
        now = self.clock.now()
        incident = await self._new_incident(decision, Phase.WATCHING)
        incident_id = incident.id
        policy = self.ruleset.severities[decision.severity]
        rollback = decision.kind is DecisionKind.ROLLBACK
        kind = EventKind.OPENED if rollback else EventKind.NOTICE
        if rollback and policy.grace <= 0:
            # At once: a notification being retried (Slack down, a rate-limited status
            # page) must not hold the rollback up; it is sent alongside.
            await self._set_phase(incident, Phase.ROLLING_BACK)
            self._spawn(self._rollback_now(incident))
            try:
                await self._notify(incident, kind, phase="investigating")
            except StoreError as exc:  # the rollback journals (or refuses) on its own
                log.error("state store failed", incident=incident.id, error=str(exc))
            return
        await self._notify(incident, kind, phase="investigating")
        if rollback:  # after a grace period
            await self._set_phase(incident, Phase.GRACE, grace_until=now + policy.grace)
            await self._event(
                incident_id,
                "grace",
                {
                    "until": iso(now + policy.grace),
                    "why": f"severity {decision.severity}: wait "
                    f"{format_duration(policy.grace)} for a quick fix",
                },
            )
        elif policy.escalate_after is not None:
            await self._set_phase(incident, Phase.WATCHING, escalate_at=now + policy.escalate_after)

    def _rules_of(self, incident: Incident) -> list[str]:
        """The rule that opened the incident and those that joined it."""
        return [incident.record.rule, *incident.data.get("joined_rules", [])]

    def _states_of(self, incident: Incident) -> list[RuleState]:
        states = (self.engine.states.get(rule) for rule in self._rules_of(incident))
        return [state for state in states if state is not None]

    async def _join(self, incident: Incident, decision: Decision) -> None:
        await self._event(incident.id, "joined", {"decision": decision.to_dict()})
        if decision.rule not in self._rules_of(incident):
            incident.data.setdefault("joined_rules", []).append(decision.rule)
            await self.store.save_incident(incident.record)
        phase = incident.phase
        if decision.kind is not DecisionKind.ROLLBACK:
            return
        policy = self.ruleset.severities[decision.severity]
        if phase is Phase.GRACE and self.clock.now() + policy.grace < incident.data["grace_until"]:
            # A more urgent rule (say critical during a high one's grace) does not wait
            # for the grace of the less urgent one.
            self._adopt(incident, decision)
            if policy.grace <= 0:
                await self._event(incident.id, "grace_over", {"why": f"{decision.rule} fired"})
                await self._set_phase(incident, Phase.ROLLING_BACK)
                self._spawn(self._rollback_now(incident))
            else:
                await self._set_phase(
                    incident, Phase.GRACE, grace_until=self.clock.now() + policy.grace
                )
            return
        if phase in (Phase.VERIFYING, Phase.MONITORING) and incident.data.get("rolled_back"):
            # The rollback did not help: humans, never a second rollback.
            await self._escalate(incident, f"{decision.rule} fired again after the rollback")
            return
        if phase is Phase.WATCHING and not incident.data.get("blocked"):
            # A notify-only incident became a rollback one (say medium, then critical).
            self._adopt(incident, decision)
            await self._set_phase(incident, Phase.ROLLING_BACK)
            self._spawn(self._rollback_now(incident))

    @staticmethod
    def _adopt(incident: Incident, decision: Decision) -> None:
        """The joining decision now drives the incident (severity, correlation, why)."""
        incident.record.severity = decision.severity
        incident.decision = decision
        incident.data["decision"] = decision.to_dict()

    async def _rule_resolved(self, incident: Incident, why: str) -> None:
        phase = incident.phase
        await self._event(incident.id, "rule_resolved", {"why": why})
        if phase is Phase.GRACE:
            await self._event(incident.id, "fixed_within_grace", {})
            await self._close(incident, "fixed within the grace period; no rollback")
        elif phase is Phase.WATCHING:
            await self._close(incident, "the rule stopped breaching")
        elif phase is Phase.ESCALATED:
            await self._set_phase(
                incident, Phase.MONITORING, stable_until=self.clock.now() + self._stable_for()
            )

    async def _blind(self, decision: Decision) -> None:
        incident = self._incident_for(decision)
        incident_id = incident.id if incident is not None else f"blind-{decision.rule}"
        await self._event(incident_id, "blind", {"decision": decision.to_dict()})
        event = IncidentEvent(
            kind=EventKind.BLIND,
            incident_id=incident_id,
            decision=decision,
            occurred_at=self.clock.now(),
            message=decision.why,
        )
        names = self._notifier_names(decision.rule)
        results = await self.playbook.notify(event, names, self._dry(decision))
        await self._record_results(incident_id, results)

    async def manual_rollback(self, targets: list[str], reason: str, author: str) -> Incident:
        """The runbook's manual rollback through the same path as an automatic one:
        an incident, the journal, the playbook, purges and notifications. A person
        decided, so deploy correlation and cooldowns do not apply; the journal's
        one-rollback-per-target-per-incident does."""
        now = self.clock.now()
        decision = Decision(
            kind=DecisionKind.ROLLBACK,
            rule="manual",
            severity="critical",
            signal="manual",
            targets=tuple(targets),
            observed=math.nan,
            threshold=math.nan,
            comparison="above",
            unit="number",
            window_s=0.0,
            sample_count=0,
            first_breach_at=now,
            decided_at=now,
            why=f"manual rollback by {author}: {reason}",
            extra={"manual": True, "reason": reason, "author": author},
        )
        async with self._lock:
            incident = await self._new_incident(decision, Phase.ROLLING_BACK)
            await self._notify(
                incident, EventKind.OPENED, phase="investigating", message=decision.why
            )
        await self._rollback(incident, resumed=False)
        return incident

    async def close(self, incident: Incident, why: str) -> None:
        async with self._lock:
            if incident.id in self.open:
                await self._close(incident, why)

    # --- rollback ------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def stand_down(self) -> None:
        """Another replica leads now: stop the actions in flight (their intents are in
        the journal; the new leader reconciles them) and forget the open incidents
        (the store has them; ``restore`` reads them back on re-election)."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.open.clear()

    def _dry(self, decision: Decision) -> bool:
        return self.dry_run or decision.dry_run

    async def _rollback_now(self, incident: Incident, resumed: bool = False) -> None:
        try:
            await self._rollback(incident, resumed)
        except StoreError as exc:
            if resumed or incident.id in self._acted:
                await self._store_failed_after_acting(incident, exc)
                return
            # Refuse to act unrecorded: no intent was written, so nothing was done.
            log.error("state store failed; refusing to act", incident=incident.id, error=str(exc))
            self._count_refused()
            async with self._lock:
                incident.data["blocked"] = f"state store failed: {exc}"
                why = f"refused to act: state store failed ({exc})"
                try:
                    await self._escalate(incident, why)
                except StoreError:
                    await self._refused(incident.decision, incident, why)

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
        incident.data["resume_at"] = self.clock.now() + RESUME_AFTER_S
        if not incident.data.get("store_failure_told"):
            incident.data["store_failure_told"] = True
            why = (
                f"state store failed after the rollback ran ({exc}): its outcome is not "
                "recorded yet; the watchdog resumes from its journal when the store works"
            )
            await self._refused(incident.decision, incident, why)

    def _count_refused(self) -> None:
        metrics = self.playbook.metrics
        if metrics is not None:
            metrics.actions.labels(action="rollback", outcome="refused").inc()

    async def _refused(self, decision: Decision, incident: Incident | None, why: str) -> None:
        """The store failed: tell people straight away, writing nothing. A rollback
        decision pages the first escalation level too: a human must take over."""
        log.error("state store failed; not acting", rule=decision.rule, why=why)
        if decision.kind is DecisionKind.RESOLVED:
            return
        names = self._notifier_names(decision.rule)
        fields: dict[str, Any] = {"message": why}
        if decision.kind is DecisionKind.BLIND:
            kind, fields["message"] = EventKind.BLIND, f"{decision.why}; {why}"
        elif decision.kind is DecisionKind.ROLLBACK and self.ruleset.escalation:
            first = min(self.ruleset.escalation, key=lambda level: level.level)
            names += [name for name in first.notify if name not in names]
            kind = EventKind.ESCALATED
            fields["escalation_level"] = first.level
            fields["escalation_name"] = first.name or f"level {first.level}"
        else:
            kind = EventKind.NOTICE
        event = IncidentEvent(
            kind=kind,
            incident_id=incident.id if incident is not None else f"unrecorded-{decision.rule}",
            decision=decision,
            occurred_at=self.clock.now(),
            **fields,
        )
        await self.playbook.notify(event, names, self._dry(decision))

    async def _rollback(self, incident: Incident, resumed: bool) -> None:
        decision = incident.decision
        dry = self._dry(decision)
        names = [t for t in incident.record.targets if t in self.playbook.targets]
        now = self.clock.now()
        # Resumed after a restart: a target with a journal row keeps the plan that was
        # journalled; what is live now may already be the rollback, and a fresh choice
        # from there would point the other way.
        kind = "would-rollback" if dry else "rollback"
        journalled = {
            a.target: a
            for a in (await self.store.actions(incident.id) if resumed else [])
            if a.kind == kind
        }
        fresh = [n for n in names if n not in journalled]
        healthy = {n: await self.store.healthy_versions(n) for n in fresh}
        states = await self.playbook.inspect(fresh, healthy)
        plans: list[RollbackPlan] = []
        blocked: dict[str, str] = {}
        silenced: dict[str, str] = {}
        held: list[RollbackPlan] = []
        for name in names:
            row = journalled.get(name)
            if row is not None:
                live = str(row.intent.get("from", ""))
                plan = RollbackPlan(
                    name, live, str(row.intent.get("to", "")), str(row.intent.get("reason", ""))
                )
            else:
                state = states[name]
                reason = await self._blocker(incident, name, state, now, resumed)
                if reason is not None:
                    blocked[name] = reason
                    continue
                assert isinstance(state, TargetState)
                assert state.rollback_to is not None
                live = state.live.version if state.live is not None else "live"
                plan = RollbackPlan(
                    name, live, state.rollback_to.version, rollback_message(decision)
                )
            silence = self.silences.match(decision.rule, decision.severity, name)
            if silence is None:
                plans.append(plan)
                continue
            silenced[name] = describe(silence)
            held.append(plan)
            await self._event(
                incident.id,
                "would_rollback",
                {"target": name, "why": silenced[name], "from": live, "to": plan.to_version},
            )
        for name, why in blocked.items():
            await self._event(incident.id, "rollback_blocked", {"target": name, "why": why})
        if silenced:
            # The headline reads "Would have rolled back worker: v3 → v2 (silenced by
            # AUTHOR until TIME: COMMENT)".
            await self._notify(
                incident,
                EventKind.WOULD_ROLLBACK,
                message="; ".join(dict.fromkeys(silenced.values())),
                rolled_back=[(p.target, p.from_version, p.to_version) for p in held],
            )
        if not plans:
            async with self._lock:
                if blocked:
                    incident.data["blocked"] = blocked
                    await self._escalate(
                        incident,
                        "no rollback: " + "; ".join(f"{k}: {v}" for k, v in blocked.items()),
                    )
                else:
                    incident.data["blocked"] = {"silenced": True}
                    await self._set_phase(incident, Phase.WATCHING)
            return
        await self._event(
            incident.id, "rollback_started", {"plans": [p.__dict__ for p in plans], "dry_run": dry}
        )
        notifying = self._notify(
            incident,
            EventKind.ROLLING_BACK,
            phase="identified",
            rolled_back=[(p.target, p.from_version, p.to_version) for p in plans],
            dry=dry,
        )
        outcome = await self.playbook.execute(
            incident.id, plans, self.ruleset.after_rollback.purge, dry, notify=notifying
        )
        self._acted.add(incident.id)  # from here a store failure is not a refusal
        async with self._lock:
            await self._after_rollback(incident, outcome, dry, blocked)

    async def _blocker(
        self,
        incident: Incident,
        name: str,
        state: TargetState | ActionError,
        now: float,
        resumed: bool,
    ) -> str | None:
        """Why this target must not be rolled back now, or None."""
        if isinstance(state, ActionError):
            return f"cannot read the target: {state}"
        if state.rollback_to is None:
            return f"no version to roll back to ({state.why})"
        if state.live is None and state.kind != "github-workflow":
            return "nothing is live"
        decision = incident.decision
        if decision.extra.get("manual"):
            return None
        correlation = self.ruleset.correlation
        # A CI-dispatch target cannot see deploys: it cannot be correlated, only guarded.
        if correlation.enabled and not resumed and state.live is not None:
            breach = decision.first_breach_at or decision.decided_at
            if state.live.created_at > breach:
                return (
                    f"the live deploy went live at {iso(state.live.created_at)}, after the "
                    f"breach began ({iso(breach)}): it cannot have caused it (a fix or a "
                    "rollback by someone else may already be live); not rolling it back"
                )
            age = now - state.live.created_at
            if age > correlation.max_deploy_age:
                return (
                    f"no recent deploy explains the breach: the live deploy is "
                    f"{format_duration(age)} old (max_deploy_age "
                    f"{format_duration(correlation.max_deploy_age)})"
                )
        if resumed:
            return None
        guards = self.ruleset.guards
        recent = await self.store.rollbacks_since(now - guards.cooldown, name)
        others = [r for r in recent if r.incident_id != incident.id]
        if others:
            return (
                f"cooldown: {name} was rolled back at {iso(others[-1].created_at)} "
                f"(cooldown {format_duration(guards.cooldown)})"
            )
        hour = [
            r for r in await self.store.rollbacks_since(now - 3600) if r.incident_id != incident.id
        ]
        if len(hour) >= guards.max_rollbacks_per_hour:
            return (
                f"global cap: {len(hour)} rollbacks in the last hour "
                f"(max_rollbacks_per_hour {guards.max_rollbacks_per_hour})"
            )
        return None

    async def _after_rollback(
        self, incident: Incident, outcome: PlaybookOutcome, dry: bool, blocked: dict[str, str]
    ) -> None:
        await self._record_results(incident.id, outcome.results)
        failed = [r for r in outcome.results if not r.ok and r.action != "notify"]
        if dry:
            await self._event(
                incident.id,
                "would_rollback",
                {"dry_run": True, "results": [r.detail for r in outcome.results]},
            )
            await self._notify(
                incident,
                EventKind.WOULD_ROLLBACK,
                message="dry run: nothing was changed",
                actions=outcome.results,
            )
            await self._set_phase(incident, Phase.WATCHING)
            return
        if not outcome.any_rolled_back:
            await self._escalate(
                incident, "rollback failed: " + "; ".join(f"{r.target}: {r.detail}" for r in failed)
            )
            return
        now = self.clock.now()
        incident.data["rolled_back"] = [list(r) for r in outcome.rolled_back]
        incident.data["rolled_back_at"] = now
        kept = incident.data.get("baselines") or {}
        incident.data["baselines"] = {
            signal: kept.get(signal) if kept.get(signal) is not None else value
            for signal, value in self._baselines(incident).items()
        }
        await self._event(
            incident.id,
            "rollback_finished",
            {"rolled_back": outcome.rolled_back, "failed": [r.detail for r in failed]},
        )
        await self._notify(
            incident,
            EventKind.ROLLED_BACK,
            phase="monitoring",
            rolled_back=outcome.rolled_back,
            actions=outcome.results,
        )
        if failed or blocked:
            await self._escalate(
                incident,
                "part of the rollback failed: "
                + "; ".join(
                    [f"{r.target}: {r.detail}" for r in failed]
                    + [f"{k}: {v}" for k, v in blocked.items()]
                ),
            )
            return
        await self._set_phase(incident, Phase.VERIFYING, verify_started=now)

    def _baselines(self, incident: Incident) -> dict[str, float | None]:
        """Pre-incident values of every baseline check's signal."""
        breach = incident.decision.first_breach_at or incident.record.opened_at
        out: dict[str, float | None] = {}
        for check in self.ruleset.after_rollback.verify:
            if check.baseline:
                window = self.engine.windows.get(check.signal)
                out[check.signal] = window.baseline(breach) if window is not None else None
        return out

    # --- deadlines -----------------------------------------------------------------

    async def clock_jumped(self, seconds: float) -> None:
        """The wall clock jumped by ``seconds`` (an NTP step, a resumed VM; negative:
        backwards). Every open incident's deadlines move with it, so none comes an hour
        early or an hour late, and evidence seen after the jump counts as after the
        incident opened (else a jump back would hold a verification for the hour)."""
        async with self._lock:
            for incident in list(self.open.values()):
                data = incident.data
                data.setdefault("evidence_after", incident.record.opened_at)
                for key in _CLOCK_FIELDS:
                    if isinstance(data.get(key), int | float):
                        data[key] += seconds
                try:
                    await self.store.save_incident(incident.record)
                    await self._event(incident.id, "clock_jumped", {"seconds": seconds})
                except StoreError as exc:
                    log.error("state store failed", incident=incident.id, error=str(exc))

    async def tick(self) -> None:
        """Advance deadlines: grace, verification, stable period, escalation."""
        async with self._lock:
            now = self.clock.now()
            for incident in list(self.open.values()):
                try:
                    await self._tick_one(incident, now)
                except StoreError as exc:  # its deadlines wait; the next tick tries again
                    log.error(
                        "state store failed; the incident waits",
                        incident=incident.id,
                        error=str(exc),
                    )

    async def _tick_one(self, incident: Incident, now: float) -> None:
        phase = incident.phase
        data = incident.data
        states = self._states_of(incident)
        firing = any(s.state is State.FIRING for s in states)
        # Pending (breaching, not yet for long enough) or blind (no evidence): not a
        # reason to act, and not a reason to call it over either. Wait.
        unsure = any(s.state in _NOT_OVER for s in states)
        # Healthy evidence from every rule of the incident: the breach is over even
        # when no 'resolved' decision will come (the engine restarted, or went blind,
        # since the rule fired).
        healthy = bool(states) and all(
            s.state is State.INACTIVE
            and s.at is not None
            and s.at > incident.data.get("evidence_after", incident.record.opened_at)
            for s in states
        )
        if phase in (Phase.GRACE, Phase.WATCHING, Phase.ESCALATED) and healthy:
            await self._rule_resolved(incident, "the rule is no longer breaching")
        elif phase is Phase.GRACE and now >= data["grace_until"]:
            if firing:
                await self._event(incident.id, "grace_over", {"still_firing": True})
                await self._set_phase(incident, Phase.ROLLING_BACK)
                self._spawn(self._rollback_now(incident))
            elif not unsure:
                await self._close(incident, "the breach was gone when the grace period ended")
        elif phase is Phase.WATCHING and data.get("escalate_at") and now >= data["escalate_at"]:
            if firing:
                data.pop("escalate_at")
                await self._escalate(
                    incident,
                    f"still breaching after {format_duration(now - incident.record.opened_at)}",
                )
        elif phase is Phase.WATCHING and firing and self._silence_lifted(incident):
            await self._event(incident.id, "silence_ended", {})
            incident.data.pop("blocked")
            await self._set_phase(incident, Phase.ROLLING_BACK)
            self._spawn(self._rollback_now(incident))
        elif phase is Phase.ROLLING_BACK and now >= data.get("resume_at", math.inf):
            data.pop("resume_at")
            self._spawn(self._rollback_now(incident, resumed=True))
        elif phase is Phase.VERIFYING:
            await self._verify(incident, now)
        elif phase is Phase.MONITORING and now >= data.get("stable_until", math.inf):
            if firing:
                await self._escalate(incident, "breaching again while monitoring")
            elif not unsure:
                why = (
                    "stable after the rollback"
                    if incident.data.get("rolled_back")
                    else "stable: the breach is over"
                )
                await self._close(incident, why)
        if incident.phase is Phase.ESCALATED:
            await self._ladder(incident, now)

    def _silence_lifted(self, incident: Incident) -> bool:
        """A rollback held only by silences, none of which holds any more."""
        if incident.data.get("blocked") != {"silenced": True}:
            return False
        decision = incident.decision
        return all(
            self.silences.match(decision.rule, decision.severity, target) is None
            for target in incident.record.targets
        )

    async def _verify(self, incident: Incident, now: float) -> None:
        data = incident.data
        started = data["verify_started"]
        results: dict[str, str] = data.setdefault("verify", {})
        for check in self.ruleset.after_rollback.verify:
            key = check.signal + (":baseline" if check.baseline else ":below")
            if key in results:
                continue
            goal, text = self._goal(check, data.get("baselines", {}))
            window = self.engine.windows.get(check.signal)
            samples = window.between(started, now + 1e-9) if window is not None else []
            met = next(
                (s for s in samples if s.is_evidence and goal is not None and s.value < goal), None
            )
            signal = self.ruleset.signals.get(check.signal)
            unit = signal.unit if signal is not None else "number"
            if met is not None:
                results[key] = (
                    f"passed: {check.signal} {format_value(met.value, unit)} "
                    f"{text} after {format_duration(met.at - started)}"
                )
            elif now >= started + check.within:
                latest = next((s for s in reversed(samples) if s.is_evidence), None)
                seen = format_value(latest.value, unit) if latest else "no evidence"
                results[key] = (
                    f"failed: {check.signal} was {seen}, not {text} within "
                    f"{format_duration(check.within)}"
                )
        checks = self.ruleset.after_rollback.verify
        if len(results) < len(checks):
            return
        await self._event(incident.id, "verification", {"results": results})
        if all(r.startswith("passed") for r in results.values()):
            await self._notify(
                incident,
                EventKind.VERIFIED,
                phase="monitoring",
                message="; ".join(results.values()),
            )
            await self._set_phase(incident, Phase.MONITORING, stable_until=now + self._stable_for())
        else:
            await self._notify(
                incident,
                EventKind.NOT_VERIFIED,
                phase="identified",
                message="; ".join(results.values()),
            )
            await self._escalate(
                incident,
                "the rollback did not help: "
                + "; ".join(r for r in results.values() if r.startswith("failed")),
            )

    def _goal(self, check: Any, baselines: Mapping[str, float | None]) -> tuple[float | None, str]:
        if check.below is not None:
            return check.below.value, f"below {check.below.text}"
        base = baselines.get(check.signal)
        if base is None:
            return None, "back to a baseline (none was recorded before the breach)"
        goal = base * (1 + check.tolerance)
        return goal, f"back to baseline ({base:.3g} + {check.tolerance:.0%})"

    def _stable_for(self) -> float:
        return self.ruleset.after_rollback.stable_for

    async def _escalate(self, incident: Incident, why: str) -> None:
        if incident.phase is not Phase.ESCALATED:
            await self._set_phase(
                incident, Phase.ESCALATED, escalated_at=self.clock.now(), escalation_sent=0
            )
        await self._event(incident.id, "escalated", {"why": why})
        incident.data["escalation_why"] = why
        await self.store.save_incident(incident.record)
        await self._ladder(incident, self.clock.now())

    async def _ladder(self, incident: Incident, now: float) -> None:
        data = incident.data
        started = data.get("escalated_at", now)
        for level in self.ruleset.escalation:
            if level.level <= data.get("escalation_sent", 0) or now < started + level.after:
                continue
            data["escalation_sent"] = level.level
            await self.store.save_incident(incident.record)
            event = self._incident_event(
                incident,
                EventKind.ESCALATED,
                message=data.get("escalation_why", ""),
                escalation_level=level.level,
                escalation_name=level.name or f"level {level.level}",
            )
            results = await self.playbook.notify(
                event, list(level.notify), self._dry(incident.decision)
            )
            await self._event(
                incident.id, "escalation_level", {"level": level.level, "name": level.name}
            )
            await self._record_results(incident.id, results)

    async def _close(self, incident: Incident, why: str) -> None:
        now = self.clock.now()
        await self._notify(incident, EventKind.RESOLVED, phase="resolved", message=why)
        incident.record.closed_at = now
        await self._set_phase(incident, Phase.RESOLVED)
        await self._event(incident.id, "resolved", {"why": why})
        self.open.pop(incident.id, None)
        if self.postmortem_dir is not None:
            path = await write_draft(self.store, incident.id, self.postmortem_dir)
            log.info("post-mortem draft written", incident=incident.id, path=str(path))
        for name in incident.record.targets:
            await self._maybe_mark_healthy(name, now)

    async def _maybe_mark_healthy(self, target: str, now: float) -> None:
        """After a verified rollback, what is live is a version seen healthy."""
        try:
            state = (await self.playbook.inspect([target]))[target]
        except KeyError:
            return
        if isinstance(state, TargetState) and state.live is not None:
            await self.store.mark_healthy(target, state.live.version, now)

    # --- bookkeeping ---------------------------------------------------------------

    async def _set_phase(self, incident: Incident, phase: Phase, **data: Any) -> None:
        incident.record.phase = phase.value
        incident.data.update(data)
        await self.store.save_incident(incident.record)
        await self._event(incident.id, "phase", {"phase": phase.value})

    async def _event(self, incident_id: str, kind: str, data: dict[str, Any]) -> None:
        await self.store.add_event(EventRecord(incident_id, self.clock.now(), kind, data))
        log.info(
            "incident event",
            incident=incident_id,
            step=kind,
            **{k: v for k, v in data.items() if k in ("why", "phase", "target")},
        )
        if self.on_event is not None:
            self.on_event(incident_id, kind, data)

    async def _record_results(self, incident_id: str, results: list[ActionResult]) -> None:
        for result in results:
            await self._event(
                incident_id,
                "action",
                {
                    "action": result.action,
                    "target": result.target,
                    "ok": result.ok,
                    "would": result.would,
                    "detail": result.detail,
                },
            )
            incident = self.open.get(incident_id)
            page_id = result.data.get("statuspage_incident_id")
            if incident is not None and page_id:
                incident.data.setdefault("statuspage", {})[result.target] = page_id

    def _notifier_names(self, rule_name: str) -> list[str]:
        ruleset = self.ruleset
        try:
            rule = ruleset.rule(rule_name)
        except KeyError:
            return list(ruleset.notify)
        return list(rule.notify if rule.notify is not None else ruleset.notify)

    def _incident_event(self, incident: Incident, kind: EventKind, **fields: Any) -> IncidentEvent:
        return IncidentEvent(
            kind=kind,
            incident_id=incident.id,
            decision=incident.decision,
            occurred_at=self.clock.now(),
            **fields,
        )

    async def _notify(
        self,
        incident: Incident,
        kind: EventKind,
        phase: StatusPhase | None = None,
        message: str = "",
        rolled_back: Any = (),
        actions: Any = (),
        dry: bool | None = None,
    ) -> list[ActionResult]:
        event = self._incident_event(
            incident,
            kind,
            status_phase=phase,
            message=message,
            rolled_back=rolled_back,
            actions=actions,
        )
        dry_run = self._dry(incident.decision) if dry is None else dry
        results = await self.playbook.notify(
            event, self._notifier_names(incident.record.rule), dry_run
        )
        if kind not in (EventKind.ROLLING_BACK,):
            await self._record_results(incident.id, results)
        return results
