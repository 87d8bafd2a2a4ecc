"""The columnar replay: every rule evaluated over whole arrays first (``columnar``),
then only the moments that matter handed to the same ``Replay``, engine states,
incident manager and guards as the step path.

A moment matters when a rule's state (or ``blind_long``) changes there, and, while an
incident is open, when the manager's ``next_deadline`` has come (the step path ticks
at every sample time; between a change of state and a deadline a tick does nothing,
and ``every_sample=True`` ticks at each to prove it). There the engine's state of
each rule is set to exactly the ``RuleState`` that folding ``step`` would hold,
transitions and decisions are made by the engine's own ``transition`` and
``decide``, and the signal windows that the manager reads (baselines, verification)
show the samples of the last hour, built on demand. Rules the columnar evaluator
does not take fold ``step`` themselves (``StepTrack``), so one counted rule does not
send the whole replay back.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from watchdog.backtest.columnar import evaluate, unsupported
from watchdog.backtest.columns import VALUE, Columns, ColumnSamples, columns_of
from watchdog.backtest.decimals import Floats
from watchdog.backtest.recordings import Recording
from watchdog.backtest.replay import Replay
from watchdog.backtest.times import Deployments
from watchdog.clock import Clock
from watchdog.core.decider import Transition, decide, transition
from watchdog.core.decision import Decision
from watchdog.core.engine import Observation
from watchdog.core.evaluator import INITIAL, RuleState, step
from watchdog.core.window import SignalWindow
from watchdog.incidents.matchers import Matcher
from watchdog.incidents.model import rules_of
from watchdog.model import Sample
from watchdog.rules.load import RuleSet
from watchdog.rules.model import RuleSpec


class RuleTrack(Protocol):
    def changes(self) -> NDArray[np.intp]: ...
    def state_at(self, i: int) -> RuleState: ...


class StepTrack:
    """A rule folded through ``step`` over its signal's columns (counted rules)."""

    def __init__(self, rule: RuleSpec, columns: Columns, blind_after: float) -> None:
        self.rule, self.columns, self.blind_after = rule, columns, blind_after
        self._at_change: dict[int, RuleState] = {}
        state = INITIAL
        for i in range(len(columns)):
            new = step(rule, state, columns.sample(i), blind_after)
            if new.state is not state.state or new.blind_long != state.blind_long:
                self._at_change[i] = new
            state = new
        self._cursor, self._state = -1, INITIAL

    def changes(self) -> NDArray[np.intp]:
        return np.array(sorted(self._at_change), dtype=np.intp)

    def state_at(self, i: int) -> RuleState:
        if i < self._cursor:
            self._cursor, self._state = -1, INITIAL
        while self._cursor < i:
            self._cursor += 1
            self._state = step(
                self.rule, self._state, self.columns.sample(self._cursor), self.blind_after
            )
        return self._state


def track(rule: RuleSpec, columns: Columns, blind_after: float) -> RuleTrack:
    """The columnar track of ``rule``, or a ``StepTrack`` for a rule it does not take."""
    if unsupported(rule) is None:
        return evaluate(rule, columns, blind_after)
    return StepTrack(rule, columns, blind_after)


class ColumnWindow(SignalWindow):
    """A signal window over columns: the samples of the last ``span_s`` up to the
    replay's current sample. What the manager reads of it (episode starts, baselines,
    the samples of a verification) is read from the arrays; ``Sample`` objects are
    built only for the samples handed out."""

    def __init__(self, columns: Columns, span_s: float, clock: Clock) -> None:
        super().__init__(span_s)
        self.columns = columns
        self.clock = clock
        self._lo = self._hi = 0  # the deque holds samples [lo, hi)
        self._evidence = (columns.kind == VALUE) & ~np.isnan(columns.value)

    def _bounds(self) -> tuple[int, int]:
        """The indexes ``[lo, hi)`` of the samples the live window would hold now."""
        hi = self.columns.index_at(self.clock.now()) + 1
        if hi <= 0:
            return 0, 0
        t = self.columns.t
        maxlen = self._samples.maxlen or hi
        lo = max(int(np.searchsorted(t, t[hi - 1] - self.span_s, side="left")), hi - maxlen)
        return lo, hi

    def _sync(self) -> None:
        lo, hi = self._bounds()
        if hi <= 0:
            self._samples.clear()
            self._lo = self._hi = 0
            return
        if not self._lo <= lo <= self._hi:
            self._samples.clear()
            self._lo = self._hi = lo
        for _ in range(lo - self._lo):
            self._samples.popleft()
        self._samples.extend(self.columns.sample(i) for i in range(max(self._hi, lo), hi))
        self._lo, self._hi = lo, hi

    def add(self, sample: Sample) -> None:
        raise TypeError("a column window follows its replay; nothing is added to it")

    def __iter__(self) -> Iterator[Sample]:
        self._sync()
        return super().__iter__()

    def __len__(self) -> int:
        self._sync()
        return super().__len__()

    @property
    def latest(self) -> Sample | None:
        lo, hi = self._bounds()
        return self.columns.sample(hi - 1) if hi > lo else None

    def _range(self, start: float, end: float) -> range:
        """The indexes of the held samples with ``start <= at < end``."""
        lo, hi = self._bounds()
        t = self.columns.t[lo:hi]
        first = int(np.searchsorted(t, start, side="left"))
        return range(lo + first, lo + max(first, int(np.searchsorted(t, end, side="left"))))

    def between(self, start: float, end: float) -> list[Sample]:
        return [self.columns.sample(i) for i in self._range(start, end)]

    def baseline(
        self,
        before: float,
        span_s: float = 900.0,
        breaching: Callable[[float], bool] | None = None,
    ) -> float | None:
        """``SignalWindow.baseline``, read from the arrays (the same values, in order)."""
        held = self._range(before - span_s, before)
        values = self.columns.value[held.start : held.stop][
            self._evidence[held.start : held.stop]
        ].tolist()
        if breaching is not None:
            values = [v for v in values if not breaching(v)]
        return statistics.median(values) if values else None

    def episode_start(
        self, start: float, breaching: Callable[[float], bool], gap_s: float
    ) -> float:
        """``SignalWindow.episode_start``, walking the arrays back from ``start``."""
        lo, hi = self._bounds()
        times = self.columns.t
        i = lo + int(np.searchsorted(times[lo:hi], start, side="left")) - 1
        first = start
        while i >= lo:
            at = float(times[i])
            if at < first - gap_s:
                break
            if self._evidence[i] and breaching(float(self.columns.value[i])):
                first = at
            i -= 1
        return first


class ColumnarReplay(Replay):
    """``Replay`` fed from columns: only state changes (and, while an incident is
    open, each sample time) reach the engine's states and the incident manager."""

    def __init__(
        self,
        ruleset: RuleSet,
        columns: Mapping[str, Columns],
        tracks: Mapping[str, RuleTrack],
        deployments: Deployments | None = None,
        silences: Sequence[Sequence[Matcher]] = (),
        ignore_deploys: bool = False,
        every_sample: bool = False,
    ) -> None:
        super().__init__(ruleset, deployments, silences, ignore_deploys)
        self.every_sample = every_sample
        self.ticks = 0  # how many times the manager was ticked
        self.columns = dict(columns)
        self.tracks = dict(tracks)
        for name, c in columns.items():
            self.engine.windows[name] = ColumnWindow(c, self.engine.window_span_s, self.clock)
        # Rules whose engine state has no time yet (set once their signal has a sample).
        self._unset = [r for r in ruleset.rules if r.name in self.tracks]

    def streams(self) -> dict[str, Sequence[Sample]]:
        return {name: ColumnSamples(c) for name, c in self.columns.items()}

    def _moments(self, times: Floats) -> dict[int, list[tuple[RuleSpec, int]]]:
        """Grid index → the rules that change there (with their sample index), in
        the order the engine would meet them: signals in replay order, rules in
        file order."""
        moments: dict[int, list[tuple[RuleSpec, int]]] = defaultdict(list)
        for signal in self.columns:
            for rule in self.ruleset.rules:
                if rule.signal != signal or rule.name not in self.tracks:
                    continue
                at_change = self.tracks[rule.name].changes()
                grid = np.searchsorted(times, self.columns[signal].t[at_change])
                for g, i in zip(grid.tolist(), at_change.tolist(), strict=True):
                    moments[g].append((rule, i))
        return moments

    async def _feed(
        self, streams: Mapping[str, Sequence[Sample]], after: Callable[[float], None] | None
    ) -> None:
        if after is not None:
            raise TypeError("the columnar replay has no per-sample hook (use Replay)")
        every = [c.t for c in self.columns.values()]
        same = all(t.size == every[0].size and np.array_equal(t, every[0]) for t in every)
        times = every[0] if same else np.unique(np.concatenate(every))
        moments = self._moments(times)
        # A signal's first sample gives its rules a time (the ledger's calm needs it).
        firsts = np.searchsorted(times, [c.t[0] for c in self.columns.values() if c.t.size])
        ahead = np.union1d(np.array(sorted(moments), dtype=np.intp), firsts.astype(np.intp))
        marks = [*ahead.tolist(), times.size]  # the moments, in order, then the end
        size = times.size
        g = marks[0]
        later = 0  # marks[later] is the next moment after g
        due = -math.inf  # the manager's next deadline
        while g < size:
            at = float(times[g])
            self.clock.set(at)
            self._tell_deploys(at)
            changing = moments.get(g, ())
            decided = await self._changes(changing)
            if decided or (self.manager.open and (self.every_sample or changing or at >= due)):
                self._sync(at)
                await self.manager.drain()
                await self.manager.tick()
                await self.manager.drain()
                self.ticks += 1
                due = self.manager.next_deadline()
            while marks[later] <= g:
                later += 1
            g_next = marks[later]
            if self.manager.open:
                # The first sample at or after the deadline, unless a change comes first.
                at_due = g + 1 if self.every_sample else int(np.searchsorted(times, due))
                g_next = min(g_next, max(at_due, g + 1))
            g = g_next

    def _tell_deploys(self, at: float) -> None:
        while self._next_deploy < len(self._deploys) and self._deploys[self._next_deploy][0] <= at:
            when, target = self._deploys[self._next_deploy]
            self.engine.deployed(target, when)
            self._next_deploy += 1

    async def _changes(self, changing: Sequence[tuple[RuleSpec, int]]) -> bool:
        """The engine's transitions and decisions for the rules that change now, one
        observation per signal as ``Engine.observe`` makes them; True when any
        decision was taken."""
        decided = False
        k = 0
        while k < len(changing):
            signal = changing[k][0].signal
            moved: list[Transition] = []
            decisions: list[Decision] = []
            i = changing[k][1]
            while k < len(changing) and changing[k][0].signal == signal:
                rule, i = changing[k]
                k += 1
                prev = self.engine.states[rule.name]
                new = self.tracks[rule.name].state_at(i)
                self.engine.states[rule.name] = new
                found = transition(rule, prev, new)
                if found is not None:
                    moved.append(found)
                decision = decide(rule, self.ruleset.signals[signal], self.ruleset, prev, new)
                if decision is not None:
                    decisions.append(decision)
            if moved or decisions:
                sample = self.columns[signal].sample(i)
                self._observed(Observation(signal, sample, moved, decisions))
                for decision in decisions:
                    decided = True
                    await self.manager.on_decision(decision)
        return decided

    def _sync(self, at: float) -> None:
        """Before a tick: the manager reads the state *and time* of the rules of each
        open incident (is the evidence after the rollback?), and that every rule has
        a time (the version ledger's healthy run); those are brought up to ``at``.
        Any other rule's state only changes where the replay set it already."""
        states = self.engine.states
        wanted = {name for incident in self.manager.open.values() for name in rules_of(incident)}
        unset, self._unset = self._unset, []
        for rule in unset:
            if self.columns[rule.signal].index_at(at) < 0:
                self._unset.append(rule)
            else:
                wanted.add(rule.name)
        for name in wanted:
            found = self.tracks.get(name)
            if found is not None:
                i = self.columns[self.ruleset.rule(name).signal].index_at(at)
                if i >= 0:
                    states[name] = found.state_at(i)


async def replay_columns(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    start: float,
    end: float,
    deployments: Deployments | None = None,
    silences: Sequence[Sequence[Matcher]] = (),
    ignore_deploys: bool = False,
    every_sample: bool = False,
) -> tuple[ColumnarReplay, dict[str, Sequence[Sample]]]:
    """``recordings`` replayed the columnar way; the replay and what it replayed."""
    columns = {name: columns_of(r, start, end) for name, r in recordings.items()}
    tracks = {
        rule.name: track(rule, columns[rule.signal], ruleset.blind_after(rule))
        for rule in ruleset.rules
        if rule.signal in columns
    }
    replay = ColumnarReplay(
        ruleset, columns, tracks, deployments, silences, ignore_deploys, every_sample
    )
    streams = replay.streams()
    await replay.run(streams)
    return replay, streams
