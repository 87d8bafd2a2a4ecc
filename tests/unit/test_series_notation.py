"""promtool's expanding notation, both ways."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.backtest.series_notation import (
    MISSING,
    STALE,
    Point,
    SeriesNotationError,
    compact,
    expand,
)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        # The examples of Prometheus' unit-testing docs.
        ("-2+4x3", [-2.0, 2.0, 6.0, 10.0]),
        ("1-2x4", [1.0, -1.0, -3.0, -5.0, -7.0]),
        ("1x4", [1.0] * 5),
        ("1 _x3 stale", [1.0, MISSING, MISSING, MISSING, STALE]),
        # The issue's.
        ("0.01+0x10", [0.01] * 11),
        ("0.08x30", [0.08] * 31),
        ("1-0.1x5", [1.0, 0.9, 0.8, 0.7000000000000001, 0.6000000000000001, 0.5000000000000001]),
        ("_", [MISSING]),
        ("stale", [STALE]),
        ("", []),
        ("  5   6 ", [5.0, 6.0]),
        ("1e-3x2 +Inf -Inf", [0.001] * 3 + [math.inf, -math.inf]),
        ("0x2", [0.0, 0.0, 0.0]),  # x is always "times", never hex
    ],
)
def test_expand(text: str, values: list[Point]) -> None:
    """Each item expands as promtool expands it: axn is n+1 values, _xn is n."""
    assert expand(text) == values


def test_increments_accumulate_like_prometheus() -> None:
    """a+bxn adds b again and again (not a + i*b), so float rounding matches promtool."""
    expected = []
    value = 0.1
    for _ in range(11):
        expected.append(value)
        value += 0.1
    assert expand("0.1+0.1x10") == expected


def test_nan_is_a_value() -> None:
    """NaN is a number in the notation (the watchdog treats it as no data later)."""
    (value,) = expand("NaN")
    assert isinstance(value, float)
    assert math.isnan(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 abc", "item 2 'abc'"),
        ("1+2", "needs a count"),
        ("1x", "expected a number"),
        ("1x99999999999", "more than"),
    ],
)
def test_bad_items_name_the_item(text: str, message: str) -> None:
    """A bad item is reported with its position and what was expected."""
    with pytest.raises(SeriesNotationError, match=message):
        expand(text)


def test_compact_folds_runs() -> None:
    """Runs of equal values, of _ and single stales come back in the short forms."""
    points: list[Point] = [0.01] * 20 + [0.08] + [MISSING] * 3 + [STALE, STALE] + [1.0] * 2
    assert compact(points) == "0.01x19 0.08 _x3 stale stale 1x1"


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([MISSING, STALE, 0.05, 0.08]),
)


@given(st.lists(values, max_size=60))
def test_compact_round_trips(points: list[Point]) -> None:
    """expand(compact(p)) gives p back (NaN by kind)."""
    back = expand(compact(points))
    assert len(back) == len(points)
    for got, want in zip(back, points, strict=True):
        if isinstance(want, float) and math.isnan(want):
            assert isinstance(got, float)
            assert math.isnan(got)
        else:
            assert got == want
            assert type(got) is type(want)
