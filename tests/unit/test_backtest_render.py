"""The backtest's JSON lines are ``strict_json``'s text, whatever a line holds."""

from __future__ import annotations

import enum
import math
from collections import Counter
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog import strict_json
from watchdog.backtest.render import _line


class Kind(enum.StrEnum):
    FIRING = "firing"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and ±Inf included: they become null
    st.text(max_size=5),
    st.sampled_from(list(Kind)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.dictionaries(st.text(max_size=3), inner, max_size=3).map(MappingProxyType),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=3).map(Counter),
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=4), values, max_size=5))
def test_a_line_is_strict_jsons_text(line: dict[str, Any]) -> None:
    assert _line(line) == strict_json.dumps(line, compact=True)


@pytest.mark.parametrize(
    "line",
    [
        {"value": math.nan, "threshold": 0.05},
        {"spans": ({"at": 1.5, "value": -math.inf},)},
        {"fields": MappingProxyType({"why": "s0 > 5%"})},
        {"time": "2026-10-21T14:13:05Z", "decisions": Counter(notify=3)},
    ],
)
def test_lines_the_plain_encoder_refuses_take_the_strict_way(line: dict[str, Any]) -> None:
    assert _line(line) == strict_json.dumps(line, compact=True)
    assert "NaN" not in _line(line)
    assert "Infinity" not in _line(line)


def test_what_strict_json_refuses_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _line({"at": object()})
