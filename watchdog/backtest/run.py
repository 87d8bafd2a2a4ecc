"""Running a backtest: recordings in, the replay run, the summary counted from its
timeline; and the helpers that keep a month of samples fast to replay."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from watchdog.backtest.recordings import (
    Points,
    Recording,
    evidence_notes,
    read_matrix_file,
    watched_signals,
)
from watchdog.backtest.replay import Replay
from watchdog.backtest.samples import infer_step, samples_of
from watchdog.backtest.splits import in_span
from watchdog.backtest.timeline import BacktestResult, Event, RuleSummary, Summary
from watchdog.backtest.times import Deployments
from watchdog.errors import BacktestError
from watchdog.gcpause import paused_gc
from watchdog.incidents.matchers import Matcher
from watchdog.model import Sample
from watchdog.rules.load import RuleSet

T = TypeVar("T")


async def backtest(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    deployments: Deployments | None = None,
    silences: Sequence[Sequence[Matcher]] = (),
    ignore_deploys: bool = False,
    notes: Sequence[str] = (),
    start: float | None = None,
    end: float | None = None,
    columnar: bool | None = None,
) -> BacktestResult:
    """Replay ``recordings`` through the rules; the timeline and the summary.

    ``columnar``: None takes the columnar replay where it can (and notes why not);
    False asks for the step path (the definition, for comparisons)."""
    lo, hi, replayed = replay_plan(ruleset, recordings, start, end)
    replay: Replay
    why_not = step_path_reason(ruleset) if columnar is not False else "asked for"
    if why_not is None:
        from watchdog.backtest.columnar_replay import replay_columns

        replay, samples = await replay_columns(
            ruleset, replayed, lo, hi, deployments, silences, ignore_deploys
        )
    else:
        samples = {
            name: samples_of(r, lo, hi) if r.versions is None else in_span(r.versions, lo, hi)
            for name, r in replayed.items()
        }
        replay = Replay(ruleset, deployments, silences, ignore_deploys)
        await replay.run(samples)
        if columnar is None:
            notes = [*notes, f"replayed sample by sample (the step path): {why_not}"]
    all_notes = [*notes, *evidence_notes(ruleset, recordings)]
    if deployments is None and not ignore_deploys and ruleset.correlation.enabled:
        all_notes.append(
            "no deployments.json: no deploy is known, so deploy correlation blocks every "
            "rollback (give one, or --ignore-deploys)"
        )
    summary = _summarize(ruleset, replay, samples, all_notes)
    return BacktestResult(replay.timeline, summary, dict(replay.spans), dict(samples))


def replay_plan(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    start: float | None = None,
    end: float | None = None,
) -> tuple[float, float, dict[str, Recording]]:
    """The replay's start and end, and the recordings it replays (an empty answer
    given a step: no data at every step, as live)."""
    if not recordings:
        raise BacktestError("nothing to replay: no recording")
    spans = [span for r in recordings.values() if (span := r.span()) is not None]
    lo = start if start is not None else min((s[0] for s in spans), default=None)
    hi = end if end is not None else max((s[1] for s in spans), default=None)
    if lo is None or hi is None:
        raise BacktestError(
            "every recording is empty (no series at all): nothing says when the replay "
            "runs (fetch with --prometheus and --from/--to)"
        )
    step = _common_step(recordings)
    replayed: dict[str, Recording] = {}
    for name in watched_signals(ruleset):
        recording = recordings.get(name)
        if recording is None:
            continue
        if recording.step is None and recording.span() is None:
            # An empty answer is no data at every step of the replay, as live.
            signal = ruleset.signals.get(name)
            own = step or (signal.interval if signal is not None else None)
            recording = dataclasses.replace(recording, step=own)
        replayed[name] = recording
    return lo, hi, replayed


def step_path_reason(ruleset: RuleSet) -> str | None:
    """Why this rule set cannot take the columnar replay (None: it can)."""
    try:
        import numpy  # noqa: F401
        import orjson  # noqa: F401
    except ImportError:
        return (
            "the columnar replay needs the fast extra (pip install 'rollback-watchdog[fast]'); "
            "same result, slower"
        )
    for rule in ruleset.rules:
        if rule.regression is not None:
            return f"{rule.name} is a regression rule: it hears of each deploy as the replay goes"
        if rule.canary is not None:
            return f"{rule.name} is a canary rule: it hears of each split as the replay goes"
    return None


def point_reader() -> Callable[[Path], Points]:
    """How to read a recording file: into arrays when the columnar replay can run."""
    try:
        from watchdog.backtest.columns import read_points
    except ImportError:
        return read_matrix_file
    return read_points


def _common_step(recordings: Mapping[str, Recording]) -> float | None:
    """The recordings' step: a known one, else the one the longest series shows."""
    for recording in recordings.values():
        if recording.step is not None:
            return recording.step
    longest = max((r.longest() for r in recordings.values()), key=len, default=())
    return infer_step(longest)


def run_backtest(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    **options: Any,
) -> BacktestResult:
    """``backtest`` for synchronous callers (the CLI)."""
    with paused_gc():
        return run_sync(backtest(ruleset, recordings, **options))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` for a coroutine with a large result. On its way out, Python
    3.11's ``asyncio.run`` builds the repr of its main task, result included, while it
    restores the SIGINT handler: seconds for millions of samples. So the main task
    hands the result over on the side and returns nothing."""
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    asyncio.run(main())
    return box[0]


@dataclass
class _Tally:
    """What the whole replay would have done, counted from its timeline."""

    incidents: int = 0
    rollbacks: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    notifications: int = 0

    def count(self, event: Event) -> None:
        if event.event == "incident_opened":
            self.incidents += 1
        elif event.event == "would_rollback" and not event.fields.get("dry_run"):
            self.rollbacks.update(event.fields["targets"])
        elif event.event == "suppressed":
            self.suppressed[event.fields["reason"]] += 1
        elif event.event == "would_notify":
            self.notifications += len(event.fields["notifiers"])


def _count_for_rule(event: Event, per_rule: RuleSummary) -> None:
    if event.event == "would_rollback" and not event.fields.get("dry_run"):
        per_rule.would_rollback += 1
    elif event.event == "suppressed":
        per_rule.suppressed[event.fields["reason"]] += 1
    elif event.event == "would_notify":
        per_rule.notifications += len(event.fields["notifiers"])
    elif event.event == "firing":
        per_rule.fired += 1
    elif event.event == "decision":
        per_rule.decisions[event.fields["action"]] += 1


def _summarize(
    ruleset: RuleSet,
    replay: Replay,
    samples: Mapping[str, Sequence[Sample]],
    notes: list[str],
) -> Summary:
    rules: dict[str, RuleSummary] = {}
    for rule in ruleset.rules:
        backtested = bool(samples.get(rule.signal))
        summary = RuleSummary(rule.name, rule.signal, rule.severity, backtested)
        if backtested:
            summary.time_in_state = {s.value: t for s, t in replay.time_in_state[rule.name].items()}
        rules[rule.name] = summary
    missing = [r.name for r in ruleset.rules if not rules[r.name].backtested]
    if missing:
        signals = sorted({ruleset.rule(name).signal for name in missing})
        notes.append(f"not backtested: {', '.join(missing)} (no recording of {', '.join(signals)})")
    tally = _Tally()
    for event in replay.timeline:
        tally.count(event)
        per_rule = rules.get(event.rule)
        if per_rule is not None:
            _count_for_rule(event, per_rule)
    all_times = [s.at for stream in samples.values() for s in stream[:1]]
    all_ends = [stream[-1].at for stream in samples.values() if stream]
    return Summary(
        start=min(all_times, default=0.0),
        end=max(all_ends, default=0.0),
        samples=sum(len(s) for s in samples.values()),
        incidents=tally.incidents,
        rollbacks=tally.rollbacks,
        suppressed=tally.suppressed,
        notifications=tally.notifications,
        rules=rules,
        notes=notes,
    )
