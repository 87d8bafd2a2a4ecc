"""Recordings: a signal's history as ``DIR/SIGNAL.json`` files or fetched from
Prometheus, and the samples a live daemon would have seen from it (``backtest/samples.py``).

``DIR/SIGNAL.json`` holds exactly the body of Prometheus' ``/api/v1/query_range`` (a
matrix with one series, or none), so ``curl`` can make one. A signal with a
``requests_query`` has ``DIR/SIGNAL.requests.json`` (same format) for its traffic. A
signal given as ``errors_query`` over ``requests_query`` has ``DIR/SIGNAL.errors.json``
and ``DIR/SIGNAL.requests.json`` instead of ``SIGNAL.json``. A canary rule's per-version
signal has ``DIR/SIGNAL.versions.json``: each window's errors and requests per Worker
version, as the ``cloudflare`` source reads them in ``mode: versions`` (format in
``backtest/splits.py``).

Every recording is read exactly as the live daemon reads the same answers: a value of
``NaN`` is no data and ``±Inf`` an error; a missing step (a hole in the timestamps, on
the recording's own step) or a recording without any series is no data ("no
series"); a ratio whose ``requests_query`` was not recorded has no traffic and is no
evidence. For errors over requests, a step without an error point while there was
traffic is 0 errors, and a step without traffic is no data. Missing evidence makes a
rule blind, never a breach; ``backtest`` notes each recording read that way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog import strict_json
from watchdog.backtest.read_ahead import read_ahead
from watchdog.backtest.splits import read_versions_file
from watchdog.errors import BacktestError
from watchdog.model import Sample
from watchdog.rules.fit import counts_versions
from watchdog.rules.load import ResolvedSignal, RuleSet
from watchdog.rules.model import PrometheusSourceSpec
from watchdog.sources.prometheus_range import parse_matrix

if TYPE_CHECKING:
    import httpx

Points = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Recording:
    """One signal's recorded history: sorted ``(time, value)`` points, optionally the
    traffic behind it, and the step between points when it is known.

    ``divided``: the signal is ``errors_query`` over ``requests_query``; ``errors`` and
    ``requests`` hold the two (None: not recorded) and ``points`` is empty.
    ``needs_requests``: the signal has a ``requests_query`` beside its ``query``, so
    without ``requests`` it has no known traffic (blind, as live)."""

    signal: str
    points: Points
    requests: Points | None = None
    step: float | None = None
    origin: str = ""
    errors: Points | None = None
    divided: bool = False
    needs_requests: bool = False
    # A canary's per-version signal (``SIGNAL.versions.json``, ``backtest/splits.py``):
    # its samples as read; ``points`` then holds each sample's time and error ratio.
    versions: tuple[Sample, ...] | None = None

    def span(self) -> tuple[float, float] | None:
        """First and last recorded time over all its series; None when all are empty."""
        series = [s for s in (self.points, self.requests, self.errors) if s]
        if not series:
            return None
        return min(s[0][0] for s in series), max(s[-1][0] for s in series)

    def longest(self) -> Points:
        """The series with the most points (to tell the step)."""
        return max((s for s in (self.points, self.requests, self.errors) if s), key=len, default=())

    @property
    def from_prometheus(self) -> bool:
        return self.origin.startswith(("http://", "https://"))


def divided(signal: ResolvedSignal | None) -> bool:
    """Whether the signal is errors over requests (two recordings, no value one)."""
    return signal is not None and signal.spec.errors_query is not None


def needs_requests(signal: ResolvedSignal | None) -> bool:
    return signal is not None and signal.spec.requests_query is not None


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


def load_recordings(
    directory: Path,
    ruleset: RuleSet,
    read: Callable[[Path], Points] = read_matrix_file,
) -> tuple[dict[str, Recording], list[str]]:
    """Every watched signal's ``DIR/SIGNAL.json``; notes say what is missing or unused.
    ``read`` reads one file (the columnar replay's keeps arrays).

    Raises ``BacktestError`` for a missing directory, a bad file, or no recording of
    any watched signal."""
    if not directory.is_dir():
        raise BacktestError(f"{directory}: no such directory")
    recordings: dict[str, Recording] = {}
    notes: list[str] = []
    wanted = watched_signals(ruleset)
    read = read_ahead(read, _files_to_read(directory, ruleset, wanted), read_matrix_file)
    for name in wanted:
        signal = ruleset.signals.get(name)
        path = directory / f"{name}.json"
        requests_path = directory / f"{name}.requests.json"
        requests = read(requests_path) if requests_path.exists() else None
        if divided(signal):
            if path.exists():  # recorded when the signal was still a ratio query
                notes.append(
                    f"ignored {path}: {name} is errors over requests (it reads "
                    f"{name}.errors.json and {name}.requests.json)"
                )
            errors_path = directory / f"{name}.errors.json"
            errors = read(errors_path) if errors_path.exists() else None
            if errors is None and requests is None:
                continue
            recordings[name] = Recording(
                name, (), requests, origin=str(directory), errors=errors, divided=True
            )
            continue
        if not path.exists():
            continue
        points = read(path)
        recordings[name] = Recording(
            name, points, requests, origin=str(path), needs_requests=needs_requests(signal)
        )
    recordings.update(_versions_recordings(directory, ruleset, wanted))
    if not recordings:
        expected = (
            ", ".join(
                f"{name}.errors.json + {name}.requests.json"
                if divided(ruleset.signals.get(name))
                else f"{name}.json"
                for name in wanted
            )
            or "(no rules)"
        )
        raise BacktestError(
            f"{directory}: no recording of any signal the rules watch (expected {expected})"
        )
    notes += _unknown_files(directory, wanted)
    return recordings, notes


def _unknown_files(directory: Path, wanted: Sequence[str]) -> list[str]:
    """A note for each JSON file in ``directory`` that no watched signal reads."""
    parts = ("", ".requests", ".errors", ".versions")
    known = {f"{name}{part}.json" for name in wanted for part in parts}
    known.update(("deployments.json", "labels.json"))
    return [
        f"ignored {path}: no signal of that name in the rules"
        for path in sorted(directory.glob("*.json"))
        if path.name not in known
    ]


def _versions_recordings(
    directory: Path, ruleset: RuleSet, wanted: Sequence[str]
) -> dict[str, Recording]:
    """Each canary signal's ``DIR/SIGNAL.versions.json`` (``backtest/splits.py``): its
    samples as the source read them; points (time, error ratio) tell span and step."""
    out: dict[str, Recording] = {}
    for name in wanted:
        signal = ruleset.signals.get(name)
        path = directory / f"{name}.versions.json"
        if signal is None or not counts_versions(signal) or not path.exists():
            continue
        samples, step = read_versions_file(path)
        points = [(x.at, x.value) for x in samples]
        out[name] = Recording(name, points, step=step, origin=str(path), versions=tuple(samples))
    return out


def _files_to_read(directory: Path, ruleset: RuleSet, wanted: Sequence[str]) -> list[Path]:
    """The files ``load_recordings`` reads, in the order it reads them."""
    paths = []
    for name in wanted:
        parts = (
            (".requests", ".errors") if divided(ruleset.signals.get(name)) else (".requests", "")
        )
        paths += [p for part in parts if (p := directory / f"{name}{part}.json").exists()]
    return paths


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
    from watchdog.sources.prometheus_range import query_range

    recordings: dict[str, Recording] = {}
    notes: list[str] = []
    for name in watched_signals(ruleset):
        signal = ruleset.signals.get(name)
        if signal is None:
            continue
        source = signal.source
        spec = signal.spec
        if not isinstance(source, PrometheusSourceSpec):
            notes.append(
                f"cannot fetch {name}: its source {signal.source_name!r} is {source.type}, "
                "not prometheus (record it another way, or leave it out)"
            )
            continue
        base = url or source.url
        timeout = source.timeout * 6
        requests = None
        if spec.requests_query is not None:
            requests = await query_range(http, base, spec.requests_query, start, end, step, timeout)
        if spec.errors_query is not None:
            errors = await query_range(http, base, spec.errors_query, start, end, step, timeout)
            recordings[name] = Recording(
                name, (), requests, step, origin=base, errors=errors, divided=True
            )
            continue
        if spec.query is None:  # the rules loader requires one of the two
            continue
        points = await query_range(http, base, spec.query, start, end, step, timeout)
        recordings[name] = Recording(
            name, points, requests, step, origin=base, needs_requests=requests is not None
        )
    if not recordings:
        raise BacktestError("no signal of the rules can be fetched from Prometheus")
    return recordings, notes


def write_recordings(directory: Path, recordings: Mapping[str, Recording]) -> list[Path]:
    """``DIR/SIGNAL.json`` (and ``SIGNAL.requests.json``), or ``SIGNAL.errors.json`` and
    ``SIGNAL.requests.json`` for errors over requests, for each recording. An answer
    without series is written too (``"result": []``): it is evidence of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_role, points) in _files(recordings).items():
        path = directory / name
        path.write_text(strict_json.dumps(matrix_body(points)), encoding="utf-8")
        written.append(path)
    return written


def _files(recordings: Mapping[str, Recording]) -> dict[str, tuple[str, Points]]:
    """File name → (role, points): role is value, requests or errors."""
    files: dict[str, tuple[str, Points]] = {}
    for name, recording in recordings.items():
        if recording.divided:
            if recording.errors is not None:
                files[f"{name}.errors.json"] = ("errors", recording.errors)
        else:
            files[f"{name}.json"] = ("value", recording.points)
        if recording.requests is not None:
            files[f"{name}.requests.json"] = ("requests", recording.requests)
    return files


def record_report(
    directory: Path,
    recordings: Mapping[str, Recording],
    ruleset: RuleSet,
    start: float,
    end: float,
    step: float,
) -> list[str]:
    """One line per written file: how many steps had an answer, and what the live
    daemon makes of the rest (an empty answer is never silent)."""
    expected = math.floor((end - start) / step + 1e-9) + 1
    lines = []
    for name, (role, points) in _files(recordings).items():
        path = directory / name
        signal = name.split(".")[0]
        if not points:
            lines.append(f"wrote {path}: no series: {_empty_meaning(role, signal, ruleset)}")
            continue
        line = f"wrote {path} ({len(points)} of {expected} steps"
        missing = expected - len(points)
        if missing > 0:
            line += (
                f"; the other {missing} are 0 errors wherever there was traffic, as live"
                if role == "errors"
                else f"; the other {missing} are no data: blind there, as live"
            )
        lines.append(line + ")")
    return lines


def _empty_meaning(role: str, signal: str, ruleset: RuleSet) -> str:
    if role == "errors":
        return "no errors, read as 0 errors wherever there was traffic (as live)"
    what = "no traffic" if role == "requests" else "no data"
    return f"{what}, so {readers(ruleset, signal)} would be blind throughout (as live)"


def readers(ruleset: RuleSet, signal: str) -> str:
    """The rules that read ``signal`` (or its verification), for notes."""
    names = [rule.name for rule in ruleset.rules if rule.signal == signal]
    return ", ".join(names) or f"the verification of {signal}"


def evidence_notes(ruleset: RuleSet, recordings: Mapping[str, Recording]) -> list[str]:
    """What the replay reads as missing evidence (or as 0 errors) because of what was
    recorded: said in the summary, never silent."""
    notes = []
    for name, recording in recordings.items():
        who = readers(ruleset, name)

        def where(part: str, recording: Recording = recording, name: str = name) -> str:
            if recording.from_prometheus:
                return f"the {part or 'value'} query of {name}" if part else f"the query of {name}"
            return f"{name}{'.' + part if part else ''}.json"

        if recording.divided:
            if recording.errors is None:
                notes.append(
                    f"no errors recording of {name} ({where('errors')}): a missing file is "
                    f"not 0 errors, so {who} are blind throughout"
                )
            elif not recording.errors:
                notes.append(
                    f"{where('errors')} has no series: no errors, read as 0 errors wherever "
                    "there was traffic (as live)"
                )
        elif not recording.points:
            notes.append(
                f"{where('')} has no series: the live daemon reads that as no data, so {who} "
                "are blind throughout"
            )
        if (recording.divided or recording.needs_requests) and recording.requests is None:
            notes.append(
                f"no requests recording of {name} ({where('requests')}): without its "
                f"traffic the live daemon has no evidence, so {who} are blind throughout"
            )
        elif (recording.divided or recording.needs_requests) and not recording.requests:
            notes.append(
                f"{where('requests')} has no series: no traffic, so {who} are blind throughout"
            )
    return notes
