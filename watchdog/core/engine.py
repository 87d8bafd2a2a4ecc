"""The one engine: samples in, rule states, transitions and decisions out.

The daemon feeds it live samples, the backtest recorded ones, the rule unit tests
expanded series; all with their own clock. It holds no I/O and no wall clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watchdog.core import burn
from watchdog.core.canary import Canaries
from watchdog.core.decider import Transition, decide, transition
from watchdog.core.decision import Decision
from watchdog.core.evaluator import INITIAL, RuleState, State, Stepper, stepper
from watchdog.core.regression import baseline_upper
from watchdog.core.window import SignalWindow
from watchdog.model import Sample, Split
from watchdog.rules.load import ResolvedSignal, RuleSet
from watchdog.rules.model import RuleSpec


@dataclass(slots=True)
class Observation:
    """What one sample changed. Most samples change nothing: the empty tuples are
    shared, and lists are made only for a sample that moves a rule (a month of
    backtest samples would otherwise allocate two lists each)."""

    signal: str
    sample: Sample
    transitions: Sequence[Transition] = ()
    decisions: Sequence[Decision] = ()


_INACTIVE = State.INACTIVE


class Engine:
    """Rule states for a rule set, advanced one sample at a time."""

    def __init__(self, ruleset: RuleSet, window_span_s: float = 3600.0) -> None:
        self.window_span_s = window_span_s
        self.states: dict[str, RuleState] = {}
        self.windows: dict[str, SignalWindow] = {}
        self.ruleset = ruleset
        # The latest time a rule settled back to inactive from any other state: the
        # version ledger's healthy run must not span it, though it ticks less often
        # than samples arrive (an inconclusive minute between two ticks).
        self.unsettled_at: float | None = None
        self._by_signal: Mapping[str, list[RuleSpec]] = {}
        # Per signal, each rule with its blind_after and its kind's step function (None:
        # a canary rule): resolved once, not per sample.
        self._plan: dict[str, tuple[tuple[RuleSpec, float, Stepper | None], ...]] = {}
        self.canaries = Canaries()  # gradual deployments and the canary rules' tests
        self.replace_rules(ruleset)

    def replace_rules(self, ruleset: RuleSet) -> None:
        """Swap in new rules; a rule whose definition did not change keeps its state."""
        old = self.ruleset
        by_signal: dict[str, list[RuleSpec]] = defaultdict(list)
        states: dict[str, RuleState] = {}
        # Per signal, once: unchanged? (10,000 rules share a thousand signals.)
        same_signal = {
            name: old.signals.get(name) == signal for name, signal in ruleset.signals.items()
        }
        old_rules = old.rules_by_name
        for rule in ruleset.rules:
            by_signal[rule.signal].append(rule)
            kept = self.states.get(rule.name)
            before = old_rules.get(rule.name)
            # ``is`` first: a reload that parsed only the edited rules kept the others.
            if (
                kept is not None
                and same_signal.get(rule.signal, False)
                and (before is rule or before == rule)
            ):
                states[rule.name] = kept
            else:
                states[rule.name] = INITIAL
        for name in ruleset.signals:
            if name not in self.windows:
                self.windows[name] = SignalWindow(self.window_span_s)
        self.ruleset = ruleset
        self.states = states
        self._by_signal = dict(by_signal)
        self._plan = {
            name: tuple(
                (
                    rule,
                    ruleset.blind_after(rule),
                    None if rule.canary is not None else stepper(rule),
                )
                for rule in rules
            )
            for name, rules in by_signal.items()
        }

    def deployed(self, target: str, at: float) -> None:
        """A deploy of ``target`` went live at ``at``: each regression rule that rolls
        it back (or names no target) starts its test, against the counts its signal's
        window holds from ``baseline`` before the deploy; counts the window already
        holds from after it (a deploy learnt of late) are the first since."""
        for rule in self.ruleset.rules:
            spec = rule.regression
            if spec is None or (rule.rollback and target not in rule.rollback):
                continue
            window = self.windows.get(rule.signal)
            before = [0.0, 0.0]
            since = [0.0, 0.0]  # a deploy learnt of late: what it already served counts
            for sample in window or ():
                if sample.is_evidence and sample.errors is not None and sample.requests:
                    into = since if sample.at >= at else before
                    if sample.at >= at - spec.baseline:
                        into[0] += sample.errors
                        into[1] += sample.requests
            # The baseline's bound once per deploy, not per sample (it bisects).
            upper = baseline_upper(before[0], before[1], spec.confidence) if before[1] > 0 else 1.0
            self.states[rule.name] = self.states[rule.name]._replace(
                baseline=(at, before[0], before[1], upper), errors=since[0], requests=since[1]
            )

    def split(self, target: str, split: Split | None) -> None:
        """What serves ``target`` now: a gradual deployment (canary rules judge its new
        version against its old one), or None when one version serves everything."""
        self.canaries.split(target, split, self.ruleset.rules, self.windows)

    def burn_horizons(self) -> dict[str, float]:
        """Per signal its burn-rate rules watch, their longest window."""
        out: dict[str, float] = {}
        for rule in self.ruleset.rules:
            if rule.burn_rate is not None:
                longest = max(w.long for w in rule.burn_rate.windows)
                out[rule.signal] = max(out.get(rule.signal, 0.0), longest)
        return out

    def restore_minutes(self, signal: str, rows: Sequence[tuple[float, float, float]]) -> None:
        """Per-minute counts of ``signal`` kept from before a restart, oldest first:
        each burn-rate rule on it starts from them (minutes it already counted since
        the start win). The windows then hold what they held before the restart."""
        for rule in self.rules_for(signal):
            if rule.burn_rate is None:
                continue
            state = self.states[rule.name]
            mine = state.minutes
            first = mine.starts[0] if mine.starts else float("inf")
            older = tuple(row for row in rows if row[0] < first)
            merged = burn.Minutes.of(older + mine.rows())
            self.states[rule.name] = state._replace(minutes=merged)

    def rules_for(self, signal: str) -> list[RuleSpec]:
        return self._by_signal.get(signal, [])

    def observe(self, signal_name: str, sample: Sample) -> Observation:
        """Feed one sample of one signal through every rule that watches it."""
        if signal_name not in self.ruleset.signals:
            raise KeyError(signal_name)
        window = self.windows.get(signal_name)
        if window is None:
            window = self.windows[signal_name] = SignalWindow(self.window_span_s)
        window.add(sample)
        transitions: list[Transition] | None = None
        decisions: list[Decision] | None = None
        states = self.states
        for rule, blind_after, step in self._plan.get(signal_name, ()):
            name = rule.name
            prev = states[name]
            if step is not None:
                new = step(rule, prev, sample, blind_after)
            else:
                new = self.canaries.step(rule, prev, sample, blind_after)
            states[name] = new
            # Hot path: only a new state or a new blind_long can be a transition or a
            # decision (see ``decide``); most samples change neither.
            if new.state is prev.state and new.blind_long == prev.blind_long:
                continue
            if new.state is _INACTIVE:
                self.unsettled_at = sample.at
            moved = transition(rule, prev, new)
            if moved is not None:
                transitions = [*(transitions or ()), moved]
            signal: ResolvedSignal = self.ruleset.signals[signal_name]
            decision = decide(rule, signal, self.ruleset, prev, new)
            if decision is not None and rule.canary is not None:
                decision = self.canaries.annotate(rule, decision)
            if decision is not None:
                decisions = [*(decisions or ()), decision]
        if transitions is None and decisions is None:
            return Observation(signal_name, sample)
        return Observation(signal_name, sample, transitions or (), decisions or ())
