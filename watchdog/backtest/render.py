"""A backtest's output: JSON lines for machines, a timeline and summary for people."""

from __future__ import annotations

from collections.abc import Iterator

from watchdog import strict_json
from watchdog.backtest.timeline import STATES, BacktestResult
from watchdog.backtest.times import rfc3339
from watchdog.rules.load import RuleSet
from watchdog.units import format_duration


def render_json(result: BacktestResult) -> Iterator[str]:
    """One JSON object per line: the timeline, one ``rule_summary`` per rule, then the
    ``summary``."""
    for event in result.timeline:
        yield strict_json.dumps(event.to_json(), compact=True)
    end = rfc3339(result.summary.end)
    for name, rule in result.summary.rules.items():
        line = {"time": end, "rule": name, "event": "rule_summary", **rule.to_json()}
        yield strict_json.dumps(line, compact=True)
    yield strict_json.dumps(result.summary.to_json(), compact=True)


_LABELS = {
    "would_rollback": "would roll back",
    "would_notify": "would notify",
    "incident_opened": "incident opened",
    "incident_closed": "incident closed",
    "grace_over": "grace over",
}


def render_text(result: BacktestResult, ruleset: RuleSet) -> Iterator[str]:
    """The timeline a person reads, then the summary."""
    summary = result.summary
    span = format_duration(summary.end - summary.start)
    yield (
        f"Backtest of {', '.join(ruleset.files) or 'the rules'}: {rfc3339(summary.start)} → "
        f"{rfc3339(summary.end)} ({span}, {summary.samples:,} samples)"
    )
    for note in summary.notes:
        yield f"note: {note}"
    yield ""
    width = max([len(e.rule) for e in result.timeline] + [4])
    if not result.timeline:
        yield "(nothing happened: no rule left inactive)"
    for event in result.timeline:
        label = _LABELS.get(event.event, event.event)
        yield f"{rfc3339(event.at)}  {event.rule:<{width}}  {label:<16} {event.text}"
    yield ""
    yield "Summary"
    by_target = ", ".join(f"{t} {n}" for t, n in sorted(summary.rollbacks.items()))
    suppressed = ", ".join(f"{r} {n}" for r, n in sorted(summary.suppressed.items()))
    yield f"  incidents:        {summary.incidents}"
    yield f"  would roll back:  {sum(summary.rollbacks.values())}" + (
        f" ({by_target})" if by_target else ""
    )
    yield f"  suppressed:       {sum(summary.suppressed.values())}" + (
        f" ({suppressed})" if suppressed else ""
    )
    yield f"  would notify:     {summary.notifications}"
    yield ""
    names = max([len(n) for n in summary.rules] + [4])
    header = f"  {'RULE':<{names}}  {'FIRED':>5}  {'ROLLBACKS':>9}  " + "  ".join(
        f"{s.value.upper():>10}" for s in STATES
    )
    yield header
    for name, rule in summary.rules.items():
        if not rule.backtested:
            yield f"  {name:<{names}}  (not backtested: no recording of {rule.signal})"
            continue
        times = "  ".join(f"{format_duration(rule.time_in_state[s.value]):>10}" for s in STATES)
        yield f"  {name:<{names}}  {rule.fired:>5}  {rule.would_rollback:>9}  {times}"
