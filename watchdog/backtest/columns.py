"""A signal's replayed samples as arrays (the ``fast`` extra): the same samples that
``samples.samples_of`` builds one object at a time, for the columnar replay.

A plain value recording (no traffic beside it) is laid out straight from its arrays:
holes on the recording's step and the fill to the replay's start and end are no data,
NaN is no data and ±Inf an error, exactly as ``samples_of`` reads them. Recordings
with traffic (``requests_query``, errors over requests) go through ``samples_of``
itself and are then laid out: slower, and the same by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from watchdog.backtest.decimals import Floats
from watchdog.backtest.matrix_fast import read_matrix_arrays
from watchdog.backtest.recordings import Recording
from watchdog.backtest.samples import samples_of
from watchdog.model import Sample, SampleKind

KINDS = (SampleKind.VALUE, SampleKind.NO_DATA, SampleKind.ERROR)
VALUE, NO_DATA, ERROR = 0, 1, 2
GAP_REASON = "no sample in the recording"  # samples._GAP_REASON
_INF_REASON = "value is {}, not a usable number (a division by zero?)"


class PointArray(Sequence[tuple[float, float]]):
    """Recorded points kept as two arrays; a ``Points`` sequence for everything that
    reads recordings point by point (spans, notes, ``samples_of``)."""

    def __init__(self, times: Floats, values: Floats) -> None:
        self.times = times
        self.values = values

    def __len__(self) -> int:
        return int(self.times.size)

    @overload
    def __getitem__(self, index: int) -> tuple[float, float]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[float, float]]: ...
    def __getitem__(
        self, index: int | slice
    ) -> tuple[float, float] | Sequence[tuple[float, float]]:
        if isinstance(index, slice):
            return PointArray(self.times[index], self.values[index])
        return float(self.times[index]), float(self.values[index])

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return zip(self.times.tolist(), self.values.tolist(), strict=True)


def read_points(path: Path) -> PointArray:
    """``recordings.load_recordings``' reader for the columnar replay."""
    times, values = read_matrix_arrays(path)
    return PointArray(times, values)


@dataclass(frozen=True, eq=False)
class Columns:
    """One signal's samples, one array per ``Sample`` field. ``requests``/``errors``
    are NaN where the sample has none (``has_requests``/``has_errors`` say which)."""

    t: Floats
    kind: NDArray[np.int8]
    value: Floats
    requests: Floats
    has_requests: NDArray[np.bool_]
    errors: Floats
    has_errors: NDArray[np.bool_]
    reason: NDArray[np.int32]
    reasons: tuple[str, ...]
    _last: list[int] = field(default_factory=lambda: [-1], repr=False)  # index_at's memo

    def __len__(self) -> int:
        return int(self.t.size)

    def sample(self, i: int) -> Sample:
        """The sample at ``i``, as ``samples_of`` built it."""
        return Sample(
            float(self.t[i]),
            KINDS[self.kind[i]],
            float(self.value[i]),
            float(self.requests[i]) if self.has_requests[i] else None,
            self.reasons[self.reason[i]],
            float(self.errors[i]) if self.has_errors[i] else None,
        )

    def index_at(self, at: float) -> int:
        """The last sample at or before ``at`` (-1: none). A replay asks in time order,
        mostly one sample on: a few steps from the last answer, else a search."""
        t, i = self.t, self._last[0]
        size = t.size
        if i < 0 or t[i] > at:
            i = int(np.searchsorted(t, at, side="right")) - 1
        else:
            for _ in range(4):
                if i + 1 < size and t[i + 1] <= at:
                    i += 1
                else:
                    break
            else:
                i = int(np.searchsorted(t, at, side="right")) - 1
        self._last[0] = i
        return i


class ColumnSamples(Sequence[Sample]):
    """A signal's samples for whoever reads them one by one (the plot, the summary),
    built on demand."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns)

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Sample]: ...
    def __getitem__(self, index: int | slice) -> Sample | Sequence[Sample]:
        if isinstance(index, slice):
            return [self.columns.sample(i) for i in range(len(self))[index]]
        return self.columns.sample(range(len(self))[index])

    def __iter__(self) -> Iterator[Sample]:
        return (self.columns.sample(i) for i in range(len(self)))


def from_samples(samples: Sequence[Sample]) -> Columns:
    """Any samples laid out as columns."""
    reasons: dict[str, int] = {}
    codes = {kind: code for code, kind in enumerate(KINDS)}
    return Columns(
        t=np.array([s.at for s in samples], dtype=np.float64),
        kind=np.array([codes[s.kind] for s in samples], dtype=np.int8),
        value=np.array([s.value for s in samples], dtype=np.float64),
        requests=np.array(
            [math.nan if s.requests is None else s.requests for s in samples], dtype=np.float64
        ),
        has_requests=np.array([s.requests is not None for s in samples], dtype=np.bool_),
        errors=np.array(
            [math.nan if s.errors is None else s.errors for s in samples], dtype=np.float64
        ),
        has_errors=np.array([s.errors is not None for s in samples], dtype=np.bool_),
        reason=np.array([reasons.setdefault(s.reason, len(reasons)) for s in samples], np.int32),
        reasons=tuple(reasons),
    )


def step_of(times: Floats) -> float | None:
    """``samples.infer_step`` over arrays: the most common of the first 4,999 gaps,
    rounded by Python's ``round`` (numpy's rounds differently at the edges), the
    first seen winning a tie as in ``Counter.most_common``; 4,999 ``Points``
    lookups cost more than the rest of laying a month out."""
    if times.size < 2:
        return None
    raw, first, counts = np.unique(np.diff(times[:5000]), return_index=True, return_counts=True)
    tally: dict[float, tuple[int, int]] = {}  # rounded gap -> (count, -first index)
    for gap, at, n in zip(raw.tolist(), first.tolist(), counts.tolist(), strict=True):
        key = round(gap, 3)
        count, seen = tally.get(key, (0, -at))
        tally[key] = (count + n, max(seen, -at))
    return max(tally, key=lambda key: tally[key])


def columns_of(recording: Recording, start: float | None, end: float | None) -> Columns:
    """What ``samples_of(recording, start, end)`` gives, as columns."""
    points = recording.points
    if (
        recording.divided
        or recording.requests is not None
        or recording.needs_requests
        or not isinstance(points, PointArray)
    ):
        return from_samples(samples_of(recording, start, end))
    step = recording.step or step_of(points.times)
    if not len(points):
        return from_samples(samples_of(recording, start, end))
    return _plain(points, step, start, end)


def _plain(
    points: PointArray, step: float | None, start: float | None, end: float | None
) -> Columns:
    times, values = points.times, points.values
    pieces_t: list[NDArray[np.floating[Any]]] = []
    pieces_v: list[NDArray[np.floating[Any]]] = []
    fills: list[int] = []  # the index in the pieces of each piece of fill
    first, last = float(times[0]), float(times[-1])
    if step is not None and start is not None and start < first - step / 2:
        lead = math.floor((first - start) / step + 1e-9)
        fills.append(len(pieces_t))
        pieces_t.append(first - np.arange(lead, 0, -1) * step)
        pieces_v.append(np.full(lead, np.nan))
    cut = 0
    if step is not None and times.size > 1:
        gaps = np.flatnonzero(np.diff(times) > 1.5 * step)
        for g in gaps.tolist():
            previous = float(times[g])
            missing = round((float(times[g + 1]) - previous) / step) - 1
            pieces_t.append(times[cut : g + 1])
            pieces_v.append(values[cut : g + 1])
            fills.append(len(pieces_t))
            pieces_t.append(previous + np.arange(1, missing + 1) * step)
            pieces_v.append(np.full(missing, np.nan))
            cut = g + 1
    pieces_t.append(times[cut:])
    pieces_v.append(values[cut:])
    if step is not None and end is not None and end > last + step / 2:
        tail = math.floor((end - last) / step + 1e-9)
        fills.append(len(pieces_t))
        pieces_t.append(last + np.arange(1, tail + 1) * step)
        pieces_v.append(np.full(tail, np.nan))
    t = np.concatenate(pieces_t)
    recorded = np.concatenate(pieces_v)
    # Which samples are fill: the pieces laid out between the recorded ones.
    fill = set(fills)
    is_fill = np.concatenate(
        [np.full(piece.size, k in fill, dtype=np.bool_) for k, piece in enumerate(pieces_t)]
    )
    finite = np.isfinite(recorded) & ~is_fill
    nan = np.isnan(recorded) & ~is_fill
    kind = np.full(t.size, NO_DATA, dtype=np.int8)
    kind[finite] = VALUE
    infinite = ~finite & ~nan & ~is_fill
    kind[infinite] = ERROR
    reasons = (GAP_REASON, "", "NaN", _INF_REASON.format("+Inf"), _INF_REASON.format("-Inf"))
    reason = np.zeros(t.size, dtype=np.int32)
    reason[finite] = 1
    reason[nan] = 2
    reason[infinite & (recorded > 0)] = 3
    reason[infinite & (recorded < 0)] = 4
    value = np.where(finite, recorded, np.nan)
    # No traffic and no counts anywhere: one read-only value, not an array of them.
    none = np.broadcast_to(np.float64(np.nan), t.shape)
    no = np.broadcast_to(np.False_, t.shape)
    return Columns(t, kind, value, none, no, none, no, reason, reasons)
