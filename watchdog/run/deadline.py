"""Samples at deadlines: one extra sample of a pending rule's signal at the instant its
breach will have held for ``for:`` (``active_since + for``), and of a verification
check's signal at the end of its window, so that neither waits for the next scheduled
sample (up to a whole interval later).

Sources stay rate-limited: at most one extra sample per key (a pending rule, a check)
per interval of its signal, and none when a scheduled sample falls at the deadline
anyway. A rule that leaves pending cancels its extra sample. An extra sample can only
bring the decision forward: when it is not evidence (a source error, no data, a counter
that saw no request in the short span) it is dropped and the next scheduled sample
decides, as it would have without it; one stamped no later than the signal's latest
sample (a slow source) is dropped too, so stamps never go backwards.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from watchdog.clock import Clock
from watchdog.core.engine import Engine, Observation
from watchdog.core.evaluator import State
from watchdog.model import Sample
from watchdog.rules.model import RuleSpec, SourceSpec
from watchdog.run.sampling import SignalGroup, sample_group
from watchdog.sources.base import Source

log = structlog.get_logger("watchdog.run.deadline")

VERIFY = "verify:"  # the key prefix of a verification check's deadline

# Feed a sample to the engine: the daemon's ``observe(signal, sample, source)``.
Feed = Callable[[str, Sample, str], object]


def hold_deadline(active_since: float, for_s: float) -> float:
    """The first instant ``at`` with ``at - active_since >= for_s`` in floating point
    (``active_since + for_s`` can round a hair short, and the rule would not fire)."""
    at = active_since + for_s
    while at - active_since < for_s:
        at = math.nextafter(at, math.inf)
    return at


def watches_hold(rule: RuleSpec) -> bool:
    """Rules whose firing is ``at - active_since >= for`` (regression and burn-rate
    rules decide on their own clocks)."""
    return rule.for_ > 0 and rule.regression is None and rule.burn_rate is None


@dataclass
class _Pending:
    signal: str
    at: float  # wall-clock deadline
    task: asyncio.Task[None]


class DeadlineSampler:
    """Schedules, rate-limits and cancels the extra samples; owned by the daemon."""

    def __init__(
        self,
        clock: Clock,
        engine: Engine,
        sources: Mapping[str, tuple[SourceSpec, Source]],
        next_at: Mapping[tuple[str, float], float],
    ) -> None:
        self.clock = clock
        self.engine = engine
        self._sources = sources  # the daemon's, kept current by it
        self._next_at = next_at  # per sampling loop, the stamp of its next sample
        self.feed: Feed = lambda signal, sample, source: None
        self._pending: dict[str, _Pending] = {}  # by key: a rule's name or "verify:..."
        self._last_taken: dict[str, float] = {}  # key -> monotonic time of its last one
        self._latest_at: dict[str, float] = {}  # signal -> stamp of its latest sample
        self._holding: dict[str, set[str]] = {}  # signal -> its pending rules
        self.taken = 0  # extra samples fed to the engine (tests, the bench)

    # --- what the daemon tells it ---------------------------------------------------

    def observed(self, observation: Observation) -> None:
        """After each sample: note its stamp; cancel the deadline of each rule that left
        pending; schedule that of each pending rule of the signal whose deadline comes
        before the next scheduled sample (it may have come after the previous one)."""
        signal, at = observation.signal, observation.sample.at
        if at > self._latest_at.get(signal, -math.inf):
            self._latest_at[signal] = at
        for moved in observation.transitions:
            if moved.after is State.PENDING:
                self._holding.setdefault(signal, set()).add(moved.rule)
            elif moved.before is State.PENDING:
                self._holding.get(signal, set()).discard(moved.rule)
                self.cancel(moved.rule)
        for name in list(self._holding.get(signal, ())):
            if name not in self._pending:
                self._pending_rule(signal, name)

    def verify_until(self, key: str, signal: str, at: float) -> None:
        """One sample of ``signal`` at ``at``, the end of a verification window (asked
        again every tick: only the first ask counts)."""
        if key not in self._pending and key not in self._last_taken:
            self._schedule(key, signal, at)

    def scheduled(self) -> dict[str, float]:
        """Each key's deadline still to come."""
        return {key: pending.at for key, pending in self._pending.items()}

    def cancel(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.task.cancel()

    def forget(self, rules: set[str]) -> None:
        """Drop what concerns rules no longer loaded (after a reload)."""
        for key in [k for k in self._pending if k not in rules and not k.startswith(VERIFY)]:
            self.cancel(key)
        for key in [k for k in self._last_taken if k not in rules and not k.startswith(VERIFY)]:
            del self._last_taken[key]
        for names in self._holding.values():
            names &= rules

    async def stop(self) -> None:
        tasks = [p.task for p in self._pending.values()]
        self._pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- scheduling -------------------------------------------------------------------

    def _pending_rule(self, signal: str, name: str) -> None:
        state = self.engine.states.get(name)
        rule = self.engine.ruleset.rules_by_name.get(name)
        if (
            rule is None
            or state is None
            or state.state is not State.PENDING
            or state.active_since is None
            or rule.signal != signal
        ):
            self._holding[signal].discard(name)  # gone or changed by a reload
            return
        if watches_hold(rule):
            self._schedule(name, signal, hold_deadline(state.active_since, rule.for_))

    def _schedule(self, key: str, signal: str, at: float) -> None:
        resolved = self.engine.ruleset.signals.get(signal)
        if resolved is None or at <= self._latest_at.get(signal, -math.inf):
            return
        last = self._last_taken.get(key)
        if last is not None and self.clock.monotonic() - last < resolved.interval:
            return  # rate limit: one extra sample per key per interval
        scheduled = self._next_at.get((resolved.source_name, resolved.interval))
        if scheduled is not None and scheduled <= at:
            return  # the scheduled sample comes first: it decides
        self.cancel(key)
        task = asyncio.create_task(self._at_deadline(key, signal, at), name=f"deadline:{key}")
        self._pending[key] = _Pending(signal, at, task)

    async def _at_deadline(self, key: str, signal: str, at: float) -> None:
        await self.clock.sleep(max(at - self.clock.now(), 0.0))
        pending = self._pending.get(key)
        if pending is None or pending.at != at:
            return
        del self._pending[key]
        state = self.engine.states.get(key)
        if not key.startswith(VERIFY) and (state is None or state.state is not State.PENDING):
            return  # reset by a reload since (a transition would have cancelled it)
        if at <= self._latest_at.get(signal, -math.inf):
            return  # another key's extra sample (or a scheduled one) came first
        self._last_taken[key] = self.clock.monotonic()
        resolved = self.engine.ruleset.signals.get(signal)
        held = None if resolved is None else self._sources.get(resolved.source_name)
        if resolved is None or held is None:
            return
        group = SignalGroup(resolved.source_name, resolved.interval, [resolved])
        sample = (await sample_group(held[0], held[1], group, at)).get(signal)
        if sample is None or not sample.is_evidence:
            return
        if at <= self._latest_at.get(signal, -math.inf):
            return  # a scheduled sample overtook this one while the source answered
        self.taken += 1
        log.debug("deadline sample", key=key, signal=signal, value=sample.value)
        self.feed(signal, sample, resolved.source_name)
