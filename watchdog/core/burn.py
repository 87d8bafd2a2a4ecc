"""SLO burn rates (the SRE workbook's multiwindow, multi-burn-rate alerts), on counts.

An objective of 99.9 % leaves an error budget of 0.1 %; a burn rate is the error
ratio over that budget. A pair of windows breaches when both the long and the short
window burn faster than the pair's ``factor`` (14.4 over 1 h and 5 m pages on 2 % of
a 30-day budget gone): the long window says it matters, the short one that it is
still happening. Counts are kept per minute, so windows of days cost a few thousand
numbers, not every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.units import format_duration

BUCKET_S = 60.0
Buckets = tuple[tuple[float, float, float], ...]  # (minute start, errors, requests)


def add(buckets: Buckets, at: float, errors: float, requests: float, horizon: float) -> Buckets:
    """``buckets`` with this sample's counts in its minute, older than ``horizon`` gone."""
    start = at - at % BUCKET_S
    kept = tuple(b for b in buckets if b[0] + BUCKET_S > horizon)
    if kept and kept[-1][0] == start:
        last = kept[-1]
        return (*kept[:-1], (start, last[1] + errors, last[2] + requests))
    return (*kept, (start, errors, requests))


def totals(buckets: Buckets, at: float, span: float) -> tuple[float, float]:
    """Errors and requests of the minutes that end after ``at - span``."""
    errors = requests = 0.0
    horizon = at - span
    for start, e, n in buckets:
        if start + BUCKET_S > horizon:
            errors += e
            requests += n
    return errors, requests


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
    buckets: Buckets,
    at: float,
    objective: float,
    pairs: tuple[tuple[float, float, float], ...],
) -> tuple[BurnEvidence, ...]:
    """Each ``(long, short, factor)`` pair as it stands at ``at``. A pair whose long
    window reaches back before the first recorded minute (a fresh start) cannot
    breach: an hour's bar met by five minutes of data would page on one error."""
    out = []
    first = buckets[0][0] if buckets else at
    for long_s, short_s, factor in pairs:
        long_e, long_n = totals(buckets, at, long_s)
        short_e, short_n = totals(buckets, at, short_s)
        covered = first <= at - long_s + BUCKET_S
        out.append(
            BurnEvidence(
                objective, factor, long_s, long_e, long_n, short_s, short_e, short_n, covered
            )
        )
    return tuple(out)
