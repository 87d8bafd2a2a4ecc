"""Verification after a rollback: each check's goal (below a value, or back to the
pre-incident baseline) met within its time, or not. Verified: monitoring until
stable; not verified: the ladder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchdog.incidents.escalation import escalate
from watchdog.incidents.model import Incident, Phase
from watchdog.incidents.recorder import Recorder
from watchdog.notify.event import EventKind
from watchdog.rules import RuleSet
from watchdog.units import format_duration, format_value
from watchdog.window import SignalWindow


def baselines(
    ruleset: RuleSet, windows: Mapping[str, SignalWindow], incident: Incident
) -> dict[str, float | None]:
    """Pre-incident values of every baseline check's signal."""
    breach = incident.decision.first_breach_at or incident.record.opened_at
    out: dict[str, float | None] = {}
    for check in ruleset.after_rollback.verify:
        if check.baseline:
            window = windows.get(check.signal)
            out[check.signal] = window.baseline(breach) if window is not None else None
    return out


def goal(check: Any, baselines: Mapping[str, float | None]) -> tuple[float | None, str]:
    """The value a check's signal must go below, and how to say it."""
    if check.below is not None:
        return check.below.value, f"below {check.below.text}"
    base = baselines.get(check.signal)
    if base is None:
        return None, "back to a baseline (none was recorded before the breach)"
    limit = base * (1 + check.tolerance)
    return limit, f"back to baseline ({base:.3g} + {check.tolerance:.0%})"


async def verify(
    rec: Recorder, windows: Mapping[str, SignalWindow], incident: Incident, now: float
) -> None:
    """Judge the checks not judged yet; once all are, move the incident on."""
    data = incident.data
    started = data["verify_started"]
    results: dict[str, str] = data.setdefault("verify", {})
    for check in rec.ruleset.after_rollback.verify:
        key = check.signal + (":baseline" if check.baseline else ":below")
        if key in results:
            continue
        target, text = goal(check, data.get("baselines", {}))
        window = windows.get(check.signal)
        samples = window.between(started, now + 1e-9) if window is not None else []
        met = next(
            (s for s in samples if s.is_evidence and target is not None and s.value < target),
            None,
        )
        signal = rec.ruleset.signals.get(check.signal)
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
    checks = rec.ruleset.after_rollback.verify
    if len(results) < len(checks):
        return
    await rec.event(incident.id, "verification", {"results": results})
    if all(r.startswith("passed") for r in results.values()):
        await rec.ledgers.verified_rollback(incident.id, data.get("rolled_back", []), results)
        await rec.notify(
            incident,
            EventKind.VERIFIED,
            phase="monitoring",
            message="; ".join(results.values()),
        )
        await rec.set_phase(
            incident,
            Phase.MONITORING,
            stable_until=now + rec.ruleset.after_rollback.stable_for,
        )
    else:
        await rec.notify(
            incident,
            EventKind.NOT_VERIFIED,
            phase="identified",
            message="; ".join(results.values()),
        )
        await escalate(
            rec,
            incident,
            "the rollback did not help: "
            + "; ".join(r for r in results.values() if r.startswith("failed")),
        )
