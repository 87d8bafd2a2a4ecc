"""The one message model every notifier formats, and the one place its wording lives.

The playbook builds an ``IncidentEvent`` per step of an incident (opened, rolling back,
rolled back, verified, escalated, resolved, ...). Notifiers only lay it out for their
service; the sentences come from here, so Slack, the webhook, PagerDuty and the status
page never disagree. Public status-page sentences are the team runbook's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from watchdog.core.decision import Decision
from watchdog.model import ActionResult
from watchdog.units import format_duration, iso

StatusPhase = Literal["investigating", "identified", "monitoring", "resolved"]
STATUS_PHASES: tuple[StatusPhase, ...] = ("investigating", "identified", "monitoring", "resolved")


class EventKind(StrEnum):
    OPENED = "opened"  # a rule breached long enough: an incident exists
    ROLLING_BACK = "rolling_back"  # the rollback is starting
    ROLLED_BACK = "rolled_back"  # the rollback went through
    WOULD_ROLLBACK = "would_rollback"  # dry-run or silenced: nothing was done (message says why)
    VERIFIED = "verified"  # the signals recovered after the rollback
    NOT_VERIFIED = "not_verified"  # they did not: humans must look
    ESCALATED = "escalated"  # an escalation level was reached (escalation_level/name)
    RESOLVED = "resolved"  # the all-clear
    BLIND = "blind"  # the watchdog has no evidence
    NOTICE = "notice"  # a notify-only severity breached


# The runbook's external wording (status page), one sentence per phase.
STATUS_WORDING: dict[StatusPhase, str] = {
    "investigating": "We're investigating reports of {issue}",
    "identified": "We've identified the issue and are implementing a fix",
    "monitoring": "A fix has been implemented and we're monitoring the results",
    "resolved": "The issue has been resolved",
}

# The runbook's decision matrix: how soon each severity must be handled.
RUNBOOK_TIMELINE: dict[str, str] = {
    "critical": "< 5 minutes",
    "high": "< 15 minutes",
    "medium": "< 30 minutes",
    "low": "next deployment",
}

# Which status-page phase an event moves to when the playbook does not say.
DEFAULT_PHASES: dict[EventKind, StatusPhase | None] = {
    EventKind.OPENED: "investigating",
    EventKind.ROLLING_BACK: "identified",
    EventKind.ROLLED_BACK: "monitoring",
    EventKind.WOULD_ROLLBACK: None,
    EventKind.VERIFIED: "monitoring",
    EventKind.NOT_VERIFIED: "identified",
    EventKind.ESCALATED: None,
    EventKind.RESOLVED: "resolved",
    EventKind.BLIND: None,
    EventKind.NOTICE: None,
}

_ICONS: dict[EventKind, str] = {
    EventKind.OPENED: "🚨",
    EventKind.ROLLING_BACK: "🔄",
    EventKind.ROLLED_BACK: "⏪",
    EventKind.WOULD_ROLLBACK: "🟡",
    EventKind.VERIFIED: "✅",
    EventKind.NOT_VERIFIED: "❌",
    EventKind.ESCALATED: "📟",
    EventKind.RESOLVED: "✅",
    EventKind.BLIND: "🙈",
    EventKind.NOTICE: "⚠️",
}

_MAX_DEDUP_KEY = 255  # PagerDuty's limit


def default_phase(kind: EventKind) -> StatusPhase | None:
    """The status-page phase the runbook implies for ``kind`` (None: leave it as is)."""
    return DEFAULT_PHASES[kind]


def action_line(result: ActionResult) -> str:
    """``✅ rollback worker: rolled back v42 → v41`` (🟡 for a dry run)."""
    mark = "🟡" if result.would else ("✅" if result.ok else "❌")
    return f"{mark} {result.action} {result.target}: {result.detail}"


@dataclass(frozen=True)
class IncidentEvent:
    """One step of one incident, with everything a person needs to judge it."""

    kind: EventKind
    incident_id: str
    decision: Decision
    occurred_at: float
    status_phase: StatusPhase | None = None
    # (target, from_version, to_version) for each rollback carried out (or that would be)
    rolled_back: Sequence[tuple[str, str, str]] = ()
    actions: Sequence[ActionResult] = ()
    links: Sequence[tuple[str, str]] = ()  # (text, url)
    message: str = ""  # free text: the silence reason, the verification result, ...
    escalation_level: int | None = None
    escalation_name: str = ""

    def __post_init__(self) -> None:
        # Store tuples so a caller's later list mutation cannot change a sent event.
        object.__setattr__(self, "kind", EventKind(self.kind))
        object.__setattr__(self, "rolled_back", tuple(tuple(r) for r in self.rolled_back))
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "links", tuple(tuple(link) for link in self.links))
        if self.status_phase is not None and self.status_phase not in STATUS_PHASES:
            raise ValueError(
                f"status_phase must be one of {STATUS_PHASES}, got {self.status_phase!r}"
            )

    # --- identity ----------------------------------------------------------------------

    def dedup_key(self) -> str:
        """Stable for the whole incident, so a PagerDuty resolve closes its trigger."""
        key = f"rollback-watchdog/{self.incident_id}"
        if len(key) <= _MAX_DEDUP_KEY:
            return key
        digest = hashlib.sha256(self.incident_id.encode()).hexdigest()[:16]
        return f"{key[: _MAX_DEDUP_KEY - 17]}~{digest}"

    # --- internal wording (Slack, webhook, PagerDuty, Sentry) --------------------------

    @property
    def targets_text(self) -> str:
        return ", ".join(self.decision.targets) or "no rollback target"

    @property
    def comparison_text(self) -> str:
        """``7.2% > 5%``: the observed value against the threshold."""
        op = ">" if self.decision.comparison == "above" else "<"
        return f"{self.decision.observed_text} {op} {self.decision.threshold_text}"

    @property
    def window_text(self) -> str:
        """``for 5m (21 samples)``."""
        return (
            f"for {format_duration(self.decision.window_s)} ({self.decision.sample_count} samples)"
        )

    @property
    def escalation_text(self) -> str:
        if self.escalation_level is None:
            return ""
        name = f" ({self.escalation_name})" if self.escalation_name else ""
        return f"level {self.escalation_level}{name}"

    def rolled_back_lines(self) -> list[str]:
        """``worker: v42 → v41`` per rollback."""
        return [f"{target}: {old} → {new}" for target, old, new in self.rolled_back]

    def action_lines(self) -> list[str]:
        return [action_line(result) for result in self.actions]

    def headline(self) -> str:
        """One line that says what happened, for a title, a summary or a fallback text."""
        d = self.decision
        what = f"{d.rule} ({d.severity}): {d.signal} {self.comparison_text}"
        versions = "; ".join(self.rolled_back_lines())
        kind = self.kind
        if kind is EventKind.OPENED:
            text = f"Incident opened: {what}"
        elif kind is EventKind.ROLLING_BACK:
            text = f"ROLLBACK IN PROGRESS on {self.targets_text}: {what}"
        elif kind is EventKind.ROLLED_BACK:
            text = f"Rolled back {versions or self.targets_text}: {what}"
        elif kind is EventKind.WOULD_ROLLBACK:
            why = f" ({self.message})" if self.message else ""
            text = f"Would have rolled back {versions or self.targets_text}{why}: {what}"
        elif kind is EventKind.VERIFIED:
            text = f"Rollback verified, signals recovered: {what}"
        elif kind is EventKind.NOT_VERIFIED:
            text = f"Rollback did NOT help, humans needed: {what}"
        elif kind is EventKind.ESCALATED:
            text = f"Escalated to {self.escalation_text or 'the next level'}: {what}"
        elif kind is EventKind.RESOLVED:
            text = f"All clear: {d.rule} resolved"
        elif kind is EventKind.BLIND:
            text = f"Watchdog is blind on {d.signal}: no evidence for {d.rule}"
        else:
            text = f"Notice: {what}"
        return f"{_ICONS[kind]} [{self.incident_id}] {text}"

    def summary(self) -> str:
        """The decision in one line plus why: ``error-rate: error_rate 7.2% > 5% for 5m ...``."""
        why = f" — {self.decision.why}" if self.decision.why else ""
        return f"{self.decision.summary()}{why}"

    def runbook_fields(self) -> list[tuple[str, str]]:
        """The runbook's internal-communication template (Component, Reason, Impact, ETA,
        Status Page), filled in."""
        d = self.decision
        phase = self.status_phase
        return [
            ("Component", self.targets_text),
            ("Reason", f"{d.rule}: {d.signal} {self.comparison_text} {self.window_text}"),
            ("Impact", f"{d.severity} severity; {d.signal} at {d.observed_text}"),
            ("ETA", RUNBOOK_TIMELINE.get(d.severity, "unknown")),
            ("Status Page", f"Updating ({phase.capitalize()})" if phase else "Not changed"),
        ]

    def facts(self) -> list[tuple[str, str]]:
        """Labelled facts about the decision, in the order a person reads them."""
        d = self.decision
        facts = [
            ("Rule", d.rule),
            ("Severity", d.severity),
            ("Observed", f"{d.signal} {d.observed_text}"),
            ("Threshold", f"{d.comparison} {d.threshold_text}"),
            ("Window", f"{format_duration(d.window_s)}, {d.sample_count} samples"),
            ("Targets", self.targets_text),
        ]
        if d.requests is not None:
            facts.append(("Requests", f"{d.requests:g}"))
        if d.evidence is not None:
            facts.append(("Evidence", d.evidence.text()))
        if d.regression is not None:
            facts.append(("Evidence", d.regression.text()))
        if d.burn is not None:
            facts.append(("Evidence", d.burn.text()))
        if d.first_breach_at is not None:
            facts.append(("First breach", iso(d.first_breach_at)))
        if self.escalation_level is not None:
            facts.append(("Escalation", self.escalation_text))
        if d.dry_run:
            facts.append(("Mode", "dry run"))
        return facts

    # --- external wording (status page) ------------------------------------------------

    def issue_description(self) -> str:
        """What customers see in "We're investigating reports of ...": plain words, no
        thresholds or internal names."""
        d = self.decision
        if d.unit == "ratio" and d.comparison == "above":
            return "elevated error rates"
        if d.unit == "seconds" and d.comparison == "above":
            return "slow response times"
        if d.comparison == "below":
            return "the service being unavailable"
        return "degraded performance"

    def status_page_title(self) -> str:
        issue = self.issue_description()
        return issue[0].upper() + issue[1:]

    def status_page_body(self, phase: StatusPhase | None = None) -> str:
        """The runbook sentence for ``phase`` (default: this event's phase)."""
        phase = phase or self.status_phase or "investigating"
        return STATUS_WORDING[phase].format(issue=self.issue_description()) + "."


SilenceChange = Literal["created", "expired"]


@dataclass(frozen=True)
class SilenceEvent:
    """A silence added or expired early: notifiers that mark time (Grafana) show it
    beside the incidents it kept the watchdog from acting on."""

    change: SilenceChange
    silence_id: str
    matchers: tuple[tuple[str, str, str], ...]  # (name, op, value); none: everything
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    occurred_at: float

    def scope(self) -> str:
        """``rule=error-rate, target=~worker|frontend`` or ``every action``."""
        return ", ".join(f"{n}{op}{v}" for n, op, v in self.matchers) or "every action"

    def headline(self) -> str:
        short = self.silence_id[:8]
        if self.change == "created":
            comment = f": {self.comment}" if self.comment else ""
            return (
                f"🔇 Silence {short} by {self.created_by} on {self.scope()} "
                f"until {iso(self.ends_at)}{comment}"
            )
        return f"🔊 Silence {short} on {self.scope()} expired at {iso(self.occurred_at)}"
