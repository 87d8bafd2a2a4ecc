"""What a sampling loop samples: the watched signals grouped by source and interval, and
one round of a group's samples (a hung or failing source gives error samples), and
readiness: every sampled source answered recently."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal, RuleSet
from watchdog.rules.model import SourceSpec
from watchdog.sources.base import Source

log = structlog.get_logger("watchdog.run.daemon")


@dataclass
class SignalGroup:
    """Signals sampled together: same source, same interval."""

    source_name: str
    interval: float
    signals: list[ResolvedSignal]


def signal_groups(ruleset: RuleSet) -> list[SignalGroup]:
    """The watched signals (by a rule or a verification) grouped by source and interval."""
    groups: dict[tuple[str, float], SignalGroup] = {}
    watched = {rule.signal for rule in ruleset.rules}
    watched |= {check.signal for check in ruleset.after_rollback.verify}
    for signal in ruleset.signals.values():
        if signal.name not in watched:
            continue
        key = (signal.source_name, signal.interval)
        groups.setdefault(key, SignalGroup(signal.source_name, signal.interval, [])).signals.append(
            signal
        )
    return list(groups.values())


async def sample_group(
    spec: SourceSpec, source: Source, group: SignalGroup, now: float
) -> dict[str, Sample]:
    """One round of ``group``'s samples stamped ``now``; never raises for the source."""
    try:
        # The source enforces its own timeout; this is the backstop for a hung one.
        async with asyncio.timeout(spec.timeout + 1.0):
            samples = await source.sample(group.signals, now)
    except TimeoutError:
        samples = {
            s.name: Sample.error(
                now, f"source {group.source_name} hung past its {spec.timeout:g}s timeout"
            )
            for s in group.signals
        }
    except Exception as exc:  # boundary: a source bug must not end sampling for good
        log.exception("source failed unexpectedly", source=group.source_name)
        reason = f"source {group.source_name} failed: {type(exc).__name__}"
        samples = {s.name: Sample.error(now, reason) for s in group.signals}
    return samples


def readiness(ruleset: RuleSet, last_answer: Mapping[str, float], now: float) -> tuple[bool, str]:
    """Ready when rules are loaded and every sampled source answered recently."""
    if not ruleset.rules:
        return False, "no rules loaded"
    stale = []
    for group in signal_groups(ruleset):
        last = last_answer.get(group.source_name)
        horizon = max(3 * group.interval, 30.0)
        if last is None or now - last > horizon:
            stale.append(group.source_name)
    if stale:
        return False, f"sources not answering: {', '.join(sorted(set(stale)))}"
    return True, "ok"
