"""``rollback-watchdog test rules FILE...``: unit tests for rules files, in the spirit of
``promtool test rules``.

A test file names rules files, gives input series in promtool's expanding notation
and says what must hold at evaluation times. The series go through the same engine
and incident manager as the live daemon (see ``backtest.Replay``) on a virtual clock.

Test file format::

    rule_files: [../example.yaml]      # relative to this file; merged like --rules
    tests:
      - name: a 5m error spike rolls back     # shown in failures
        interval: 15s                  # time between input values (default: the rules'
                                       # defaults.interval); rules evaluate on each value
        start_time: 2026-11-28T10:00:00Z   # time of the first value (default 0 = 1970)
        input_series:
          - series: p95_latency        # a signal of the rules
            values: 0.3x19 6x40        # expanding notation (below)
          - series: error_rate         # a signal given as errors_query + requests_query:
            errors: _x19 80x40         # its two counts; `_` errors is no error series
            requests: 1000x59          # (0 errors where there is traffic), `_` requests
                                       # is no traffic (blind)
          - series: edge.versions      # a canary rule's per-version signal: each
            versions:                  # version's errors and requests per window
              v42: {errors: 2x59, requests: 6x59}
              v41: {errors: 1x59, requests: 54x59}
        deployments:                   # optional; as deployments.json, `at` may be a
          worker:                      # duration from start_time (-10m, 5m)
            - {version: v41, at: -2d}
            - {version: v42, at: -10m}
          api:                         # a split (backtest/splits.py): canary rules judge
            - {version: v41, at: -1d}  # v42 against v41 from then on
            - {versions: [{version: v42, percentage: 10}, {version: v41, percentage: 90}],
               at: -30s}
        silences:                      # optional; each a list of matchers
          - [rule=error-rate, target=frontend]
        rule_test:
          - eval_time: 5m              # a multiple of interval, within the input
            rule: error-rate
            exp_state: pending         # inactive | pending | firing | blind | inconclusive
          - eval_time: 10m
            rule: error-rate
            exp_state: firing
            exp_decision: rollback     # or a list: [rollback, blocked]
          - eval_time: 20m             # empty: nothing may fire (no rule firing, no
                                       # rollback/notify/grace/silenced/blocked)
          - eval_time: 30m
            rule: slow-p95             # empty with a rule: that rule may not fire

Expanding notation (``watchdog/series_notation.py``): ``a`` one value; ``a+bxn`` and
``a-bxn`` are ``a`` then ``n`` more values ``b`` apart (n+1 values); ``axn`` is ``n+1``
times ``a``; ``_`` a missing sample, ``_xn`` n of them; ``stale`` a staleness marker.
A missing or stale sample, ``NaN`` or a series that ended before the others is no data:
the rule is blind there (a gap resets ``for:``, as an absent series resets a pending
alert in Prometheus). A signal with a ``requests_query`` beside its ``query`` takes
``values`` and ``requests`` (its traffic); without ``requests`` it is blind, as the
live daemon is without a traffic answer.

``exp_decision`` is what the watchdog does for that rule at that moment, a value or a
list (compared as a set): ``rollback`` (targets would be rolled back; also for a
``dry_run`` rule), ``silenced`` (a silence held it back), ``blocked`` (a guard or deploy
correlation held it back), ``grace`` (high severity: waiting out the grace period),
``notify`` (a notify-only severity fired), ``blind`` (no evidence for blind_after),
``resolved`` (it stopped firing), ``escalated``, or ``none``.

Deploy correlation needs deploys: without ``deployments`` a test runs with
correlation off (every target has a live and a previous version); with them, as the
rules file says. Cooldowns, the hourly cap and silences always apply.

Output and exit codes follow promtool: ``Unit Testing:  FILE`` then ``SUCCESS``, or
``FAILED:`` and every failing expectation with what was expected and what happened;
exit 0 when every file passed, 1 otherwise (a file that cannot be read or parsed is a
failure too).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.backtest.replay import Replay
from watchdog.backtest.ruletest_file import (
    ACTING,
    OUTCOMES,
    Expectation,
    Failure,
    RuleTestError,
    RuleTestGroup,
    load_test_file,
)
from watchdog.backtest.ruletest_inputs import input_streams
from watchdog.backtest.times import parse_deployments, parse_time
from watchdog.core.decider import evidence_of
from watchdog.core.evaluator import RuleState, State
from watchdog.errors import BacktestError, RuleError, WatchdogError
from watchdog.incidents.matchers import Matcher, parse_matcher
from watchdog.model import Deploy
from watchdog.rules.load import RuleSet, load_rules
from watchdog.rules.model import RuleSpec
from watchdog.units import format_duration


def run_test_file(path: Path, run: re.Pattern[str] | None = None) -> list[Failure]:
    """Every failing expectation of the file's groups (``run`` selects groups by name).
    Raises ``RuleTestError``, ``RuleError`` or ``BacktestError`` for a file that cannot
    be run."""
    spec = load_test_file(path)
    ruleset = load_rules([path.parent / name for name in spec.rule_files])
    failures: list[Failure] = []
    for index, group in enumerate(spec.tests):
        label = group.name or f"tests[{index}]"
        if run is not None and run.search(group.name) is None:
            continue
        failures += asyncio.run(_run_group(ruleset, group, label))
    return failures


@dataclass
class _Observed:
    states: dict[float, dict[str, State]]
    outcomes: dict[tuple[float, str], set[str]]
    blind_reasons: dict[tuple[float, str], str] = field(default_factory=dict)


async def _run_group(ruleset: RuleSet, group: RuleTestGroup, label: str) -> list[Failure]:
    interval = group.interval if group.interval is not None else ruleset.defaults.interval
    if not interval > 0:
        raise RuleTestError(f"{label}: interval must be longer than 0s")
    start = parse_time(group.start_time) if group.start_time is not None else 0.0
    streams = input_streams(ruleset, group, label, start, interval)
    length = max((len(s) for s in streams.values()), default=0)
    wanted = _wanted_times(ruleset, group, label, start, interval, length)
    deployments = _deployments(group, label, start)
    silences = [_matchers(items, label) for items in group.silences]
    replay = Replay(ruleset, deployments, silences, ignore_deploys=deployments is None)
    observed = _Observed({}, defaultdict(set))
    specs = {rule.name: rule for rule in ruleset.rules}

    def snapshot(at: float) -> None:
        if at in wanted:
            states = replay.engine.states
            observed.states[at] = {name: s.state for name, s in states.items()}
            for name, state in states.items():
                # Why it cannot judge: the source's error, or the evidence that cannot tell.
                if state.state in (State.BLIND, State.INCONCLUSIVE):
                    observed.blind_reasons[(at, name)] = _why(specs[name], state)

    await replay.run(streams, after=snapshot)
    for event in replay.timeline:
        outcome = _outcome(event.event, event.fields)
        if outcome is not None:
            observed.outcomes[(event.at, event.rule)].add(outcome)
    return [
        failure
        for expectation in group.rule_test
        for failure in _check(expectation, start, interval, ruleset, observed, label)
    ]


def _wanted_times(
    ruleset: RuleSet, group: RuleTestGroup, label: str, start: float, interval: float, length: int
) -> set[float]:
    """The instants the expectations look at, each checked against the rules and inputs."""
    rule_names = {rule.name for rule in ruleset.rules}
    wanted: set[float] = set()
    for expectation in group.rule_test:
        if expectation.rule is not None and expectation.rule not in rule_names:
            raise RuleTestError(
                f"{label}: unknown rule {expectation.rule!r} "
                f"(expected one of: {', '.join(sorted(rule_names))})"
            )
        steps = expectation.eval_time / interval
        if abs(steps - round(steps)) > 1e-9:
            raise RuleTestError(
                f"{label}: eval_time {format_duration(expectation.eval_time)} is not a "
                f"multiple of the interval {format_duration(interval)}"
            )
        if round(steps) >= length:
            raise RuleTestError(
                f"{label}: eval_time {format_duration(expectation.eval_time)} is after the "
                f"last input value ({format_duration((length - 1) * interval)})"
            )
        wanted.add(start + round(steps) * interval)
    return wanted


def _deployments(group: RuleTestGroup, label: str, start: float) -> dict[str, list[Deploy]] | None:
    if group.deployments is None:
        return None
    try:
        return parse_deployments(group.deployments, f"{label}: deployments", start)
    except BacktestError as exc:
        raise RuleTestError(str(exc)) from None


def _matchers(items: Iterable[str], label: str) -> list[Matcher]:
    try:
        return [parse_matcher(item) for item in items]
    except WatchdogError as exc:
        raise RuleTestError(f"{label}: silences: {exc}") from None


def _outcome(event: str, fields: Any) -> str | None:
    if event == "would_rollback":
        return "rollback"
    if event == "suppressed":
        return "silenced" if fields.get("reason") == "silence" else "blocked"
    if event == "grace":
        return "grace"
    if event == "decision" and fields.get("action") in ("notify", "blind"):
        return str(fields["action"])
    if event == "resolved":
        return "resolved"
    if event == "escalated":
        return "escalated"
    return None


def _check(
    expectation: Expectation,
    start: float,
    interval: float,
    ruleset: RuleSet,
    observed: _Observed,
    label: str,
) -> list[Failure]:
    at = start + round(expectation.eval_time / interval) * interval
    states = observed.states.get(at, {})
    names = [expectation.rule] if expectation.rule else [r.name for r in ruleset.rules]
    if expectation.empty:
        acting = {name: sorted(observed.outcomes.get((at, name), set()) & ACTING) for name in names}
        busy = [
            f"{name} {states.get(name, State.INACTIVE).value}"
            + (f", decision {', '.join(acting[name])}" if acting[name] else "")
            for name in names
            if states.get(name) is State.FIRING or acting[name]
        ]
        if not busy:
            return []
        return [
            Failure(
                label,
                expectation.rule,
                expectation.eval_time,
                "nothing firing, no decision to act",
                "; ".join(busy),
            )
        ]
    if expectation.rule is None:
        raise RuleTestError(
            f"{label}: eval_time {format_duration(expectation.eval_time)}: exp_state and "
            "exp_decision need a rule"
        )
    name = expectation.rule
    state = states.get(name, State.INACTIVE).value
    reason = observed.blind_reasons.get((at, name))
    decisions = frozenset(observed.outcomes.get((at, name), set()))
    ok = True
    expected: list[str] = []
    got: list[str] = []
    if expectation.exp_state is not None:
        ok = ok and state == expectation.exp_state
        expected.append(f"state {expectation.exp_state}")
    why = f" ({reason})" if state in ("blind", "inconclusive") and reason else ""
    got.append(f"state {state}{why}")
    if expectation.exp_decision is not None:
        want = expectation.decisions()
        ok = ok and decisions == want
        expected.append(f"decision {_set_text(want)}")
    got.append(f"decision {_set_text(decisions)}")
    if ok:
        return []
    return [Failure(label, name, expectation.eval_time, ", ".join(expected), ", ".join(got))]


def _set_text(items: Iterable[str]) -> str:
    ordered = [o for o in OUTCOMES if o in set(items)]
    return ", ".join(ordered) or "none"


def run_rule_tests(paths: Sequence[str], run: str | None = None) -> tuple[int, list[str]]:
    """Run every file; (exit code, output lines) as promtool prints them."""
    pattern = re.compile(run) if run else None
    lines: list[str] = []
    code = 0
    for raw in paths:
        path = Path(raw)
        lines.append(f"Unit Testing:  {path}")
        try:
            failures = run_test_file(path, pattern)
        except RuleError as exc:
            code = 1
            lines.append("  FAILED:")
            lines += [f"    {problem}" for problem in exc.problems]
            lines.append("")
            continue
        except (RuleTestError, BacktestError) as exc:
            code = 1
            lines += ["  FAILED:", f"    {exc}", ""]
            continue
        if failures:
            code = 1
            lines.append("  FAILED:")
            lines += [failure.render() for failure in failures]
        else:
            lines.append("  SUCCESS")
        lines.append("")
    return code, lines


def _why(rule: RuleSpec, state: RuleState) -> str:
    """A blind or inconclusive state's reason; a confidence rule's counts and interval
    when the state carries none (the evaluator leaves them to be built on demand)."""
    if state.blind_reason or state.state is not State.INCONCLUSIVE:
        return state.blind_reason
    evidence = evidence_of(rule, state)
    return evidence.text() if evidence is not None else ""
