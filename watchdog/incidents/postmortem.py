"""The runbook's post-mortem template, filled with an incident's real timeline.

Facts come from the journal (events and actions); the analysis sections are left for
people, marked so nobody mistakes a blank for a finding.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdog.incidents.state import load_state
from watchdog.store.base import ActionRecord, EventRecord, IncidentRecord, Store
from watchdog.units import format_duration

TO_FILL = "_(to be written by the team)_"

# Which journal events make the runbook's timeline lines.
_TIMELINE = (
    ("detected", "Issue detected"),
    ("grace", "Grace period started (waiting for a quick fix)"),
    ("rollback_started", "Rollback initiated"),
    ("rollback_finished", "Rollback completed"),
    ("rollback_blocked", "Rollback not taken"),
    ("would_rollback", "Rollback withheld (silenced or dry run)"),
    ("verification", "Verification finished"),
    ("escalated", "Escalated to humans"),
    ("escalation_level", "Escalation level paged"),
    ("reconciled", "Watchdog restarted and reconciled an action"),
    ("blind", "Watchdog blind (no evidence)"),
    ("resolved", "System stable; all-clear sent"),
    ("closed_unresolved", "Closed unresolved (escalated; no all-clear)"),
)


def _hhmm(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _detail(event: EventRecord) -> str:
    data = event.data
    if event.kind == "detected":
        decision = data.get("decision", {})
        return str(decision.get("why", ""))
    if event.kind == "rollback_finished":
        moved = data.get("rolled_back", [])
        return "; ".join(f"{t}: {a} → {b}" for t, a, b in moved)
    if event.kind == "verification":
        return "; ".join(str(v) for v in data.get("results", {}).values())
    if event.kind == "escalation_level":
        return f"level {data.get('level')} {data.get('name', '')}".strip()
    for key in ("why", "target"):
        if key in data:
            return str(data[key])
    return ""


def render(incident: IncidentRecord, events: list[EventRecord], actions: list[ActionRecord]) -> str:
    # Decision.to_dict: what people read (its texts) beside the numbers.
    decision = load_state(incident).decision.to_dict()
    end = incident.closed_at or (events[-1].at if events else incident.opened_at)
    start = decision.get("first_breach_at") or incident.opened_at
    extra = decision.get("extra") or {}
    manual = bool(extra.get("manual"))
    title = (
        f"manual rollback by {extra.get('author', '?')}"
        if manual
        else f"{incident.rule} breached ({decision.get('signal', '?')})"
    )
    lines = [
        f"# Post-Mortem: {_when(incident.opened_at)[:10]} {title}",
        "",
        "## Summary",
        f"- **Date**: {_when(start)}",
        f"- **Duration**: {format_duration(end - start)}"
        + ("" if incident.closed_at else " (still open)"),
        (
            f"- **Impact**: rolled back by hand: {extra.get('reason', '')}. {TO_FILL}"
            if manual
            else f"- **Impact**: {decision.get('signal', '?')} reached "
            f"{_value(decision)} against a threshold of {_threshold(decision)} "
            f"({decision.get('sample_count', '?')} samples over "
            f"{format_duration(float(decision.get('window_s', 0)))}); severity "
            f"{incident.severity}. {TO_FILL}"
        ),
        *(
            [f"- **Evidence**: {decision['evidence_text']}"]
            if decision.get("evidence_text")
            else []
        ),
        f"- **Root Cause**: {TO_FILL}",
        f"- **Incident**: `{incident.id}` (final phase: {incident.phase})",
        "",
        "## Timeline",
    ]
    lines += _timeline(decision, events, manual)
    lines += ["", "## Root Cause Analysis", TO_FILL, "", "## Resolution", *_resolution(actions)]
    lines += [
        "",
        "## Lessons Learned",
        f"1. What went well: {TO_FILL}",
        f"2. What went wrong: {TO_FILL}",
        f"3. Where we got lucky: {TO_FILL}",
        "",
        "## Action Items",
        "- [ ] [Owner] - " + TO_FILL,
        "",
        "## Prevention Measures",
        TO_FILL,
        "",
    ]
    return "\n".join(lines)


def _timeline(decision: dict[str, Any], events: list[EventRecord], manual: bool) -> list[str]:
    """The first breaching sample, then each event the template names, in order."""
    lines = []
    if decision.get("first_breach_at") and not manual:
        lines.append(f"- {_hhmm(decision['first_breach_at'])} - First breaching sample")
    labels = dict(_TIMELINE)
    for event in events:
        label = labels.get(event.kind)
        if label is None:
            continue
        detail = _detail(event)
        lines.append(f"- {_hhmm(event.at)} - {label}" + (f": {detail}" if detail else ""))
    return lines


def _resolution(actions: list[ActionRecord]) -> list[str]:
    done = [a for a in actions if a.state == "done"]
    failed = [a for a in actions if a.state != "done"]
    lines = [f"- {a.kind} `{a.target}`: {a.outcome.get('detail', '')}" for a in done]
    if not done:
        lines.append("- No automatic action was taken.")
    return lines + [
        f"- {a.kind} `{a.target}` {a.state}: {a.outcome.get('detail', '')}" for a in failed
    ]


def _value(decision: dict[str, object]) -> str:
    return str(decision.get("observed_text") or decision.get("observed", "?"))


def _threshold(decision: dict[str, object]) -> str:
    return str(decision.get("threshold_text") or decision.get("threshold", "?"))


async def render_incident(store: Store, incident_id: str) -> str | None:
    incident = await store.get_incident(incident_id)
    if incident is None:
        return None
    return render(incident, await store.events(incident.id), await store.actions(incident.id))


async def write_draft(store: Store, incident_id: str, directory: Path) -> Path | None:
    text = await render_incident(store, incident_id)
    if text is None:
        return None
    path = directory / f"{incident_id}.md"

    def write() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    await asyncio.to_thread(write)
    return path
