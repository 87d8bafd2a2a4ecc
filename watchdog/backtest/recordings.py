"""Recordings: a signal's history as ``DIR/SIGNAL.json`` files or fetched from
Prometheus, and the samples a live daemon would have seen from it.

``DIR/SIGNAL.json`` holds exactly the body of Prometheus' ``/api/v1/query_range`` (a
matrix with one series), so ``curl`` can make one. A signal with a ``requests_query``
may have ``DIR/SIGNAL.requests.json`` (same format) for its traffic; without it
``min_requests`` is not checked. A value of ``NaN`` is no data and ``±Inf`` an error,
as the live source reads them; a missing step (a hole in the timestamps, on the
recording's own step) is no data. All three make a rule blind.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from watchdog import strict_json
from watchdog.errors import BacktestError
from watchdog.rules import RuleSet
from watchdog.rules_model import PrometheusSourceSpec
from watchdog.samples import Sample, SampleKind
from watchdog.sources.prometheus import parse_matrix, query_range, with_requests

Points = Sequence[tuple[float, float]]


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
        path.write_text(strict_json.dumps(matrix_body(recording.points)), encoding="utf-8")
        written.append(path)
        if recording.requests is not None:
            path = directory / f"{name}.requests.json"
            path.write_text(strict_json.dumps(matrix_body(recording.requests)), encoding="utf-8")
            written.append(path)
    return written


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
            joined = with_requests(
                value_sample(at, value), Sample.no_data(at, "no sample in the requests recording")
            )
        else:
            joined = with_requests(value_sample(at, value), value_sample(at, traffic))
        out.append(joined)
    if step is not None and end is not None and previous is not None and end > previous + step / 2:
        tail = math.floor((end - previous) / step + 1e-9)
        out.extend(Sample.no_data(previous + k * step, _GAP_REASON) for k in range(1, tail + 1))
    return out
