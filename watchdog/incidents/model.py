"""What an incident is: its phases, its record and typed state, and the shared constants."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import structlog

from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.evaluator import RuleState, State
from watchdog.core.window import SignalWindow
from watchdog.incidents.state import IncidentState
from watchdog.store.base import IncidentRecord
from watchdog.termtext import truncate_utf8
from watchdog.units import format_duration

# One logger for the whole package: log lines keep the name they always had.
log = structlog.get_logger("watchdog.incidents")

# A rule in one of these states keeps its incident open: breaching, or unknown.
NOT_OVER = (State.FIRING, State.PENDING, State.BLIND)
# After the store failed behind a playbook that ran: how soon to try to resume it.
RESUME_AFTER_S = 15.0


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
    unsettled_at: float | None  # a rule's latest return to inactive (healthy runs)


@dataclass
class Incident:
    """An open incident: its columns in the store and its typed state (the store's
    ``state_json`` is written from ``state`` at every save, ``Recorder.save``)."""

    record: IncidentRecord
    state: IncidentState

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def phase(self) -> Phase:
        return Phase(self.record.phase)

    @property
    def decision(self) -> Decision:
        return self.state.decision


def manual_decision(targets: list[str], reason: str, author: str, now: float) -> Decision:
    """The decision behind a person's rollback: critical, on the named targets."""
    return Decision(
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


def rollback_message(decision: Decision) -> str:
    """The ``workers/message`` annotation: why, in at most 100 bytes."""
    if decision.extra.get("manual"):
        text = f"rollback-watchdog manual: {decision.extra.get('reason', '')}"
        return truncate_utf8(text, 100)
    op = ">" if decision.comparison == "above" else "<"
    text = (
        f"rollback-watchdog: {decision.rule} {decision.observed_text} {op} "
        f"{decision.threshold_text} for {format_duration(decision.window_s)}"
    )
    return truncate_utf8(text, 100)


def rules_of(incident: Incident) -> list[str]:
    """The rule that opened the incident and those that joined it."""
    return [incident.record.rule, *incident.state.joined_rules]


def states_of(engine: EngineView, incident: Incident) -> list[RuleState]:
    states = (engine.states.get(rule) for rule in rules_of(incident))
    return [state for state in states if state is not None]
