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
from watchdog.errors import StoreError
from watchdog.incidents.escalation import escalate
from watchdog.incidents.model import Incident, Phase
from watchdog.incidents.recorder import Recorder
from watchdog.incidents.state import Instant
from watchdog.rules.load import RuleSet
from watchdog.rules.response import VerifyCheck
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
    times = list(incident.state.deployed_at.values())
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
    kept = incident.state.baselines
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
    check: VerifyCheck,
    baselines: Mapping[str, float | None],
    limit: float | None,
    unit: Unit,
    manual: bool = False,
) -> tuple[float | None, str]:
    """The value a check's signal must go below, and how to say it; never laxer than
    ``limit`` (the signal's strictest rule). A manual rollback's process (the CLI)
    has no samples from before the episode: its baseline check aims at the rule's
    threshold, and says so."""
    if check.below is not None:
        if limit is not None and limit < check.below.value:
            return limit, f"below {format_value(limit, unit)} (the rule's threshold)"
        return check.below.value, f"below {check.below.text}"
    base = baselines.get(check.signal)
    if base is None:
        missing = (
            "a manual rollback: this process has no samples from before it"
            if manual
            else "no baseline was recorded before the episode"
        )
        if limit is not None:
            return limit, f"below {format_value(limit, unit)} (the rule's threshold; {missing})"
        return None, f"back to a baseline ({missing}, and no rule gives a threshold)"
    target = base * (1 + check.tolerance)
    if limit is not None and limit < target:
        return limit, (
            f"below {format_value(limit, unit)} (the rule's threshold; baseline "
            f"{base:.3g} + {check.tolerance:.0%} would be laxer)"
        )
    return target, f"back to baseline ({base:.3g} + {check.tolerance:.0%})"


def judge(
    check: VerifyCheck,
    window: SignalWindow | None,
    target: float | None,
    text: str,
    unit: Unit,
    started: float,
    now: float,
    late_from: float,
) -> str | None:
    """One check's verdict, or None while it cannot be told yet. Evidence counts from
    after the rollback up to the deadline, that instant included. A process that saw
    no sample in that time (it was down, a restart) did not look: it judges on the
    first sample after the deadline, waiting for one another ``within`` at most, and
    with none says 'no evidence' (never that the rollback did not help)."""
    deadline = started + check.within
    after = math.nextafter(started, math.inf)  # one taken at that instant came before
    upto = math.nextafter(min(now, deadline), math.inf)
    samples = [s for s in window.between(after, upto) if s.is_evidence] if window else []
    if target is None:  # nothing honest to compare with: not a pass, not a failure
        return f"no evidence: {check.signal} cannot be judged {text}"
    met = next((s for s in samples if s.value < target), None)
    if met is not None:
        return (
            f"passed: {check.signal} {format_value(met.value, unit)} "
            f"{text} after {format_duration(met.at - started)}"
        )
    if now < deadline:
        return None
    if samples:
        return (
            f"failed: {check.signal} was {format_value(samples[-1].value, unit)}, not "
            f"{text} within {format_duration(check.within)}"
        )
    end = math.nextafter(now, math.inf)
    late = [s for s in window.between(upto, end) if s.is_evidence] if window else []
    if late:
        first = late[0]
        verdict = "passed" if first.value < target else "failed"
        return (
            f"{verdict}: {check.signal} {format_value(first.value, unit)}, goal {text} "
            f"(no sample within {format_duration(check.within)}: judged on the first "
            f"after it, {format_duration(first.at - deadline)} late)"
        )
    if now < max(deadline, late_from) + check.within:
        return None
    return (
        f"no evidence: no {check.signal} sample within {format_duration(check.within)} "
        f"of the rollback, nor in the {format_duration(check.within)} after the watchdog "
        "looked again"
    )


async def verify(
    rec: Recorder, windows: Mapping[str, SignalWindow], incident: Incident, now: float
) -> None:
    """Judge the checks not judged yet; once all are, move the incident on."""
    state = incident.state
    started = state.verify_started
    if started is None:  # set with the phase: a state without it cannot be judged
        raise StoreError(f"incident {incident.id} is verifying but has no verify_started")
    results = state.verify
    for check in rec.ruleset.after_rollback.verify:
        key = check.signal + (":baseline" if check.baseline else ":below")
        if key in results:
            continue
        signal = rec.ruleset.signals.get(check.signal)
        unit: Unit = signal.unit if signal is not None else "number"
        limit = ceiling(rec.ruleset, check.signal)
        manual = bool(incident.decision.extra.get("manual"))
        target, text = goal(check, state.baselines, limit, unit, manual)
        late_from = now
        if now >= started + check.within:
            if state.late_from is None:
                state.late_from = Instant(now)
            late_from = state.late_from
        verdict = judge(
            check, windows.get(check.signal), target, text, unit, started, now, late_from
        )
        if verdict is not None:
            results[key] = verdict
    checks = rec.ruleset.after_rollback.verify
    if len(results) < len(checks):
        return
    await rec.event(incident.id, "verification", {"results": results})
    if all(r.startswith("passed") for r in results.values()):
        await rec.ledgers.verified_rollback(incident.id, state.rolled_back, results)
        await rec.notify(
            incident,
            EventKind.VERIFIED,
            phase="monitoring",
            message="; ".join(results.values()),
        )
        state.stable_until = Instant(now + rec.ruleset.after_rollback.stable_for)
        await rec.set_phase(incident, Phase.MONITORING)
    else:
        await rec.notify(
            incident,
            EventKind.NOT_VERIFIED,
            phase="identified",
            message="; ".join(results.values()),
        )
        failed = [r for r in results.values() if r.startswith("failed")]
        blind = [r for r in results.values() if r.startswith("no evidence")]
        why = "the rollback did not help: " + "; ".join(failed) if failed else ""
        if blind:
            why += ("; " if why else "") + "the rollback could not be verified: "
            why += "; ".join(blind)
        await escalate(rec, incident, why)
