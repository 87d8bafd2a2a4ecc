"""The replay: the live ``Engine`` and ``IncidentManager`` on a virtual clock, fed
recorded samples in time order, with the stand-ins for the outside world; each state
change, decision and incident step becomes a timeline event.

Deadlines (grace, verification, escalation) are checked at each recorded sample time;
the live daemon checks every second, so a deadline may show up to one step late.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from watchdog.actions.notify.event import IncidentEvent
from watchdog.actions.playbook import Playbook
from watchdog.backtest.splits import SplitFeed
from watchdog.backtest.standins import (
    RecordedNotifier,
    RecordedPurge,
    RecordedTarget,
    ReplayStore,
)
from watchdog.backtest.timeline import STATES, Event, Span
from watchdog.backtest.times import Deployments
from watchdog.clock import FakeClock
from watchdog.core.decider import burn_of, evidence_of, regression_of
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine, Observation
from watchdog.core.evaluator import State
from watchdog.incidents.manager import IncidentManager
from watchdog.incidents.matchers import Matcher
from watchdog.incidents.silence import Silences
from watchdog.model import Sample
from watchdog.rules.load import RuleSet
from watchdog.rules.response import Correlation
from watchdog.units import format_duration, format_value


def suppression_reason(why: str) -> str:
    """The manager's blocker message → a short reason for the summary."""
    if why.startswith("cooldown"):
        return "cooldown"
    if why.startswith("global cap"):
        return "cap"
    if why.startswith("silenced"):
        return "silence"
    if why.startswith("cannot read"):
        return "error"
    return "deploy"  # no deploy / nothing live / breach before the deploy / deploy too old


_SUPPRESS_TEXT = {
    "cooldown": "by the cooldown",
    "cap": "by the hourly cap",
    "silence": "by a silence",
    "deploy": "missing deploy",
    "error": "target unreadable",
}


class Replay:
    """The live engine and incident manager on a virtual clock, fed samples in time
    order; ``timeline`` collects what happened."""

    def __init__(
        self,
        ruleset: RuleSet,
        deployments: Deployments | None = None,
        silences: Sequence[Sequence[Matcher]] = (),
        ignore_deploys: bool = False,
    ) -> None:
        if ignore_deploys:
            ruleset = dataclasses.replace(
                ruleset, correlation=Correlation(enabled=False, max_deploy_age=0.0)
            )
        self.ruleset = ruleset
        self.clock = FakeClock(0.0)
        self.engine = Engine(ruleset)
        self.store = ReplayStore()
        self.silence_matchers = [list(m) for m in silences]
        self.silences = Silences(self.store, self.clock)
        self.timeline: list[Event] = []
        self._notified: dict[tuple[float, str, str], Event] = {}
        targets = {
            name: RecordedTarget(
                name,
                spec.type,
                None if ignore_deploys else (deployments or {}).get(name, ()),
                self.clock,
            )
            for name, spec in ruleset.targets.items()
        }
        playbook = Playbook(
            targets,
            {name: RecordedPurge(name) for name in ruleset.purges},
            {name: RecordedNotifier(name, self._on_notify) for name in ruleset.notifiers},
            self.store,
            self.clock,
            {name: spec.purge for name, spec in ruleset.targets.items()},
        )
        self.manager = IncidentManager(
            lambda: self.ruleset,
            self.engine,
            playbook,
            self.store,
            self.silences,
            self.clock,
            on_event=self._on_event,
        )
        self._incident_rule: dict[str, str] = {}
        # Deploys in time order, told to the engine as the replay reaches them
        # (regression rules compare each one's counts with before it).
        self._deploys = sorted(
            (deploy.created_at, name)
            for name, deploys in (() if ignore_deploys else (deployments or {}).items())
            for deploy in deploys
        )
        self._next_deploy = 0
        self._splits = SplitFeed(deployments or {})  # canary rules judge each split
        self._state_since: dict[str, tuple[State, float]] = {}
        self.spans: dict[str, list[Span]] = defaultdict(list)
        self.time_in_state: dict[str, dict[State, float]] = defaultdict(
            lambda: dict.fromkeys(STATES, 0.0)
        )

    async def run(
        self,
        streams: Mapping[str, Sequence[Sample]],
        after: Callable[[float], None] | None = None,
    ) -> None:
        """Feed every stream in time order (signals at the same time in rules order),
        then let the manager act and check its deadlines; ``after(t)`` runs once the
        moment ``t`` is done."""
        times = [s.at for stream in streams.values() for s in stream[:1]]
        ends = [stream[-1].at for stream in streams.values() if stream]
        if not times:
            return
        start, end = min(times), max(ends)
        self.clock.set(start)
        await self.store.open()
        try:
            for matchers in self.silence_matchers:
                await self.silences.add(
                    matchers,
                    starts_at=start,
                    ends_at=end + 1.0,
                    created_by="backtest --silence",
                    comment="given on the command line",
                )
            for rule in self.ruleset.rules:
                if streams.get(rule.signal):
                    self._state_since[rule.name] = (State.INACTIVE, streams[rule.signal][0].at)
            await self._feed(streams, after)
            self._close_spans(end)
        finally:
            await self.manager.drain()
            await self.store.close()

    async def _feed(
        self, streams: Mapping[str, Sequence[Sample]], after: Callable[[float], None] | None
    ) -> None:
        engine, manager, clock = self.engine, self.manager, self.clock
        observe = engine.observe
        for at, batch in _by_time(streams):
            clock.set(at)
            while (
                self._next_deploy < len(self._deploys) and self._deploys[self._next_deploy][0] <= at
            ):
                when, target = self._deploys[self._next_deploy]
                engine.deployed(target, when)
                self._splits.tell(engine, target, when)
                self._next_deploy += 1
            decided = False
            for name, sample in batch:
                observation = observe(name, sample)
                if observation.transitions or observation.decisions:
                    self._observed(observation)
                    for decision in observation.decisions:
                        decided = True
                        await manager.on_decision(decision)
            if decided or manager.open:
                await manager.drain()
                await manager.tick()
                await manager.drain()
            if after is not None:
                after(at)

    # --- what the engine said ----------------------------------------------------------

    def _observed(self, observation: Observation) -> None:
        signal = self.ruleset.signals[observation.signal]
        for moved in observation.transitions:
            state = self.engine.states[moved.rule]
            self._account(moved.rule, moved.after, moved.at)
            rule = self.ruleset.rule(moved.rule)
            value = format_value(state.value, signal.unit)
            op = ">" if rule.comparison == "above" else "<"
            fields: dict[str, Any] = {"value": _finite(state.value), "from": moved.before.value}
            found = evidence_of(rule, state) or regression_of(rule, state) or burn_of(rule, state)
            if found is not None:
                fields["evidence"] = dataclasses.asdict(found)
            if rule.mode == "share" and moved.after in (State.PENDING, State.FIRING):
                event = moved.after.value
                text = (
                    f"{signal.name} {value}; {state.breach_samples} breaching samples in the "
                    f"last {format_duration(rule.for_)} (needs {rule.share:.0%} of them)"
                )
            elif moved.after is State.PENDING:
                event = "pending"
                needs = format_duration(rule.for_)
                text = f"{signal.name} {value} {op} {rule.threshold.text} (for: {needs})"
            elif moved.after is State.FIRING:
                event = "firing"
                since = state.active_since if state.active_since is not None else moved.at
                lasted = format_duration(moved.at - since)
                text = f"{signal.name} {value} {op} {rule.threshold.text} for {lasted}"
            elif moved.after is State.INCONCLUSIVE:
                event = "inconclusive"
                text = f"{signal.name} {value}: the evidence cannot tell yet"
            elif moved.after is State.BLIND:
                event = "blind"
                fields["reason"] = state.blind_reason
                text = f"no evidence: {state.blind_reason}"
            elif moved.before is State.FIRING:
                event = "resolved"
                text = f"{signal.name} {value}, back within {rule.threshold.text}"
            else:
                event = "inactive"
                text = f"{signal.name} {value} (was {moved.before.value})"
            self.timeline.append(Event(moved.at, moved.rule, event, text, fields))
        for decision in observation.decisions:
            if decision.kind is DecisionKind.RESOLVED:
                continue  # the "resolved" state line says it
            self.timeline.append(_decision_event(decision))

    def _account(self, rule: str, state: State, at: float) -> None:
        before, since = self._state_since.get(rule, (State.INACTIVE, at))
        self.time_in_state[rule][before] += at - since
        if before is not State.INACTIVE:
            self.spans[rule].append((before, since, at))
        self._state_since[rule] = (state, at)

    def _close_spans(self, end: float) -> None:
        for rule, (state, _since) in list(self._state_since.items()):
            self._account(rule, state, end)

    # --- what the incident manager did -------------------------------------------------

    def _rule_of(self, incident_id: str, data: Mapping[str, Any]) -> str:
        incident = self.manager.open.get(incident_id)
        if incident is not None:
            return incident.decision.rule
        decision = data.get("decision")
        if isinstance(decision, dict) and "rule" in decision:
            return str(decision["rule"])
        return self._incident_rule.get(incident_id, incident_id)

    def _on_event(self, incident_id: str, kind: str, data: dict[str, Any]) -> None:
        at = self.clock.now()
        rule = self._rule_of(incident_id, data)
        self._incident_rule.setdefault(incident_id, rule)
        base = {"incident": incident_id}
        if kind == "detected":
            self._add(at, rule, "incident_opened", f"incident {incident_id}", base)
        elif kind == "grace":
            self._add(at, rule, "grace", f"until {data['until']}: {data['why']}", base)
        elif kind == "grace_over":
            self._add(at, rule, "grace_over", "still firing when the grace period ended", base)
        elif kind == "action" and data.get("action") == "rollback":
            target = str(data["target"])
            dry = bool(data.get("would"))
            text = f"{target}: {data['detail']}" + (" [dry run]" if dry else "")
            fields = {**base, "action": "rollback", "targets": [target], "dry_run": dry}
            self._add(at, rule, "would_rollback", text, fields)
        elif kind == "would_rollback" and "target" in data:
            self._suppressed(at, rule, str(data["target"]), str(data["why"]), base)
        elif kind == "rollback_blocked":
            self._suppressed(at, rule, str(data["target"]), str(data["why"]), base)
        elif kind == "verification":
            results = data.get("results", {})
            text = "; ".join(str(v) for v in results.values())
            self._add(at, rule, "verification", text, {**base, "results": results})
        elif kind == "escalated":
            self._add(at, rule, "escalated", str(data.get("why", "")), base)
        elif kind == "resolved":
            self._add(at, rule, "incident_closed", str(data.get("why", "")), base)

    def _suppressed(
        self, at: float, rule: str, target: str, why: str, base: dict[str, Any]
    ) -> None:
        reason = suppression_reason(why)
        fields = {**base, "action": "rollback", "targets": [target], "reason": reason, "why": why}
        text = f"{_SUPPRESS_TEXT[reason]} — {target}: {why}"
        self._add(at, rule, "suppressed", text, fields)

    def _on_notify(self, notifier: str, event: IncidentEvent) -> None:
        at = self.clock.now()
        key = (at, event.incident_id, event.kind.value)
        found = self._notified.get(key)
        if found is not None and self.timeline and self.timeline[-1] is found:
            names = [*found.fields["notifiers"], notifier]
            merged = Event(
                at,
                found.rule,
                found.event,
                f"{', '.join(names)}: {event.kind.value}",
                {**found.fields, "notifiers": names, "targets": names},
            )
            self.timeline[-1] = merged
            self._notified[key] = merged
            return
        fields = {
            "incident": event.incident_id,
            "action": "notify",
            "notifiers": [notifier],
            "targets": [notifier],
            "kind": event.kind.value,
            "message": event.headline(),
        }
        created = Event(
            at, event.decision.rule, "would_notify", f"{notifier}: {event.kind.value}", fields
        )
        self.timeline.append(created)
        self._notified[key] = created

    def _add(self, at: float, rule: str, event: str, text: str, fields: dict[str, Any]) -> None:
        self.timeline.append(Event(at, rule, event, text, fields))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _decision_event(decision: Decision) -> Event:
    targets = list(decision.targets)
    if decision.kind is DecisionKind.ROLLBACK:
        text = f"rollback {', '.join(targets)} (severity {decision.severity})"
    elif decision.kind is DecisionKind.NOTIFY:
        text = f"notify only (severity {decision.severity})"
    else:
        text = f"blind alert: {decision.why}"
    fields: dict[str, Any] = {
        "action": decision.kind.value,
        "targets": targets if decision.kind is DecisionKind.ROLLBACK else [],
        "severity": decision.severity,
        "observed": _finite(decision.observed),
        "why": decision.why,
    }
    if decision.evidence is not None:
        fields["evidence"] = dataclasses.asdict(decision.evidence)
    if decision.regression is not None:
        fields["evidence"] = dataclasses.asdict(decision.regression)
    if decision.burn is not None:
        fields["evidence"] = dataclasses.asdict(decision.burn)
    return Event(decision.decided_at, decision.rule, "decision", text, fields)


def _by_time(
    streams: Mapping[str, Sequence[Sample]],
) -> Iterator[tuple[float, Iterable[tuple[str, Sample]]]]:
    """``(t, [(signal, sample), ...])`` in time order."""
    names = list(streams)
    columns = [streams[name] for name in names]
    if columns and all(len(c) == len(columns[0]) for c in columns):
        first = [s.at for s in columns[0]]
        if all([s.at for s in column] == first for column in columns[1:]):
            # Every signal on the same grid (a recording made in one go): rows as they
            # are, no merging.
            for row in zip(*columns, strict=True):
                yield row[0].at, zip(names, row, strict=True)
            return
    merged: dict[float, list[tuple[str, Sample]]] = defaultdict(list)
    for name, column in zip(names, columns, strict=True):
        for sample in column:
            merged[sample.at].append((name, sample))
    for at in sorted(merged):
        yield at, merged[at]
