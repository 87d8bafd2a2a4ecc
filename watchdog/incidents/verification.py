"""Verification after a rollback: each check's goal (below a value, or back to the
pre-incident baseline) met within its time, or not. Verified: monitoring until
stable; not verified: the ladder.

A rollback that did not help must not pass: the baseline comes from before the episode
(before the correlated deploy, or before the first breaching sample, flapping
included) and holds no breaching sample, and no goal is laxer than the threshold of
the signal's strictest rule."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from watchdog.actions.notify.event import EventKind
from watchdog.core.window import SignalWindow
from watchdog.incidents.escalation import escalate
from watchdog.incidents.model import Incident, Phase
from watchdog.incidents.recorder import Recorder
from watchdog.rules.load import RuleSet
from watchdog.rules.model import VerifyCheck
from watchdog.units import Unit, format_duration, format_value

# How far back a baseline reaches, and how close an earlier breaching sample must be
# to count as the same episode (a signal that flapped before it fired).
BASELINE_SPAN_S = 900.0


def ceiling(ruleset: RuleSet, signal: str) -> float | None:
    """The strictest ``above`` threshold of the signal's rules: no verification goal is
    laxer than a rule that would still call the value a breach."""
    limits = [
        r.threshold.value for r in ruleset.rules if r.signal == signal and r.comparison == "above"
    ]
    return min(limits) if limits else None


def _over(limit: float | None) -> Callable[[float], bool]:
    if limit is None:
        return lambda value: False
    return lambda value: value > limit


def episode_start(windows: Mapping[str, SignalWindow], incident: Incident) -> float:
    """When the incident's episode began: its rule's first breaching sample, flapping
    before the last consecutive run included."""
    decision = incident.decision
    start = decision.first_breach_at or incident.record.opened_at
    window = windows.get(decision.signal)
    threshold = decision.threshold
    if window is None or math.isnan(threshold):  # a person's rollback: no rule
        return start
    if decision.comparison == "above":
        return window.episode_start(start, lambda v: v > threshold, BASELINE_SPAN_S)
    return window.episode_start(start, lambda v: v < threshold, BASELINE_SPAN_S)


def _deployed_at(incident: Incident) -> float | None:
    """When the earliest live deploy the rollback moved away from went live."""
    times = [float(t) for t in (incident.data.get("deployed_at") or {}).values()]
    return min(times) if times else None


def baselines(
    ruleset: RuleSet, windows: Mapping[str, SignalWindow], incident: Incident
) -> dict[str, float | None]:
    """Pre-incident values of every baseline check's signal. Taken before the correlated
    deploy when its time is known and the window reaches back there, else before the
    episode's first breaching sample; never from a sample any of the signal's rules
    calls a breach."""
    start = episode_start(windows, incident)
    deployed = _deployed_at(incident)
    kept = incident.data.get("baselines") or {}
    out: dict[str, float | None] = {}
    for check in ruleset.after_rollback.verify:
        if not check.baseline:
            continue
        window = windows.get(check.signal)
        if window is None:
            out[check.signal] = kept.get(check.signal)
            continue
        breaching = _over(ceiling(ruleset, check.signal))
        value = None
        if deployed is not None:
            value = window.baseline(min(deployed, start), BASELINE_SPAN_S, breaching)
        if value is None:
            # Taken when the incident opened: the window may have lost those samples
            # since (a restart).
            value = kept.get(check.signal)
        if value is None:
            before = window.episode_start(start, breaching, BASELINE_SPAN_S)
            value = window.baseline(before, BASELINE_SPAN_S, breaching)
        out[check.signal] = value
    return out


def goal(
    check: VerifyCheck, baselines: Mapping[str, float | None], limit: float | None, unit: Unit
) -> tuple[float | None, str]:
    """The value a check's signal must go below, and how to say it; never laxer than
    ``limit`` (the signal's strictest rule)."""
    if check.below is not None:
        if limit is not None and limit < check.below.value:
            return limit, f"below {format_value(limit, unit)} (the rule's threshold)"
        return check.below.value, f"below {check.below.text}"
    base = baselines.get(check.signal)
    if base is None:
        if limit is not None:
            return limit, (
                f"below {format_value(limit, unit)} (the rule's threshold; no baseline "
                "was recorded before the episode)"
            )
        return None, "back to a baseline (none was recorded before the episode)"
    target = base * (1 + check.tolerance)
    if limit is not None and limit < target:
        return limit, (
            f"below {format_value(limit, unit)} (the rule's threshold; baseline "
            f"{base:.3g} + {check.tolerance:.0%} would be laxer)"
        )
    return target, f"back to baseline ({base:.3g} + {check.tolerance:.0%})"


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
        signal = rec.ruleset.signals.get(check.signal)
        unit: Unit = signal.unit if signal is not None else "number"
        limit = ceiling(rec.ruleset, check.signal)
        target, text = goal(check, data.get("baselines", {}), limit, unit)
        window = windows.get(check.signal)
        samples = window.between(started, now + 1e-9) if window is not None else []
        met = next(
            (s for s in samples if s.is_evidence and target is not None and s.value < target),
            None,
        )
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
