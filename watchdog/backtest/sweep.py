"""``backtest --sweep RULE.FIELD=LO..HI/STEP``: one rule's settings over a grid, each
combination replayed through the columnar replay (the same engine states, incident
manager and guards as every backtest), so a person sees what each choice would have
done: firing episodes, would-be rollbacks and, against labelled incidents, which
were caught, how late, and how many episodes were false.

An axis is ``RULE.FIELD=LO..HI/STEP`` (both ends included) or ``RULE.FIELD=A,B,C``;
FIELD is one of ``above``, ``below``, ``for``, ``keep_firing_for``, ``share`` or
``min_requests``, its values written as in a rules file (``2%``, ``1m``). Every axis
names the same rule. The rules file's own choice is always among the combinations.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from watchdog.backtest.columnar_replay import ColumnarReplay, RuleTrack, track
from watchdog.backtest.columns import Columns, columns_of
from watchdog.backtest.labels import Label, Score, score
from watchdog.backtest.recordings import Recording
from watchdog.backtest.run import replay_plan, run_sync
from watchdog.backtest.times import Deployments
from watchdog.core.evaluator import State
from watchdog.errors import BacktestError
from watchdog.gcpause import paused_gc
from watchdog.incidents.matchers import Matcher
from watchdog.rules.fields import Threshold
from watchdog.rules.load import RuleSet
from watchdog.rules.model import RuleSpec
from watchdog.units import Unit, format_duration, parse_duration, parse_share, parse_threshold

FIELDS = ("above", "below", "for", "keep_firing_for", "share", "min_requests")
MAX_COMBINATIONS = 10_000


@dataclass(frozen=True)
class Axis:
    """One swept setting: its values (in the rule's units) and how each reads."""

    rule: str
    field: str
    values: tuple[float, ...]
    unit: Unit | None  # thresholds: the unit written; durations: None

    def text(self, value: float) -> str:
        if self.field in ("for", "keep_firing_for"):
            return format_duration(value)
        if self.unit == "ratio":
            return f"{value * 100:.6g}%"
        if self.unit == "seconds":
            return f"{value:.6g}s"
        return f"{value:.6g}"


def _number(field: str, text: str) -> tuple[float, Unit | None]:
    if field in ("for", "keep_firing_for"):
        return parse_duration(text), None
    if field == "share":
        return parse_share(text), "ratio"
    if field == "min_requests":
        value = float(text)
        if not value >= 0 or not math.isfinite(value):
            raise ValueError(f"expected a count >= 0, got {text!r}")
        return value, "number"
    value, unit = parse_threshold(text)
    return value, unit


def parse_axis(text: str) -> Axis:
    """``RULE.FIELD=LO..HI/STEP`` or ``RULE.FIELD=A,B``; ``BacktestError`` says what
    is wrong."""
    where = f"--sweep {text}"
    name, equals, spec = text.partition("=")
    rule, dot, field = name.rpartition(".")
    if not equals or not dot or not rule or not spec:
        raise BacktestError(f"{where}: expected RULE.FIELD=LO..HI/STEP or RULE.FIELD=A,B,C")
    if field not in FIELDS:
        raise BacktestError(f"{where}: {field!r} cannot be swept (one of {', '.join(FIELDS)})")
    try:
        if ".." in spec:
            bounds, slash, step_text = spec.partition("/")
            lo_text, _, hi_text = bounds.partition("..")
            if not slash:
                raise ValueError("a range needs a step: LO..HI/STEP")
            (lo, unit), (hi, _) = _number(field, lo_text), _number(field, hi_text)
            step = _number(field, step_text)[0] if field != "share" else float(step_text)
            values = _range(lo, hi, step, step_text)
        else:
            parsed = [_number(field, item) for item in spec.split(",")]
            unit = parsed[0][1]
            values = tuple(dict.fromkeys(value for value, _ in parsed))
    except ValueError as exc:
        raise BacktestError(f"{where}: {exc}") from None
    return Axis(rule, field, values, unit)


def _range(lo: float, hi: float, step: float, step_text: str) -> tuple[float, ...]:
    if not step > 0:
        raise ValueError(f"the step must be above 0, got {step_text!r}")
    if hi < lo:
        raise ValueError("the range ends before it starts (LO..HI with HI >= LO)")
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise ValueError(f"{count} values; at most {MAX_COMBINATIONS}")
    return tuple(round(lo + k * step, 12) for k in range(count))


@dataclass(frozen=True)
class Combination:
    """One grid point and what its replay did."""

    values: tuple[float, ...]
    episodes: tuple[tuple[float, float], ...]
    rollbacks: int
    score: Score | None
    current: bool = False
    best: bool = False


@dataclass(frozen=True)
class SweepResult:
    rule: str
    axes: tuple[Axis, ...]
    combinations: tuple[Combination, ...]
    labels: tuple[Label, ...]
    labels_origin: str
    start: float
    end: float
    samples: int
    elapsed: float


def current_values(rule: RuleSpec, axes: Sequence[Axis]) -> tuple[float, ...]:
    out = []
    for axis in axes:
        value = getattr(rule, "for_" if axis.field == "for" else axis.field)
        if isinstance(value, Threshold):
            value = value.value
        if value is None:
            raise BacktestError(
                f"--sweep {axis.rule}.{axis.field}: the rule has no {axis.field!r} "
                f"(it is {'an above' if rule.above is not None else 'a below'} rule)"
            )
        out.append(float(value))
    return tuple(out)


def variant(rule: RuleSpec, axes: Sequence[Axis], values: Sequence[float]) -> RuleSpec:
    """``rule`` with the axes' fields set to ``values``, validated as a rules file is."""
    data: dict[str, Any] = rule.model_dump(by_alias=True)
    for key in ("above", "below"):
        data[key] = getattr(rule, key)
    for axis, value in zip(axes, values, strict=True):
        if axis.field in ("above", "below"):
            data[axis.field] = Threshold(
                value=value, unit=axis.unit or "number", text=axis.text(value)
            )
        else:
            data[axis.field] = value
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        shown = ", ".join(f"{a.field}={a.text(v)}" for a, v in zip(axes, values, strict=True))
        problem = exc.errors()[0]["msg"]
        raise BacktestError(
            f"--sweep: {rule.name} with {shown} is not a valid rule: {problem}"
        ) from None


def check_axes(ruleset: RuleSet, axes: Sequence[Axis]) -> RuleSpec:
    """The one rule the axes sweep; ``BacktestError`` for anything else."""
    names = {axis.rule for axis in axes}
    if len(names) != 1:
        raise BacktestError(
            f"--sweep: every axis must name the same rule (got {', '.join(sorted(names))})"
        )
    name = names.pop()
    try:
        rule = ruleset.rule(name)
    except KeyError:
        raise BacktestError(f"--sweep: no rule named {name!r} in the rules") from None
    fields = [axis.field for axis in axes]
    if len(set(fields)) != len(fields):
        raise BacktestError("--sweep: each field may be swept once")
    told = [r.name for r in ruleset.rules if r.regression is not None]
    if told:
        raise BacktestError(
            f"--sweep: {told[0]} is a regression rule (it hears of each deploy as the replay "
            "goes); sweep with a rules file without it"
        )
    if rule.burn_rate is not None:
        raise BacktestError(
            f"--sweep: {name} weighs counts (regression or burn_rate): no threshold to sweep"
        )
    total = math.prod(len(axis.values) for axis in axes)
    if total > MAX_COMBINATIONS:
        raise BacktestError(f"--sweep: {total} combinations; at most {MAX_COMBINATIONS}")
    return rule


async def sweep(
    ruleset: RuleSet,
    columns: Mapping[str, Columns],
    axes: Sequence[Axis],
    labels: Sequence[Label] = (),
    deployments: Deployments | None = None,
    silences: Sequence[Sequence[Matcher]] = (),
    ignore_deploys: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Combination]:
    """Every combination of ``axes`` replayed; the other rules' tracks are shared."""
    rule = check_axes(ruleset, axes)
    if rule.signal not in columns:
        raise BacktestError(f"--sweep: no recording of {rule.signal} (what {rule.name} watches)")
    now = current_values(rule, axes)
    grids = [sorted(set(axis.values) | {value}) for axis, value in zip(axes, now, strict=True)]
    others: dict[str, RuleTrack] = {
        r.name: track(r, columns[r.signal], ruleset.blind_after(r))
        for r in ruleset.rules
        if r.signal in columns and r.name != rule.name
    }
    out = []
    combos = list(itertools.product(*grids))
    for index, values in enumerate(combos):
        changed = variant(rule, axes, values)
        rules = tuple(changed if r.name == rule.name else r for r in ruleset.rules)
        swept = dataclasses.replace(ruleset, rules=rules)
        tracks = {
            **others,
            rule.name: track(changed, columns[rule.signal], swept.blind_after(changed)),
        }
        replay = ColumnarReplay(swept, columns, tracks, deployments, silences, ignore_deploys)
        await replay.run(replay.streams())
        episodes = tuple(
            (since, until)
            for state, since, until in replay.spans.get(rule.name, [])
            if state is State.FIRING
        )
        rollbacks = sum(
            1
            for e in replay.timeline
            if e.rule == rule.name and e.event == "would_rollback" and not e.fields.get("dry_run")
        )
        judged = score(rule.name, episodes, labels) if labels else None
        out.append(
            Combination(tuple(values), episodes, rollbacks, judged, current=tuple(values) == now)
        )
        if progress is not None:
            progress(index + 1, len(combos))
    return mark_best(out)


def mark_best(combinations: list[Combination]) -> list[Combination]:
    """Those that catch every labelled incident with the fewest false episodes."""
    complete = [c for c in combinations if c.score is not None and not c.score.missed]
    if not complete:
        return combinations
    fewest = min(c.score.false_episodes for c in complete if c.score is not None)
    return [
        dataclasses.replace(
            c, best=c in complete and c.score is not None and c.score.false_episodes == fewest
        )
        for c in combinations
    ]


def run_sweep(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    axes: Sequence[Axis],
    labels: Sequence[Label] = (),
    labels_origin: str = "",
    **options: Any,
) -> SweepResult:
    """The sweep for synchronous callers (the CLI); ``options`` as ``sweep``'s, and
    ``start``/``end`` as ``backtest``'s."""
    started = time.perf_counter()
    start, end = options.pop("start", None), options.pop("end", None)
    lo, hi, replayed = replay_plan(ruleset, recordings, start, end)
    columns = {name: columns_of(r, lo, hi) for name, r in replayed.items()}
    with paused_gc():
        combinations = run_sync(sweep(ruleset, columns, axes, labels, **options))
    rule = check_axes(ruleset, axes)
    return SweepResult(
        rule.name,
        tuple(axes),
        tuple(combinations),
        tuple(labels),
        labels_origin,
        lo,
        hi,
        len(columns[rule.signal]) if rule.signal in columns else 0,
        time.perf_counter() - started,
    )
