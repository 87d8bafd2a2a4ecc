"""The engine's count windows take shortcuts for speed (the decision bench folds hundreds
of millions of samples): the burn-rate minutes keep the latest minute apart and carry
their sums along, a confidence rule's window slides from its front with running int
sums. Each must give exactly what the plain way gives (filter, then sum left to right),
value and type, whatever the counts (ints, floats, whole floats, no traffic) and even
when the clock goes back. These pin each shortcut to the plain way written out here."""

from __future__ import annotations

import itertools
from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core import burn
from watchdog.core.minutes import window_totals
from watchdog.core.window import slide

Rows = tuple[tuple[float, float, float], ...]

count = st.one_of(
    st.integers(min_value=0, max_value=50),
    st.sampled_from([0.0, 1.0, 3.0, 0.5, 2.25, 1e-3]),
)
# Steps of the clock in seconds: mostly forward, sometimes back.
move = st.sampled_from([15.0, 15.0, 15.0, 15.0, 1.0, 60.0, 400.0, 3000.0, -15.0, -700.0])
sample = st.tuples(move, count, count, st.booleans())  # (step, errors, requests, has counts)


def plain_add(rows: Rows, at: float, errors: float, requests: float, horizon: float) -> Rows:
    """The minutes as three columns, before the split (the code this replaced)."""
    start = at - at % 60.0
    starts = [r[0] for r in rows]
    kept = list(rows[bisect_right(starts, horizon - 60.0) :])
    if kept and kept[-1][0] == start:
        s, e, n = kept[-1]
        kept[-1] = (s, e + errors, n + requests)
    else:
        kept.append((start, errors, requests))
    return tuple(kept)


def plain_totals(rows: Rows, at: float, span: float) -> tuple[float, float]:
    first = bisect_right([r[0] for r in rows], at - span - 60.0)
    return sum(r[1] for r in rows[first:]), sum(r[2] for r in rows[first:])


def same(a: object, b: object) -> bool:
    """Equal, and of the same type (an int sum is not a float one in JSON)."""
    return a == b and type(a) is type(b)


@settings(max_examples=300, deadline=None)
@given(st.lists(sample, min_size=1, max_size=400), st.sampled_from([None, 0.999, 0.9, 0.5]))
def test_minutes_give_the_plain_sums(
    samples: list[tuple[float, float, float, bool]], confidence: float | None
) -> None:
    """... and ``pressing`` tells what ``judge`` does, with or without a confidence."""
    spans = (300.0, 1800.0, 3600.0, 21600.0)
    pairs = ((3600.0, 300.0, 14.4), (21600.0, 1800.0, 6.0))
    minutes = burn.NO_MINUTES
    rows: Rows = ()
    at = 1_000_000.0
    for step, errors, requests, counted in samples:
        at += step
        e, n = (errors, requests) if counted else (0.0, 0.0)  # no traffic: a covered minute
        minutes = burn.add(minutes, at, e, n, at - 21600.0)
        rows = plain_add(rows, at, e, n, at - 21600.0)
        assert minutes.rows() == rows
        got = window_totals(minutes, at, spans)
        for span in spans:
            want = plain_totals(rows, at, span)
            for fast in (burn.totals(minutes, at, span), got[span]):
                assert same(fast[0], want[0]), (span, fast, want)
                assert same(fast[1], want[1]), (span, fast, want)
        judged = burn.judge(minutes, at, 0.99, pairs, confidence)
        breach, errs, reqs, covered, _, doubtful = burn.pressing(
            minutes, at, 0.99, pairs, spans, confidence
        )
        shown = next((j for j in judged if j.breached), None)
        shown = shown or next((j for j in judged if j.doubtful), judged[0])
        assert breach == any(j.breached for j in judged)
        assert doubtful == (not breach and any(j.doubtful for j in judged))
        assert (errs, reqs) == (shown.long_errors, shown.long_requests)
        assert covered == all(j.covered for j in judged)
        if confidence is None:
            assert not doubtful  # the point semantics: past the bar is a breach


def test_minutes_unpack_as_three_columns() -> None:
    minutes = burn.add(burn.NO_MINUTES, 120.0, 1, 10, 0.0)
    minutes = burn.add(minutes, 185.0, 2, 20, 0.0)
    starts, errors, requests = minutes
    assert (starts, errors, requests) == ((120.0, 180.0), (1, 2), (10, 20))
    assert minutes == burn.Minutes(starts, errors, requests)
    assert minutes.oldest == 120.0
    assert len(minutes) == 2


def plain_slide(old: Rows, horizon: float, item: tuple[float, float, float] | None) -> Rows:
    kept = [entry for entry in old if entry[0] > horizon]
    if item is not None:
        kept.append(item)
    return tuple(kept)


@settings(max_examples=300, deadline=None)
@given(st.lists(sample, min_size=1, max_size=300), st.sampled_from([60.0, 180.0, 300.0]))
def test_a_confidence_window_gives_the_plain_sums(
    samples: list[tuple[float, float, float, bool]], window: float
) -> None:
    counts: Rows = ()
    errors: float | None = None  # as after a blind sample: sums unknown
    requests: float | None = None
    ordered = True
    at = 1_000_000.0
    for step, e, n, counted in samples:
        at += step
        item = (at, e, n) if counted else None
        want = plain_slide(counts, at - window, item)
        counts, errors, requests, ordered = slide(
            counts, errors, requests, ordered, at - window, item
        )
        assert counts == want
        assert same(errors, sum([c[1] for c in want]))
        assert same(requests, sum([c[2] for c in want]))
        assert ordered == all(a[0] <= b[0] for a, b in itertools.pairwise(want))
