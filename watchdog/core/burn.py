"""SLO burn rates (the SRE workbook's multiwindow, multi-burn-rate alerts), on counts.

An objective of 99.9 % leaves an error budget of 0.1 %; a burn rate is the error
ratio over that budget. A pair of windows breaches when both the long and the short
window burn faster than the pair's ``factor`` (14.4 over 1 h and 5 m pages on 2 % of
a 30-day budget gone): the long window says it matters, the short one that it is
still happening. Counts are kept per minute, so windows of days cost a few thousand
numbers, not every sample. The bench folds hundreds of millions of samples through
here, so a sample that adds to the latest minute copies no column (that minute is
kept apart from the closed ones), and a window's closed minutes are summed once per
minute, not per sample (a memo shared by every state with the same closed minutes).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from watchdog.units import format_duration

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
        sums: dict[int, tuple[float, float]],
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
        sums: dict[int, tuple[float, float]],
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
        starts, errs, reqs, sums = starts[first:], errs[first:], reqs[first:], {}
    if last is not None and last[0] <= cut:
        last = None  # the closed ones, older, went with it
    if last is not None and last[0] == start:
        return Minutes._make(
            starts, errs, reqs, (start, last[1] + errors, last[2] + requests), sums
        )
    if last is not None:  # the latest minute closes: once a minute, a copy of the columns
        starts, errs, reqs = (*starts, last[0]), (*errs, last[1]), (*reqs, last[2])
    return Minutes._make(starts, errs, reqs, (start, errors, requests), {})


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
    sums = minutes._sums
    closed = sums.get(first)
    if closed is None:
        closed = sums[first] = (sum(minutes._errors[first:]), sum(minutes._requests[first:]))
    return closed[0] + last[1], closed[1] + last[2]


@dataclass(frozen=True, slots=True)
class BurnEvidence:
    """One pair of windows as judged: both windows' counts against the pair's bar."""

    objective: float
    factor: float
    long_s: float
    long_errors: float
    long_requests: float
    short_s: float
    short_errors: float
    short_requests: float
    covered: bool = True  # the recorded counts reach back over the whole long window

    @property
    def bar(self) -> float:
        """The error ratio at which the budget burns ``factor`` times too fast."""
        return self.factor * (1.0 - self.objective)

    def burn(self, errors: float, requests: float) -> float:
        return (errors / requests) / (1.0 - self.objective) if requests > 0 else 0.0

    @property
    def breached(self) -> bool:
        bar = self.bar
        return (
            self.covered
            and self.long_requests > 0
            and self.short_requests > 0
            and self.long_errors / self.long_requests > bar
            and self.short_errors / self.short_requests > bar
        )

    def text(self) -> str:
        """``burn 20x over 1h (120 errors / 6000 requests) and 31x over 5m (...) vs 14.4x``."""
        long, short = format_duration(self.long_s), format_duration(self.short_s)
        return (
            f"burn {self.burn(self.long_errors, self.long_requests):.3g}x over {long} "
            f"({self.long_errors:g} errors / {self.long_requests:g} requests) and "
            f"{self.burn(self.short_errors, self.short_requests):.3g}x over {short} "
            f"({self.short_errors:g} / {self.short_requests:g}) vs {self.factor:g}x "
            f"of a {self.objective * 100:g}% objective"
        )


def judge(
    minutes: Minutes,
    at: float,
    objective: float,
    pairs: tuple[tuple[float, float, float], ...],
) -> tuple[BurnEvidence, ...]:
    """Each ``(long, short, factor)`` pair as it stands at ``at``. A pair whose long
    window reaches back before the first recorded minute (a fresh start) cannot
    breach: an hour's bar met by five minutes of data would page on one error."""
    out = []
    oldest = minutes.oldest
    first = at if oldest is None else oldest
    for long_s, short_s, factor in pairs:
        long_e, long_n = totals(minutes, at, long_s)
        short_e, short_n = totals(minutes, at, short_s)
        covered = first <= at - long_s + BUCKET_S
        out.append(
            BurnEvidence(
                objective, factor, long_s, long_e, long_n, short_s, short_e, short_n, covered
            )
        )
    return tuple(out)


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
            closed = sums[first] = (sum(minutes._errors[first:]), sum(minutes._requests[first:]))
        out[span] = (closed[0] + last_e, closed[1] + last_n)
    return out


def pressing(
    minutes: Minutes,
    at: float,
    objective: float,
    pairs: tuple[tuple[float, float, float], ...],
    spans: tuple[float, ...],
) -> tuple[bool, float, float, bool, dict[float, tuple[float, float]]]:
    """What ``judge`` tells the evaluator, without building the evidence: does a pair
    breach; the long window's counts of the first that does (else of the first pair);
    is every pair's long window covered; each of ``spans`` (every pair's windows) as
    ``totals`` gives it. The same sums and comparisons as ``judge`` and
    ``BurnEvidence.breached``."""
    oldest = minutes.oldest
    first = at if oldest is None else oldest
    budget = 1.0 - objective
    got = window_totals(minutes, at, spans)
    covered_all = True
    found: tuple[float, float] | None = None  # the first breaching pair's long window
    for long_s, short_s, factor in pairs:
        if not first <= at - long_s + BUCKET_S:
            covered_all = False  # this pair cannot breach
            continue
        if found is not None:
            continue
        long_e, long_n = long_t = got[long_s]
        short_e, short_n = got[short_s]
        bar = factor * budget
        if long_n > 0 and short_n > 0 and long_e / long_n > bar and short_e / short_n > bar:
            found = long_t
    errors, requests = got[pairs[0][0]] if found is None else found
    return found is not None, errors, requests, covered_all, got
