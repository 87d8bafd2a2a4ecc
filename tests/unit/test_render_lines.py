"""A backtest's JSON lines are ``strict_json``'s, byte for byte: the plain encoder's
shortcut changes nothing, NaN and ±Inf still become null."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog import strict_json
from watchdog.backtest.render import _line

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), VALUES, max_size=6))
def test_a_line_is_strict_json(document: dict[str, Any]) -> None:
    assert _line(document) == strict_json.dumps(document, compact=True)


def test_nan_and_infinity_become_null() -> None:
    line = _line({"value": float("nan"), "evidence": {"ratio": float("inf")}, "ok": 1.5})
    assert line == '{"value":null,"evidence":{"ratio":null},"ok":1.5}'
