"""The escalation ladder, and what people hear when the watchdog cannot act.

Escalated, an incident belongs to humans: each level of the ladder is notified
once, when its ``after`` has passed since the escalation. A store failure is told
at once, writing nothing; a refused rollback pages the first level too."""

from __future__ import annotations

from typing import Any

from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.actions.playbook import Playbook
from watchdog.core.decision import Decision, DecisionKind
from watchdog.incidents.model import Incident, Phase, log
from watchdog.incidents.recorder import Recorder
from watchdog.incidents.state import Instant


async def escalate(rec: Recorder, incident: Incident, why: str) -> None:
    state = incident.state
    if incident.phase is not Phase.ESCALATED:
        state.escalated_at, state.escalation_sent = Instant(rec.clock.now()), 0
        await rec.set_phase(incident, Phase.ESCALATED)
    await rec.event(incident.id, "escalated", {"why": why})
    state.escalation_why = why
    await rec.save(incident)
    await ladder(rec, incident, rec.clock.now())


async def ladder(rec: Recorder, incident: Incident, now: float) -> None:
    """Notify every level that is due and not yet told."""
    state = incident.state
    started = now if state.escalated_at is None else state.escalated_at
    for level in rec.ruleset.escalation:
        if level.level <= state.escalation_sent or now < started + level.after:
            continue
        state.escalation_sent = level.level
        await rec.save(incident)
        event = rec.incident_event(
            incident,
            EventKind.ESCALATED,
            message=state.escalation_why,
            escalation_level=level.level,
            escalation_name=level.name or f"level {level.level}",
        )
        results = await rec.playbook.notify(event, list(level.notify), rec.dry(incident.decision))
        await rec.event(incident.id, "escalation_level", {"level": level.level, "name": level.name})
        await rec.record_results(incident.id, results)


def count_refused(playbook: Playbook) -> None:
    metrics = playbook.metrics
    if metrics is not None:
        metrics.actions.labels(action="rollback", outcome="refused").inc()


async def refused(rec: Recorder, decision: Decision, incident: Incident | None, why: str) -> None:
    """The store failed: tell people straight away, writing nothing. A rollback
    decision pages the first escalation level too: a human must take over."""
    log.error("state store failed; not acting", rule=decision.rule, why=why)
    if decision.kind is DecisionKind.RESOLVED:
        return
    names = rec.notifier_names(decision.rule)
    fields: dict[str, Any] = {"message": why}
    if decision.kind is DecisionKind.BLIND:
        kind, fields["message"] = EventKind.BLIND, f"{decision.why}; {why}"
    elif decision.kind is DecisionKind.ROLLBACK and rec.ruleset.escalation:
        first = min(rec.ruleset.escalation, key=lambda level: level.level)
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
        occurred_at=rec.clock.now(),
        **fields,
    )
    await rec.playbook.notify(event, names, rec.dry(decision))
