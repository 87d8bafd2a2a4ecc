"""What an incident is: its phases, its record and decision, and the shared constants."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from watchdog.core.burn import BurnEvidence
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.evaluator import RuleState, State
from watchdog.core.evidence import Evidence
from watchdog.core.regression import RegressionEvidence
from watchdog.core.window import SignalWindow
from watchdog.store.base import IncidentRecord
from watchdog.termtext import truncate_utf8
from watchdog.units import format_duration

# One logger for the whole package: log lines keep the name they always had.
log = structlog.get_logger("watchdog.incidents")

# A rule in one of these states keeps its incident open: breaching, or unknown.
NOT_OVER = (State.FIRING, State.PENDING, State.BLIND)
# After the store failed behind a playbook that ran: how soon to try to resume it.
RESUME_AFTER_S = 15.0
# An incident's wall-clock times, moved with the wall clock when it jumps.
CLOCK_FIELDS = (
    "grace_until",
    "escalate_at",
    "verify_started",
    "stable_until",
    "escalated_at",
    "rolled_back_at",
    "resume_at",
    "evidence_after",
    "refused_at",
    "late_from",
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
    unsettled_at: float | None  # a rule's latest return to inactive (healthy runs)


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
    if fields.get("evidence") is not None:
        fields["evidence"] = Evidence(**fields["evidence"])
    if fields.get("regression") is not None:
        fields["regression"] = RegressionEvidence(**fields["regression"])
    if fields.get("burn") is not None:
        fields["burn"] = BurnEvidence(**fields["burn"])
    return Decision(**fields)


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
    return [incident.record.rule, *incident.data.get("joined_rules", [])]


def states_of(engine: EngineView, incident: Incident) -> list[RuleState]:
    states = (engine.states.get(rule) for rule in rules_of(incident))
    return [state for state in states if state is not None]
