"""Silence regexes without backtracking: the same full matches as Python's ``re`` on
the supported syntax (a differential property test), linear time on patterns that
make ``re`` run for hours, and clear refusals for what is unsupported or too big."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.incidents.regex_syntax import PatternError
from watchdog.incidents.safe_regex import compile_pattern

ATOMS = ["a", "b", "-", ".", "[ab]", "[^a]", "[a-c]", r"\d", r"\w", r"\s", r"\.", "^", "$"]
QUANTIFIERS = ["", "", "*", "+", "?", "{2}", "{1,2}", "{,2}", "{2,}", "*?"]


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if depth < 2 and draw(st.booleans()):
            inner = "|".join(draw(st.lists(patterns(depth + 1), min_size=1, max_size=3)))
            atom = f"({inner})" if draw(st.booleans()) else f"(?:{inner})"
        else:
            atom = draw(st.sampled_from(ATOMS))
        quantifier = draw(st.sampled_from(QUANTIFIERS))
        parts.append(atom if atom in ("^", "$") else atom + quantifier)
    return "".join(parts)


@settings(max_examples=400, deadline=None)
@given(pattern=patterns(), text=st.text(alphabet="ab-.1 c", max_size=8))
def test_same_full_matches_as_python_re(pattern: str, text: str) -> None:
    try:
        compiled = compile_pattern(pattern)
    except PatternError:
        return  # too many states once expanded: refused, never wrong
    assert compiled.fullmatch(text) == (re.fullmatch(pattern, text) is not None), pattern


@pytest.mark.parametrize(
    "pattern",
    [r"(.*.*.*.*.*)*[^\s\S]", r"(a*)*b", r"(a|a)*b", r"(\w+\s?)*$x", r"(a|aa)+c"],
)
def test_catastrophic_patterns_run_in_linear_time(pattern: str) -> None:
    """Python's re needs hours for the first at 30 characters; here each character is
    one step over a bounded state set (memoised), so 1,000 characters finish at once."""
    compiled = compile_pattern(pattern)
    for length in (10, 100, 1000):
        assert not compiled.fullmatch("a" * length)
    assert len(compiled.states) < 50


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("a{4294967296}", "repeat count"),
        ("a{101}", "repeat count"),
        ("(a{100}){100}", "too large"),
        ("x" * 300, "at most 256"),
        ("(?=a)a", "lookarounds"),
        (r"(a)\1", "backreferences"),
        ("(?i)a", "inline flags"),
        ("(", "missing )"),
        ("a)", "unbalanced"),
        ("[a", "unterminated"),
        ("*", "nothing to repeat"),
        ("a**", "multiple repeat"),
        ("[z-a]", "bad character range"),
    ],
)
def test_refusals_say_what_is_wrong(pattern: str, says: str) -> None:
    with pytest.raises(PatternError, match=re.escape(says)):
        compile_pattern(pattern)
