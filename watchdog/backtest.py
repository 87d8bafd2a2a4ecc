"""Backtest: how would these rules have behaved over recorded history?

Recorded samples go through the live ``Engine`` and ``IncidentManager`` on a virtual
clock, so the answer comes from the same code that acts in production; nothing here
decides anything. Only the edges are stand-ins:

- **targets** read their state from ``deployments.json`` at the virtual now and never
  call an API. A rollback answers as if it went through, so the manager's guards
  (cooldown, hourly cap, one rollback per incident) and verification run as live; the
  timeline says "would roll back".
- **purges and notifiers** send nothing; each notification the manager would send is
  a "would notify" line naming the notifiers and the kind of message.
- **the store** is SQLite in memory; **silences** are none unless ``--silence`` gives
  some (they then cover the whole replay).

Recordings (``--series DIR``)
    ``DIR/SIGNAL.json`` holds exactly the body of Prometheus' ``/api/v1/query_range``
    (a matrix with one series), so ``curl`` can make one. A signal with a
    ``requests_query`` may have ``DIR/SIGNAL.requests.json`` (same format) for its
    traffic; without it ``min_requests`` is not checked. A value of ``NaN`` is no data
    and ``±Inf`` an error, as the live source reads them; a missing step (a hole in the
    timestamps, on the recording's own step) is no data. All three make a rule blind.

``DIR/deployments.json`` (optional; ``--deployments FILE`` elsewhere)
    What was live on each target, and since when::

        {
          "worker":   [{"version": "v41", "at": "2026-11-02T09:00:00Z"},
                       {"version": "v42", "at": "2026-11-03T14:10:00Z",
                        "description": "release 42"}],
          "frontend": [{"version": "a1b2c3", "at": 1793000000}]
        }

    ``at`` is RFC 3339 or Unix seconds; ``id`` and ``description`` are optional. At
    virtual time T a target's live version is its latest deploy at or before T, and a
    rollback goes to the newest earlier version (preferring one seen healthy), as the
    live targets choose. Without the file no deploy is known, so deploy correlation
    blocks every rollback ("missing deploy") unless ``--ignore-deploys``.

Deadlines (grace, verification, escalation) are checked at each recorded sample time;
the live daemon checks every second, so a deadline may show up to one step late.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import math
import re
import sqlite3
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import (
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from watchdog.actions.base import ActionResult, Deploy, RollbackPlan, TargetState
from watchdog.clock import FakeClock, iso
from watchdog.decision import Decision, DecisionKind
from watchdog.engine import Engine, Observation
from watchdog.errors import BacktestError, StoreError
from watchdog.evaluator import State
from watchdog.incidents import IncidentManager
from watchdog.notify.event import IncidentEvent
from watchdog.playbook import Playbook
from watchdog.rules import RuleSet
from watchdog.rules_model import Correlation, PrometheusSourceSpec
from watchdog.samples import Sample, SampleKind
from watchdog.silence import Matcher, Silences
from watchdog.sources.prometheus import _with_requests, parse_matrix, query_range
from watchdog.store import SQLiteStore
from watchdog.units import format_duration, format_value, parse_duration

Points = Sequence[tuple[float, float]]
T = TypeVar("T")

STATES: tuple[State, ...] = (State.INACTIVE, State.PENDING, State.FIRING, State.BLIND)


# --- recordings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One signal's recorded history: sorted ``(time, value)`` points, optionally the
    traffic behind it, and the step between points when it is known."""

    signal: str
    points: Points
    requests: Points | None = None
    step: float | None = None
    origin: str = ""


def watched_signals(ruleset: RuleSet) -> list[str]:
    """Signals that rules or verification read, in the order the rules name them."""
    names = [rule.signal for rule in ruleset.rules]
    names += [check.signal for check in ruleset.after_rollback.verify]
    return list(dict.fromkeys(names))


def read_matrix_file(path: Path) -> list[tuple[float, float]]:
    """A saved ``query_range`` body → points. ``BacktestError`` names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BacktestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: cannot read: {exc}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BacktestError(f"{path}: not JSON: {exc}") from None
    try:
        return parse_matrix(body)
    except BacktestError as exc:
        raise BacktestError(f"{path}: {exc}") from None


def matrix_body(points: Points, metric: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``query_range`` body for ``points`` (what ``record`` writes)."""
    result = []
    if points:
        values = [[_json_time(ts), _json_value(v)] for ts, v in points]
        result = [{"metric": dict(metric or {}), "values": values}]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def _json_time(ts: float) -> float | int:
    return int(ts) if ts == int(ts) else round(ts, 3)


def _json_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def load_recordings(directory: Path, ruleset: RuleSet) -> tuple[dict[str, Recording], list[str]]:
    """Every watched signal's ``DIR/SIGNAL.json``; notes say what is missing or unused.

    Raises ``BacktestError`` for a missing directory, a bad file, or no recording of
    any watched signal."""
    if not directory.is_dir():
        raise BacktestError(f"{directory}: no such directory")
    recordings: dict[str, Recording] = {}
    notes: list[str] = []
    wanted = watched_signals(ruleset)
    for name in wanted:
        path = directory / f"{name}.json"
        if not path.exists():
            continue
        points = read_matrix_file(path)
        requests_path = directory / f"{name}.requests.json"
        requests = read_matrix_file(requests_path) if requests_path.exists() else None
        recordings[name] = Recording(name, points, requests, origin=str(path))
    if not recordings:
        expected = ", ".join(f"{name}.json" for name in wanted) or "(no rules)"
        raise BacktestError(
            f"{directory}: no recording of any signal the rules watch (expected {expected})"
        )
    known = {f"{name}.json" for name in wanted} | {f"{name}.requests.json" for name in wanted}
    known.add("deployments.json")
    for path in sorted(directory.glob("*.json")):
        if path.name not in known:
            notes.append(f"ignored {path}: no signal of that name in the rules")
    return recordings, notes


async def fetch_recordings(
    ruleset: RuleSet,
    http: httpx.AsyncClient,
    start: float,
    end: float,
    step: float,
    url: str | None = None,
) -> tuple[dict[str, Recording], list[str]]:
    """Each watched prometheus signal's query (and ``requests_query``) over
    ``[start, end]`` with ``query_range`` in chunks; ``url`` overrides the sources' own
    URL. Notes name the signals that cannot be fetched (other source types)."""
    recordings: dict[str, Recording] = {}
    notes: list[str] = []
    for name in watched_signals(ruleset):
        signal = ruleset.signals.get(name)
        if signal is None:
            continue
        source = signal.source
        if not isinstance(source, PrometheusSourceSpec) or signal.spec.query is None:
            notes.append(
                f"cannot fetch {name}: its source {signal.source_name!r} is {source.type}, "
                "not prometheus (record it another way, or leave it out)"
            )
            continue
        base = url or source.url
        points = await query_range(
            http, base, signal.spec.query, start, end, step, source.timeout * 6
        )
        requests = None
        if signal.spec.requests_query is not None:
            requests = await query_range(
                http, base, signal.spec.requests_query, start, end, step, source.timeout * 6
            )
        recordings[name] = Recording(name, points, requests, step, origin=base)
    if not recordings:
        raise BacktestError("no signal of the rules can be fetched from Prometheus")
    return recordings, notes


def write_recordings(directory: Path, recordings: Mapping[str, Recording]) -> list[Path]:
    """``DIR/SIGNAL.json`` (and ``SIGNAL.requests.json``) for each recording."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, recording in recordings.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(matrix_body(recording.points)), encoding="utf-8")
        written.append(path)
        if recording.requests is not None:
            path = directory / f"{name}.requests.json"
            path.write_text(json.dumps(matrix_body(recording.requests)), encoding="utf-8")
            written.append(path)
    return written


# --- times and deployments ------------------------------------------------------------

_RELATIVE = re.compile(r"^now(?:(?P<sign>[+-])(?P<span>.+))?$")


def parse_time(value: object, now: float | None = None) -> float:
    """RFC 3339 (with a zone), Unix seconds, ``now`` or ``now-7d`` → Unix seconds."""
    if isinstance(value, bool):
        raise BacktestError(f"expected a time, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise BacktestError(f"expected a time (RFC 3339 or Unix seconds), got {value!r}")
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative is not None:
        base = now if now is not None else datetime.now(tz=UTC).timestamp()
        if relative.group("span") is None:
            return base
        try:
            span = parse_duration(relative.group("span"))
        except ValueError as exc:
            raise BacktestError(f"time {value!r}: {exc}") from None
        return base - span if relative.group("sign") == "-" else base + span
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BacktestError(
            f"time {value!r}: expected RFC 3339 (2026-11-28T10:00:00Z), Unix seconds, now or now-7d"
        ) from None
    if parsed.tzinfo is None:
        raise BacktestError(f"time {value!r}: give a time zone (Z or +00:00)")
    return parsed.timestamp()


def rfc3339(ts: float) -> str:
    """UTC with a Z; milliseconds only when the time has them."""
    if ts == int(ts):
        return iso(ts)
    stamp = datetime.fromtimestamp(ts, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


Deployments = Mapping[str, Sequence[Deploy]]


def parse_deployments(
    data: object, where: str, base: float | None = None
) -> dict[str, list[Deploy]]:
    """``{target: [{version, at, id?, description?}, ...]}`` → deploys sorted by time.
    ``base`` makes durations like ``-10m`` valid for ``at`` (relative to it)."""
    if not isinstance(data, dict):
        raise BacktestError(f"{where}: expected an object mapping each target to its deploys")
    out: dict[str, list[Deploy]] = {}
    for target, items in data.items():
        if not isinstance(items, list):
            raise BacktestError(f"{where}: {target}: expected a list of deploys")
        deploys = []
        for index, item in enumerate(items):
            place = f"{where}: {target}[{index}]"
            if not isinstance(item, dict) or "version" not in item or "at" not in item:
                raise BacktestError(f"{place}: expected {{version: ..., at: ...}}")
            unknown = set(item) - {"version", "at", "id", "description"}
            if unknown:
                raise BacktestError(f"{place}: unknown key(s) {', '.join(sorted(unknown))}")
            at = _deploy_time(item["at"], place, base)
            version = str(item["version"])
            deploys.append(
                Deploy(
                    id=str(item.get("id", version)),
                    version=version,
                    created_at=at,
                    description=str(item.get("description", "")),
                )
            )
        out[str(target)] = sorted(deploys, key=lambda d: d.created_at)
    return out


def _deploy_time(value: object, place: str, base: float | None) -> float:
    if base is not None and isinstance(value, str) and value.strip()[:1] in ("-", "+"):
        text = value.strip()
        try:
            span = parse_duration(text[1:])
        except ValueError as exc:
            raise BacktestError(f"{place}: at: {exc}") from None
        return base - span if text[0] == "-" else base + span
    if base is not None and isinstance(value, str) and value.strip()[:1].isdigit():
        try:
            return base + parse_duration(value)
        except ValueError:
            pass
    try:
        return parse_time(value)
    except BacktestError as exc:
        raise BacktestError(f"{place}: at: {exc}") from None


def load_deployments(path: Path) -> dict[str, list[Deploy]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BacktestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BacktestError(f"{path}: not JSON: {exc}") from None
    return parse_deployments(data, str(path))


# --- samples --------------------------------------------------------------------------

_VALUE = SampleKind.VALUE
_GAP_REASON = "no sample in the recording"


def value_sample(at: float, value: float) -> Sample:
    """A recorded value as the live prometheus source reads it."""
    if value == value and not math.isinf(value):
        return Sample(at, _VALUE, value)
    if math.isnan(value):
        return Sample.no_data(at, "NaN")
    sign = "+Inf" if value > 0 else "-Inf"
    return Sample.error(at, f"value is {sign}, not a usable number (a division by zero?)")


def infer_step(points: Points) -> float | None:
    """The most common distance between points (the recording's step)."""
    if len(points) < 2:
        return None
    # The first stretch tells the step; counting every gap of a month costs ~0.2 s.
    span = range(1, min(len(points), 5000))
    gaps = Counter(round(points[i][0] - points[i - 1][0], 3) for i in span)
    return gaps.most_common(1)[0][0]


def samples_of(
    recording: Recording, start: float | None = None, end: float | None = None
) -> list[Sample]:
    """The samples a live daemon would have seen: one per step, a hole being no data.
    ``start``/``end`` extend the no-data fill to the whole replay."""
    points = recording.points
    step = recording.step or infer_step(points)
    requests = None
    if recording.requests is not None:
        requests = dict(recording.requests)
    out: list[Sample] = []
    if not points:
        if step is None or start is None or end is None:
            return out
        count = math.floor((end - start) / step + 1e-9) + 1
        return [Sample.no_data(start + k * step, _GAP_REASON) for k in range(count)]
    first = points[0][0]
    if step is not None and start is not None and start < first - step / 2:
        lead = math.floor((first - start) / step + 1e-9)
        out.extend(Sample.no_data(first - k * step, _GAP_REASON) for k in range(lead, 0, -1))
    previous: float | None = None
    limit = 1.5 * step if step is not None else math.inf
    for at, value in points:
        if previous is not None and at - previous > limit:
            assert step is not None
            missing = round((at - previous) / step) - 1
            out.extend(
                Sample.no_data(previous + k * step, _GAP_REASON) for k in range(1, missing + 1)
            )
        previous = at
        if requests is None:
            if value == value and -math.inf < value < math.inf:
                out.append(Sample(at, _VALUE, value))  # what value_sample gives, inline
            else:
                out.append(value_sample(at, value))
            continue
        traffic = requests.get(at)
        if traffic is None:
            joined = _with_requests(
                value_sample(at, value), Sample.no_data(at, "no sample in the requests recording")
            )
        else:
            joined = _with_requests(value_sample(at, value), value_sample(at, traffic))
        out.append(joined)
    if step is not None and end is not None and previous is not None and end > previous + step / 2:
        tail = math.floor((end - previous) / step + 1e-9)
        out.extend(Sample.no_data(previous + k * step, _GAP_REASON) for k in range(1, tail + 1))
    return out


# --- stand-ins for the outside world --------------------------------------------------


class RecordedTarget:
    """A target whose deploy history is recorded: reads it at the virtual now, sends
    nothing. ``deploys=None`` means deploys are ignored (correlation is off): a live
    version and a previous one always exist."""

    def __init__(
        self, name: str, kind: str, deploys: Sequence[Deploy] | None, clock: FakeClock
    ) -> None:
        self.name = name
        self.kind = kind
        self.deploys = list(deploys) if deploys is not None else None
        self._times = [d.created_at for d in self.deploys or ()]
        self.clock = clock

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        now = self.clock.now()
        if self.deploys is None:
            live = Deploy("live", "live", now)
            return TargetState(self.name, self.kind, live, Deploy("previous", "previous", now), "")
        if self.kind == "github-workflow":
            previous = Deploy("previous", "previous", now)
            return TargetState(self.name, self.kind, None, previous, "the workflow picks it")
        past = self.deploys[: bisect_right(self._times, now)]
        if not past:
            return TargetState(
                self.name,
                self.kind,
                None,
                None,
                f"no deploy of {self.name} recorded at or before {rfc3339(now)}",
            )
        live = past[-1]
        earlier = [d for d in past[:-1] if d.version != live.version]
        preferred = [d for d in earlier if d.version in healthy]
        choices = preferred or earlier
        choice = choices[-1] if choices else None
        why = "" if choice is not None else f"{live.version} is the only deploy recorded"
        return TargetState(self.name, self.kind, live, choice, why)

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        detail = f"{plan.from_version} → {plan.to_version} (backtest: nothing was sent)"
        return ActionResult("rollback", plan.target, ok=True, detail=detail, would=dry_run)


class RecordedPurge:
    def __init__(self, name: str) -> None:
        self.name = name

    async def purge(self, dry_run: bool = False) -> ActionResult:
        return ActionResult(
            "purge", self.name, ok=True, detail="backtest: nothing sent", would=True
        )


class RecordedNotifier:
    """Sends nothing; hands each event to ``sink`` so the timeline can say who would
    have been told what."""

    def __init__(self, name: str, sink: Callable[[str, IncidentEvent], None]) -> None:
        self.name = name
        self._sink = sink

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        self._sink(self.name, event)
        return ActionResult(
            "notify", self.name, ok=True, detail=f"would send {event.kind.value}", would=True
        )


class ReplayStore(SQLiteStore):
    """The live SQLite store, in memory, run on the replay's own thread. A replay has
    nothing for the event loop to do while a write runs, and the hop to the store's
    worker thread costs more than the write (thousands of times in a month of
    incidents). Same transactions and errors as ``SQLiteStore._run``."""

    def __init__(self) -> None:
        super().__init__(":memory:")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                raise StoreError("store is not open")
            try:
                with self._conn:  # one transaction, committed on success
                    return fn(self._conn)
            except sqlite3.Error as exc:
                raise StoreError(f"state store {self.path}: {exc}") from exc


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a month of samples is loaded and replayed:
    with millions of long-lived objects each collection walks them all (it took about
    half of the load), and a replay makes few cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the timeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One line of the timeline. ``fields`` go into the JSON object as they are."""

    at: float
    rule: str
    event: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"time": rfc3339(self.at), "rule": self.rule, "event": self.event, **self.fields}


@dataclass
class RuleSummary:
    rule: str
    signal: str
    severity: str
    backtested: bool
    time_in_state: dict[str, float] = field(default_factory=lambda: {s.value: 0.0 for s in STATES})
    fired: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    would_rollback: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    notifications: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "severity": self.severity,
            "backtested": self.backtested,
            "time_in_state": {k: round(v, 3) for k, v in self.time_in_state.items()},
            "fired": self.fired,
            "decisions": dict(self.decisions),
            "would_rollback": self.would_rollback,
            "suppressed": dict(self.suppressed),
            "notifications": self.notifications,
        }


@dataclass
class Summary:
    start: float
    end: float
    samples: int
    incidents: int
    rollbacks: Counter[str]  # per target
    suppressed: Counter[str]  # per reason
    notifications: int
    rules: dict[str, RuleSummary]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "time": rfc3339(self.end),
            "rule": None,
            "event": "summary",
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "samples": self.samples,
            "incidents": self.incidents,
            "rollbacks": sum(self.rollbacks.values()),
            "rollbacks_by_target": dict(self.rollbacks),
            "suppressed": dict(self.suppressed),
            "notifications": self.notifications,
            "notes": self.notes,
        }


Span = tuple[State, float, float]


@dataclass
class BacktestResult:
    timeline: list[Event]
    summary: Summary
    spans: dict[str, list[Span]]  # per rule: (state, start, end), inactive left out
    samples: dict[str, list[Sample]]  # per signal, what was replayed


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


_STATE_EVENT = {
    State.PENDING: "pending",
    State.FIRING: "firing",
    State.BLIND: "blind",
    State.INACTIVE: "inactive",
}
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
    fields = {
        "action": decision.kind.value,
        "targets": targets if decision.kind is DecisionKind.ROLLBACK else [],
        "severity": decision.severity,
        "observed": _finite(decision.observed),
        "why": decision.why,
    }
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


# --- running it -----------------------------------------------------------------------


async def backtest(
    ruleset: RuleSet,
    recordings: Mapping[str, Recording],
    deployments: Deployments | None = None,
    silences: Sequence[Sequence[Matcher]] = (),
    ignore_deploys: bool = False,
    notes: Sequence[str] = (),
    start: float | None = None,
    end: float | None = None,
) -> BacktestResult:
    """Replay ``recordings`` through the rules; the timeline and the summary."""
    if not recordings:
        raise BacktestError("nothing to replay: no recording")
    firsts = [r.points[0][0] for r in recordings.values() if r.points]
    lasts = [r.points[-1][0] for r in recordings.values() if r.points]
    lo = start if start is not None else min(firsts, default=None)
    hi = end if end is not None else max(lasts, default=None)
    samples = {
        name: samples_of(recordings[name], lo, hi)
        for name in watched_signals(ruleset)
        if name in recordings
    }
    replay = Replay(ruleset, deployments, silences, ignore_deploys)
    await replay.run(samples)
    all_notes = list(notes)
    if deployments is None and not ignore_deploys and ruleset.correlation.enabled:
        all_notes.append(
            "no deployments.json: no deploy is known, so deploy correlation blocks every "
            "rollback (give one, or --ignore-deploys)"
        )
    summary = _summarize(ruleset, replay, samples, all_notes)
    return BacktestResult(replay.timeline, summary, dict(replay.spans), samples)


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
    incidents = 0
    rollbacks: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    notifications = 0
    for event in replay.timeline:
        per_rule = rules.get(event.rule)
        if event.event == "incident_opened":
            incidents += 1
        elif event.event == "would_rollback" and not event.fields.get("dry_run"):
            rollbacks.update(event.fields["targets"])
            if per_rule is not None:
                per_rule.would_rollback += 1
        elif event.event == "suppressed":
            suppressed[event.fields["reason"]] += 1
            if per_rule is not None:
                per_rule.suppressed[event.fields["reason"]] += 1
        elif event.event == "would_notify":
            notifications += len(event.fields["notifiers"])
            if per_rule is not None:
                per_rule.notifications += len(event.fields["notifiers"])
        elif event.event == "firing" and per_rule is not None:
            per_rule.fired += 1
        elif event.event == "decision" and per_rule is not None:
            per_rule.decisions[event.fields["action"]] += 1
    all_times = [s.at for stream in samples.values() for s in stream[:1]]
    all_ends = [stream[-1].at for stream in samples.values() if stream]
    return Summary(
        start=min(all_times, default=0.0),
        end=max(all_ends, default=0.0),
        samples=sum(len(s) for s in samples.values()),
        incidents=incidents,
        rollbacks=rollbacks,
        suppressed=suppressed,
        notifications=notifications,
        rules=rules,
        notes=notes,
    )


# --- output ---------------------------------------------------------------------------


def render_json(result: BacktestResult) -> Iterator[str]:
    """One JSON object per line: the timeline, one ``rule_summary`` per rule, then the
    ``summary``."""
    for event in result.timeline:
        yield json.dumps(event.to_json(), separators=(",", ":"), allow_nan=False)
    end = rfc3339(result.summary.end)
    for name, rule in result.summary.rules.items():
        line = {"time": end, "rule": name, "event": "rule_summary", **rule.to_json()}
        yield json.dumps(line, separators=(",", ":"), allow_nan=False)
    yield json.dumps(result.summary.to_json(), separators=(",", ":"), allow_nan=False)


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
