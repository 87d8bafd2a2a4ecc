"""Per-minute counts for the burn-rate windows (``core.burn``): each minute's errors and
requests, oldest first, and the totals of a trailing window.

Windows of days cost a few thousand numbers, not every sample. The bench folds
hundreds of millions of samples through here, so a sample that adds to the latest
minute copies no column (that minute is kept apart from the closed ones), and a
window's closed minutes are summed once, then carried along as minutes close and the
window moves on (a memo shared by every state with the same closed minutes): the
same sums, value and type, as summing the columns afresh left to right.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from itertools import pairwise

BUCKET_S = 60.0

_Column = tuple[float, ...]


class Minutes:
    """Per-minute counts, oldest first: each minute's start, errors and requests.

    Immutable. Unpacks as the three columns (``starts, errors, requests = minutes``);
    inside, the closed minutes' columns and the latest minute apart."""

    __slots__ = ("_errors", "_last", "_ordered", "_requests", "_starts", "_sums")

    def __init__(self, starts: _Column = (), errors: _Column = (), requests: _Column = ()) -> None:
        if not len(starts) == len(errors) == len(requests):
            raise ValueError("minutes: the three columns must have the same length")
        last = (starts[-1], errors[-1], requests[-1]) if starts else None
        self._set(starts[:-1], errors[:-1], requests[:-1], last, {})
        # Out of time order (a clock that went back): every operation on the whole
        # columns, as one list, exactly as before the split.
        self._ordered = all(a <= b for a, b in pairwise(starts))

    def _set(
        self,
        starts: _Column,
        errors: _Column,
        requests: _Column,
        last: tuple[float, float, float] | None,
        sums: dict[int, _Sum],
    ) -> None:
        self._starts, self._errors, self._requests = starts, errors, requests
        self._last = last
        # Memo: per index into the closed columns, the sums of the closed minutes from it.
        self._sums = sums

    @classmethod
    def _make(
        cls,
        starts: _Column,
        errors: _Column,
        requests: _Column,
        last: tuple[float, float, float] | None,
        sums: dict[int, _Sum],
    ) -> Minutes:
        new = cls.__new__(cls)
        new._set(starts, errors, requests, last, sums)
        new._ordered = True
        return new

    @classmethod
    def of(cls, rows: tuple[tuple[float, float, float], ...]) -> Minutes:
        """From ``(minute start, errors, requests)`` rows in time order (the store's)."""
        return cls(tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))

    def _column(self, closed: _Column, index: int) -> _Column:
        last = self._last
        return closed if last is None else (*closed, last[index])

    @property
    def starts(self) -> _Column:
        return self._column(self._starts, 0)

    @property
    def errors(self) -> _Column:
        return self._column(self._errors, 1)

    @property
    def requests(self) -> _Column:
        return self._column(self._requests, 2)

    @property
    def oldest(self) -> float | None:
        """The first minute's start (None when empty)."""
        if self._starts:
            return self._starts[0]
        return None if self._last is None else self._last[0]

    def rows(self) -> tuple[tuple[float, float, float], ...]:
        return tuple(zip(self.starts, self.errors, self.requests, strict=True))

    def __iter__(self) -> Iterator[_Column]:
        return iter((self.starts, self.errors, self.requests))

    def __len__(self) -> int:
        return len(self._starts) + (self._last is not None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Minutes):
            return NotImplemented
        return self._last == other._last and (self._starts, self._errors, self._requests) == (
            other._starts,
            other._errors,
            other._requests,
        )

    def __hash__(self) -> int:
        return hash((self._starts, self._errors, self._requests, self._last))

    def __repr__(self) -> str:
        return f"Minutes(starts={self.starts}, errors={self.errors}, requests={self.requests})"


NO_MINUTES = Minutes()
_KEEP = 16  # memoized sums carried over when a minute closes
_EXACT = 2.0**53  # whole numbers below it add and subtract exactly as floats
# A memo entry: errors, requests, how many floats among each, all whole (exact)?
_Sum = tuple[float, float, int, int, bool]


def add(minutes: Minutes, at: float, errors: float, requests: float, horizon: float) -> Minutes:
    """``minutes`` with this sample's counts in its minute, those ending by ``horizon`` gone."""
    start = at - at % BUCKET_S
    cut = horizon - BUCKET_S  # minutes that start after it end after the horizon
    starts, errs, reqs, last = minutes._starts, minutes._errors, minutes._requests, minutes._last
    sums = minutes._sums
    if not minutes._ordered or (last is not None and start < last[0]):
        return _add_unordered(minutes, start, errors, requests, cut)
    first = bisect_right(starts, cut)
    if first:
        starts, errs, reqs = starts[first:], errs[first:], reqs[first:]
        sums = _trimmed(sums, first, minutes._errors, minutes._requests)
    if last is not None and last[0] <= cut:
        last = None  # the closed ones, older, went with it
    if last is not None and last[0] == start:
        return Minutes._make(
            starts, errs, reqs, (start, last[1] + errors, last[2] + requests), sums
        )
    if last is not None:  # the latest minute closes: once a minute, a copy of the columns
        starts, errs, reqs = (*starts, last[0]), (*errs, last[1]), (*reqs, last[2])
        # A sum from k on, plus the closed minute: left to right, the new sum from k.
        # The latest few only (each window's start moves on a minute at a time).
        sums = _carried(sums, last)
    return Minutes._make(starts, errs, reqs, (start, errors, requests), sums)


def _add_unordered(
    minutes: Minutes, start: float, errors: float, requests: float, cut: float
) -> Minutes:
    """``add`` on columns out of time order (a clock that went back): as one list."""
    starts, errs, reqs = minutes
    first = bisect_right(starts, cut)
    if first:
        starts, errs, reqs = starts[first:], errs[first:], reqs[first:]
    if starts and starts[-1] == start:
        return Minutes(starts, (*errs[:-1], errs[-1] + errors), (*reqs[:-1], reqs[-1] + requests))
    return Minutes((*starts, start), (*errs, errors), (*reqs, requests))


def totals(minutes: Minutes, at: float, span: float) -> tuple[float, float]:
    """Errors and requests of the minutes that end after ``at - span``. The same sums,
    left to right, as over the whole columns: the closed part's memoized sum, then the
    latest minute."""
    cut = at - span - BUCKET_S
    last = minutes._last
    starts = minutes._starts
    if last is None:
        return 0, 0
    if not minutes._ordered:  # out of time order: as one list
        all_starts, all_errors, all_requests = minutes
        first = bisect_right(all_starts, cut)
        return sum(all_errors[first:]), sum(all_requests[first:])
    first = bisect_right(starts, cut)
    if first == len(starts):
        return (0, 0) if last[0] <= cut else (0 + last[1], 0 + last[2])
    closed = minutes._sums.get(first)
    if closed is None:
        closed = _closed_sums(minutes, first)
    return closed[0] + last[1], closed[1] + last[2]


def _closed_sums(minutes: Minutes, first: int) -> _Sum:
    """The sums of the closed minutes from ``first`` on, memoized, as ``sum`` gives them
    (value and type). A window moves on a minute at a time: while every count is a
    whole number (int, or a float without a fraction) their sums are exact in any
    order, so the sums from the minute before less that minute are the same ones;
    otherwise they are summed afresh, left to right."""
    sums, errors, requests = minutes._sums, minutes._errors, minutes._requests
    before = sums.get(first - 1)
    if before is not None and before[4]:
        was_e, was_n, floats_e, floats_n, _ = before
        gone_e, gone_n = errors[first - 1], requests[first - 1]
        floats_e -= type(gone_e) is float
        floats_n -= type(gone_n) is float
        sum_e, sum_n = was_e - gone_e, was_n - gone_n
        # sum() gives an int unless a float is among the counts.
        closed = (
            float(sum_e) if floats_e else int(sum_e),
            float(sum_n) if floats_n else int(sum_n),
            floats_e,
            floats_n,
            True,
        )
    else:
        col_e, col_n = errors[first:], requests[first:]
        sum_e, sum_n = sum(col_e), sum(col_n)
        exact = _whole(col_e) and _whole(col_n) and sum_e < _EXACT and sum_n < _EXACT
        floats_e = sum(type(v) is float for v in col_e)
        floats_n = sum(type(v) is float for v in col_n)
        closed = (sum_e, sum_n, floats_e, floats_n, exact)
    sums[first] = closed
    return closed


def _trimmed(
    sums: dict[int, _Sum], first: int, errors: _Column, requests: _Column
) -> dict[int, _Sum]:
    """The memo once the closed minutes before ``first`` are gone: the rest renumbered,
    and the sums of what is left (the longest window's) from an exact sum before."""
    out = {k - first: v for k, v in sums.items() if k >= first}
    if 0 in out:
        return out
    older = [k for k, v in sums.items() if k < first and v[4]]
    if older:
        k = max(older)
        sum_e, sum_n, floats_e, floats_n, _ = sums[k]
        for index in range(k, first):
            gone_e, gone_n = errors[index], requests[index]
            sum_e, sum_n = sum_e - gone_e, sum_n - gone_n
            floats_e -= type(gone_e) is float
            floats_n -= type(gone_n) is float
        out[0] = (
            float(sum_e) if floats_e else int(sum_e),
            float(sum_n) if floats_n else int(sum_n),
            floats_e,
            floats_n,
            True,
        )
    return out


def _whole(column: _Column) -> bool:
    """Every count an int or a float without a fraction, none below 0 (then every
    partial sum below 2**53 is exact)."""
    return all((type(v) is int or (type(v) is float and v.is_integer())) and v >= 0 for v in column)


def _carried(sums: dict[int, _Sum], last: tuple[float, float, float]) -> dict[int, _Sum]:
    """The memo once the latest minute closed: each sum from k on, plus that minute, is
    (left to right) the new sum from k. The latest few only: each window's start
    moves on a minute at a time."""
    _, add_e, add_n = last
    is_float_e, is_float_n = type(add_e) is float, type(add_n) is float
    whole = _whole((add_e, add_n))
    out = {}
    for k, (sum_e, sum_n, floats_e, floats_n, exact) in list(sums.items())[-_KEEP:]:
        sum_e, sum_n = sum_e + add_e, sum_n + add_n
        exact = exact and whole and sum_e < _EXACT and sum_n < _EXACT
        out[k] = (sum_e, sum_n, floats_e + is_float_e, floats_n + is_float_n, exact)
    return out


def window_totals(
    minutes: Minutes, at: float, spans: tuple[float, ...]
) -> dict[float, tuple[float, float]]:
    """``totals`` of each span, in one pass (the evaluator's hot path)."""
    last = minutes._last
    if last is None or not minutes._ordered:
        return {span: totals(minutes, at, span) for span in spans}
    starts, sums, size = minutes._starts, minutes._sums, len(minutes._starts)
    last_start, last_e, last_n = last
    out = {}
    for span in spans:
        cut = at - span - BUCKET_S
        first = bisect_right(starts, cut)
        if first == size:
            out[span] = (0, 0) if last_start <= cut else (0 + last_e, 0 + last_n)
            continue
        closed = sums.get(first)
        if closed is None:
            closed = _closed_sums(minutes, first)
        out[span] = (closed[0] + last_e, closed[1] + last_n)
    return out
