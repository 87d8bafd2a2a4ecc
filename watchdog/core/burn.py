"""SLO burn rates (the SRE workbook's multiwindow, multi-burn-rate alerts), on counts.

An objective of 99.9 % leaves an error budget of 0.1 %; a burn rate is the error
ratio over that budget. A pair of windows breaches when both the long and the short
window burn faster than the pair's ``factor`` (14.4 over 1 h and 5 m pages on 2 % of
a 30-day budget gone): the long window says it matters, the short one that it is
still happening. Counts are kept per minute, so windows of days cost a few thousand
numbers, not every sample; three parallel columns, so that a window's total is one
binary search and one C-level ``sum`` of a slice (the bench folds hundreds of
millions of samples through here).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple

from watchdog.units import format_duration

BUCKET_S = 60.0


class Minutes(NamedTuple):
    """Per-minute counts, oldest first: each minute's start, errors and requests."""

    starts: tuple[float, ...] = ()
    errors: tuple[float, ...] = ()
    requests: tuple[float, ...] = ()

    @classmethod
    def of(cls, rows: tuple[tuple[float, float, float], ...]) -> Minutes:
        """From ``(minute start, errors, requests)`` rows in time order (the store's)."""
        return cls(tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))

    def rows(self) -> tuple[tuple[float, float, float], ...]:
        return tuple(zip(self.starts, self.errors, self.requests, strict=True))


NO_MINUTES = Minutes()


def add(minutes: Minutes, at: float, errors: float, requests: float, horizon: float) -> Minutes:
    """``minutes`` with this sample's counts in its minute, those ending by ``horizon`` gone."""
    start = at - at % BUCKET_S
    starts, errs, reqs = minutes
    first = bisect_right(starts, horizon - BUCKET_S)  # minutes that end after the horizon
    if first:
        starts, errs, reqs = starts[first:], errs[first:], reqs[first:]
    if starts and starts[-1] == start:
        return Minutes(starts, (*errs[:-1], errs[-1] + errors), (*reqs[:-1], reqs[-1] + requests))
    return Minutes((*starts, start), (*errs, errors), (*reqs, requests))


def totals(minutes: Minutes, at: float, span: float) -> tuple[float, float]:
    """Errors and requests of the minutes that end after ``at - span``."""
    first = bisect_right(minutes.starts, at - span - BUCKET_S)
    if not first:
        return sum(minutes.errors), sum(minutes.requests)
    return sum(minutes.errors[first:]), sum(minutes.requests[first:])


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
    first = minutes.starts[0] if minutes.starts else at
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
