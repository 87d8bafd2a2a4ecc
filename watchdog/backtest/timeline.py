"""What a backtest says: timeline events, per-rule and overall summaries, and the
result that carries them (with the replayed samples and each rule's state spans)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchdog.backtest.times import rfc3339
from watchdog.core.evaluator import State
from watchdog.model import Sample

STATES: tuple[State, ...] = (
    State.INACTIVE,
    State.PENDING,
    State.FIRING,
    State.BLIND,
    State.INCONCLUSIVE,
)


@dataclass(frozen=True)
class Event:
    """One line of the timeline. ``fields`` go into the JSON object as they are."""

    at: float
    rule: str
    event: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"time": rfc3339(self.at), "rule": self.rule, "event": self.event, **self.fields}


@dataclass
class RuleSummary:
    rule: str
    signal: str
    severity: str
    backtested: bool
    time_in_state: dict[str, float] = field(default_factory=lambda: {s.value: 0.0 for s in STATES})
    fired: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    would_rollback: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    notifications: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "severity": self.severity,
            "backtested": self.backtested,
            "time_in_state": {k: round(v, 3) for k, v in self.time_in_state.items()},
            "fired": self.fired,
            "decisions": dict(self.decisions),
            "would_rollback": self.would_rollback,
            "suppressed": dict(self.suppressed),
            "notifications": self.notifications,
        }


@dataclass
class Summary:
    start: float
    end: float
    samples: int
    incidents: int
    rollbacks: Counter[str]  # per target
    suppressed: Counter[str]  # per reason
    notifications: int
    rules: dict[str, RuleSummary]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "time": rfc3339(self.end),
            "rule": None,
            "event": "summary",
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "samples": self.samples,
            "incidents": self.incidents,
            "rollbacks": sum(self.rollbacks.values()),
            "rollbacks_by_target": dict(self.rollbacks),
            "suppressed": dict(self.suppressed),
            "notifications": self.notifications,
            "notes": self.notes,
        }


Span = tuple[State, float, float]


@dataclass
class BacktestResult:
    timeline: list[Event]
    summary: Summary
    spans: dict[str, list[Span]]  # per rule: (state, start, end), inactive left out
    samples: dict[str, Sequence[Sample]]  # per signal, what was replayed
