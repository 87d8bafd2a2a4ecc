"""The daemon's core: sampling loops feeding the engine, reloads, decisions out.

No signals or sockets here (see ``service.py``), so tests drive it with a virtual
clock: ``await clock.advance(3600)`` runs an hour of sampling in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import structlog

from watchdog.clock import Clock
from watchdog.core.decision import Decision
from watchdog.core.engine import Engine, Observation
from watchdog.core.evaluator import RuleState
from watchdog.errors import RuleError
from watchdog.metrics import Metrics
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import RuleSet, load_rules
from watchdog.rules.model import SourceSpec
from watchdog.run.coalesce import Coalesced
from watchdog.run.deadline import DeadlineSampler
from watchdog.run.sampling import SignalGroup as _Group
from watchdog.run.sampling import readiness, sample_group, signal_groups
from watchdog.sources.base import Source, SourceDeps
from watchdog.sources.registry import SourceFactory, build_source

log = structlog.get_logger("watchdog.run.daemon")

DecisionHandler = Callable[[Decision], Awaitable[None]]
ClockJumpHandler = Callable[[float], Coroutine[Any, Any, None]]
ObservationHook = Callable[[Observation], None]


class Watchdog:
    """Samples every signal at its interval, evaluates after each sample, keeps decisions."""

    def __init__(
        self,
        ruleset: RuleSet,
        deps: SourceDeps,
        metrics: Metrics | None = None,
        rules_paths: Sequence[str] = (),
        on_decision: DecisionHandler | None = None,
        keep_decisions: int = 500,
        source_factory: SourceFactory = build_source,
    ) -> None:
        self.clock: Clock = deps.clock
        self.deps = deps
        self.metrics = metrics or Metrics()
        self.rules_paths = list(rules_paths)
        self.engine = Engine(ruleset)
        self.decisions: deque[Decision] = deque(maxlen=keep_decisions)
        self.on_decision = on_decision
        self.source_factory = source_factory
        self.observers: list[ObservationHook] = []
        # Told once per wall-clock jump (seconds, + forwards), whichever loop sees it.
        self.on_clock_jump: ClockJumpHandler | None = None
        self._clock_offset = self.clock.now() - self.clock.monotonic()
        self.last_reload_error: str | None = None
        self.started_at = self.clock.now()
        self._sources: dict[str, tuple[SourceSpec, Source]] = {}
        self._last_answer: dict[str, float] = {}
        # One sampling loop per (source, interval), with the group it samples.
        self._loops: dict[tuple[str, float], tuple[_Group, asyncio.Task[None]]] = {}
        # Per watched signal, the monotonic time its deadline counts from (its last
        # sample): kept across loop restarts, so a storm of them cannot hide a stall.
        self._sampled: dict[str, float] = {}
        self._overseer: asyncio.Task[None] | None = None
        # Per loop, the stamp of the scheduled sample after the one being taken.
        self._next_at: dict[tuple[str, float], float] = {}
        self.deadlines = DeadlineSampler(self.clock, self.engine, self._sources, self._next_at)
        self.deadlines.feed = self.observe
        self.observers.append(self.deadlines.observed)
        self._coalesced_reload = Coalesced(self._reload)
        self._handlers: set[asyncio.Task[None]] = set()
        self._running = False
        self._apply_metrics_for(ruleset)

    @property
    def ruleset(self) -> RuleSet:
        return self.engine.ruleset

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._sync_sources()
        self._restart_loops(set(self._sources))
        self._overseer = asyncio.create_task(self._oversee(), name="sampling-deadlines")
        log.info(
            "watchdog started",
            rules=len(self.ruleset.rules),
            signals=len(self.ruleset.signals),
            sources=len(self._sources),
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop sampling; give in-flight decision handlers ``timeout_s`` to finish."""
        self._running = False
        if self._overseer is not None:
            self._overseer.cancel()
            await asyncio.gather(self._overseer, return_exceptions=True)
            self._overseer = None
        await self.deadlines.stop()
        await self._cancel_loops()
        if self._handlers:
            _done, pending = await asyncio.wait(self._handlers, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("shutdown cancelled unfinished decision handlers", count=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        for _, source in self._sources.values():
            await source.aclose()
        self._sources.clear()

    async def reload(self) -> bool:
        """Load the rules files again. A bad file keeps the old rules, is logged and
        counted. Coalesced: at most one load in flight (see ``Coalesced``)."""
        return await self._coalesced_reload()

    async def _reload(self) -> bool:
        try:
            ruleset = await asyncio.to_thread(load_rules, self.rules_paths)
        except RuleError as exc:
            self.reload_failed(exc.problems)
            return False
        self.reloaded(ruleset)
        return True

    def reload_failed(self, problems: list[str]) -> None:
        """A reload that found problems: the last good rules stay; logged and counted."""
        self.last_reload_error = "\n".join(problems)
        self.metrics.reloads.labels(result="failure").inc()
        self.metrics.reload_ok.set(0)
        log.error("rules reload failed; keeping the last good rules", problems=problems)

    def reloaded(self, ruleset: RuleSet) -> None:
        """Swap in a reloaded rule set, and count it. Rules equal to the running ones
        change nothing: no loop restarts, no state reset."""
        self.metrics.reloads.labels(result="success").inc()
        if ruleset == self.ruleset:
            self.last_reload_error = None
            self.metrics.reload_ok.set(1)
            log.info("rules reloaded; unchanged", rules=len(ruleset.rules))
            return
        self.apply_rules(ruleset)
        log.info("rules reloaded", rules=len(ruleset.rules), files=list(ruleset.files))

    def apply_rules(self, ruleset: RuleSet) -> None:
        old, old_states = self.ruleset, self.engine.states
        self.engine.replace_rules(ruleset)
        self.last_reload_error = None
        for name in old_states.keys() - {rule.name for rule in ruleset.rules}:
            self.metrics.forget_rule(name)
        self.deadlines.forget({rule.name for rule in ruleset.rules})
        self._apply_metrics_for(ruleset, old, old_states)
        if self._running:
            rebuilt = self._sync_sources()
            self._restart_loops(rebuilt)

    def _apply_metrics_for(
        self, ruleset: RuleSet, old: RuleSet | None = None, kept: Mapping[str, RuleState] = {}
    ) -> None:
        self.rules_loaded_at = self.clock.now()  # the console's header shows it
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(self.rules_loaded_at)
        self.metrics.rules_loaded.set(len(ruleset.rules))
        self.metrics.set_rules(ruleset.rules, old.rules if old else ())
        for rule in ruleset.rules:  # a kept state's gauges are right already
            if kept.get(rule.name) is not (state := self.engine.states[rule.name]):
                self.metrics.set_rule_state(rule.name, state.state)

    def _sync_sources(self) -> set[str]:
        """Keep source instances whose spec did not change (a scrape source's counters
        survive a reload), build new ones, close removed ones; the names rebuilt."""
        wanted = self.ruleset.sources
        rebuilt: set[str] = set()
        for name in list(self._sources):
            spec, source = self._sources[name]
            if wanted.get(name) != spec:
                del self._sources[name]
                task = asyncio.create_task(source.aclose(), name=f"close:{name}")
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
        for name, spec in wanted.items():
            if name not in self._sources:
                self._sources[name] = (spec, self.source_factory(name, spec, self.deps))
                rebuilt.add(name)
        return rebuilt

    def _start_loop(self, group: _Group) -> None:
        task = asyncio.create_task(
            self._loop(group), name=f"sample:{group.source_name}:{group.interval:g}s"
        )
        self._loops[(group.source_name, group.interval)] = (group, task)
        now = self.clock.monotonic()
        for signal in group.signals:
            self._sampled.setdefault(signal.name, now)

    async def _cancel_loops(self) -> None:
        tasks = [task for _, task in self._loops.values()]
        self._loops.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _restart_loops(self, rebuilt: set[str]) -> None:
        """Restart only the loops whose source was rebuilt or whose signals changed;
        the others keep sampling on their schedule."""
        wanted = {(g.source_name, g.interval): g for g in signal_groups(self.ruleset)}
        for key in list(self._loops):
            group, task = self._loops[key]
            fresh = wanted.get(key)
            if fresh is None or fresh.signals != group.signals or key[0] in rebuilt:
                task.cancel()
                del self._loops[key]
        for key, group in wanted.items():
            if key not in self._loops:
                self._start_loop(group)
        watched = {s.name for g in wanted.values() for s in g.signals}
        for name in list(self._sampled):
            if name not in watched:
                del self._sampled[name]

    async def _oversee(self) -> None:
        """Raise the blind alarm on time when a loop misses its deadlines (a hung
        source past its backstop, restarts that never let it finish): each watched
        signal not sampled within ``interval + timeout + 1 s`` of its last sample gets
        an error sample saying so, then one every interval while it stays overdue."""
        while True:
            now = self.clock.monotonic()
            wake = now + 60.0
            for group, _ in list(self._loops.values()):
                held = self._sources.get(group.source_name)
                # The sample's own backstop (timeout + 1 s), plus an interval.
                allowance = group.interval + (held[0].timeout if held else 0.0) + 1.0
                for signal in group.signals:
                    due = self._sampled.get(signal.name, now) + allowance
                    if due <= now:
                        late = now - self._sampled.get(signal.name, now)
                        reason = (
                            f"no sample from source {group.source_name} for {late:.0f}s: "
                            "sampling missed its deadlines"
                        )
                        self.observe(
                            signal.name, Sample.error(self.clock.now(), reason), group.source_name
                        )
                        # Next one an interval later: the engine sees blind time grow.
                        self._sampled[signal.name] = now - allowance + group.interval
                        due = now + group.interval
                    wake = min(wake, due)
            await self.clock.sleep(max(wake - now, 0.001))

    async def _loop(self, group: _Group) -> None:
        """Sample every ``interval``. Waits run on the monotonic clock and samples are
        stamped with their scheduled wall-clock time; when the wall clock jumps (an NTP
        step, a resumed VM) the stamps follow it, sampling never stalls, and a breach
        must build up again from fresh evidence (the time across the jump was not seen)."""
        interval = group.interval
        tolerance = min(1.0, interval / 2)
        due = self.clock.monotonic()
        offset = self.clock.now() - due  # wall clock minus monotonic clock
        while True:
            jump = (self.clock.now() - self.clock.monotonic()) - offset
            if abs(jump) > tolerance:  # the wall clock moved against the monotonic one
                offset += jump
                if abs(jump) >= interval:
                    self._clock_jumped(group, jump)
            self._next_at[(group.source_name, interval)] = due + interval + offset
            await self.sample_once(group, at=due + offset)
            due += interval
            mono = self.clock.monotonic()
            if due <= mono:  # fell behind (a slow source): skip, don't burst
                due = mono + interval
            await self.clock.sleep(due - mono)

    def _clock_jumped(self, group: _Group, drift: float) -> None:
        """Missing evidence across a wall-clock jump, as a hole in a recording is in a
        backtest: one no-data sample per signal, so no breach run spans the jump."""
        direction = "forwards" if drift > 0 else "backwards"
        log.warning(
            "wall clock jumped; evidence starts again",
            source=group.source_name,
            direction=direction,
            seconds=round(abs(drift), 3),
        )
        reason = f"the wall clock jumped {direction} by {abs(drift):.0f}s"
        for signal in group.signals:
            self.observe(signal.name, Sample.no_data(self.clock.now(), reason), group.source_name)
        jump = (self.clock.now() - self.clock.monotonic()) - self._clock_offset
        if abs(jump) >= 1.0:  # not yet told by another loop
            self._clock_offset += jump
            if self.on_clock_jump is not None:
                task: asyncio.Task[None] = asyncio.create_task(
                    self.on_clock_jump(jump), name="clock-jump"
                )
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)

    async def sample_once(self, group: _Group, at: float | None = None) -> None:
        """One round of samples stamped ``at``, the scheduled time: ``for:`` counts whole
        intervals whatever the loop's jitter (Prometheus stamps evaluations so too)."""
        spec, source = self._sources[group.source_name]
        started = time.perf_counter()
        now = self.clock.now() if at is None else at
        samples = await sample_group(spec, source, group, now)
        self.metrics.sample_duration.labels(source=group.source_name).observe(
            time.perf_counter() - started
        )
        for signal in group.signals:
            sample = samples.get(signal.name) or Sample.error(now, "source gave no sample")
            self.observe(signal.name, sample, group.source_name)

    def observe(self, signal_name: str, sample: Sample, source_name: str = "") -> Observation:
        """Feed one sample to the engine and publish what it changed."""
        if signal_name in self._sampled:
            self._sampled[signal_name] = self.clock.monotonic()
        self.metrics.samples.labels(source=source_name, kind=sample.kind.value).inc()
        if sample.kind is SampleKind.ERROR or sample.kind is SampleKind.NO_DATA:
            self.metrics.source_errors.labels(source=source_name, kind=sample.kind.value).inc()
            if sample.kind is SampleKind.ERROR:
                log.warning(
                    "source error", source=source_name, signal=signal_name, reason=sample.reason
                )
        if sample.kind is not SampleKind.ERROR:
            self._last_answer[source_name] = sample.at
            self.metrics.source_last_answer.labels(source=source_name).set(sample.at)
        self.metrics.signal_value.labels(signal=signal_name).set(sample.value)
        if sample.requests is not None:
            self.metrics.signal_requests.labels(signal=signal_name).set(sample.requests)
        started = time.perf_counter()
        observation = self.engine.observe(signal_name, sample)
        self.metrics.evaluation_duration.observe(time.perf_counter() - started)
        for moved in observation.transitions:
            state = self.engine.states[moved.rule]
            self.metrics.set_rule_state(moved.rule, moved.after)
            self.metrics.rule_blind.labels(rule=moved.rule).set(1 if state.blind_long else 0)
            log.info(
                "rule state",
                rule=moved.rule,
                state=moved.after.value,
                previous=moved.before.value,
                since=state.active_since,
                value=state.value,
                reason=state.blind_reason or None,
            )
        for decision in observation.decisions:
            self._record(decision)
        for hook in self.observers:
            hook(observation)
        return observation

    def _record(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.metrics.decisions.labels(rule=decision.rule, kind=decision.kind.value).inc()
        if decision.kind.value == "blind":
            self.metrics.rule_blind.labels(rule=decision.rule).set(1)
        log.warning(
            "decision",
            kind=decision.kind.value,
            rule=decision.rule,
            severity=decision.severity,
            targets=list(decision.targets),
            observed=decision.observed,
            threshold=decision.threshold,
            samples=decision.sample_count,
            why=decision.why,
        )
        if self.on_decision is not None:
            task = asyncio.create_task(self._handle(decision), name=f"decision:{decision.rule}")
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _handle(self, decision: Decision) -> None:
        assert self.on_decision is not None
        try:
            await self.on_decision(decision)
        except asyncio.CancelledError:
            raise
        except Exception:  # boundary: one failed handler must not stop the watchdog
            log.exception("decision handler failed", rule=decision.rule)

    async def drain(self) -> None:
        """Wait for decision handlers started so far (tests, shutdown)."""
        while self._handlers:
            await asyncio.gather(*list(self._handlers), return_exceptions=True)

    # --- health --------------------------------------------------------------------

    def ready(self, now: float | None = None) -> tuple[bool, str]:
        """Ready when rules are loaded and every sampled source answered recently."""
        return readiness(self.ruleset, self._last_answer, self.clock.now() if now is None else now)
