"""The array decimal reader reads every token it certifies exactly as ``float()``
(and, for JSON numbers, as ``json.loads``) reads it, bit for bit; it certifies the
short plain decimals a recording is made of; and it certifies nothing outside its
grammar."""

from __future__ import annotations

import json
import math
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.backtest.decimals import MAX_DIGITS, _whole_numbers, parse_tokens
from watchdog.backtest.matrix_fast import parse_decimals

DECIMAL = r"[+-]?[0-9]{0,20}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?"
PLAIN = re.compile(r"-?([0-9]+)(\.([0-9]+))?")
JSON_NUMBER = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")

TOKENS = st.one_of(
    st.from_regex(DECIMAL, fullmatch=True),
    st.from_regex(r"-?[0-9]{1,17}(\.[0-9]{1,17})?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda v: f"{v:.{abs(hash(v)) % 12}f}"),
    st.sampled_from(["NaN", "+Inf", "-Inf", "-0", "-0.0", "0", "00", "007.50", ".5", "5.", "-"]),
    st.sampled_from(["1..2", "1.2.3", "--1", "1-", "e5", "", "9" * 15, "9" * 16, "0." + "9" * 15]),
)


def _bits(value: float) -> int:
    """A float's bits (every NaN alike), so -0.0 and 0.0 differ."""
    return -1 if math.isnan(value) else int(np.float64(value).view(np.int64))


def _tokens(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The texts as tokens of one buffer, each after a quote as in a body."""
    body = b"".join(b'"' + t.encode() for t in texts) + b'"'
    starts, position = [], 0
    for text in texts:
        starts.append(position + 1)
        position += 1 + len(text)
    begin = np.array(starts, dtype=np.intp)
    end = begin + np.array([len(t) for t in texts], dtype=np.intp)
    return np.frombuffer(body, np.uint8), begin, end


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@settings(max_examples=200, deadline=None)
@given(st.lists(TOKENS, min_size=1, max_size=30))
def test_certified_values_are_pythons_floats(texts: list[str]) -> None:
    buffer, starts, ends = _tokens(texts)
    values, certified = parse_tokens(buffer, starts, ends, json_number=False)
    for text, value, sure in zip(texts, values.tolist(), certified.tolist(), strict=True):
        plain = PLAIN.fullmatch(text)
        short = plain is not None and len(text.lstrip("-").replace(".", "")) <= MAX_DIGITS
        assert sure == short, text  # certified exactly when short and plain
        if sure:
            assert _bits(value) == _bits(float(text)), text


@settings(max_examples=200, deadline=None)
@given(st.lists(TOKENS, min_size=1, max_size=30))
def test_certified_json_numbers_are_jsons(texts: list[str]) -> None:
    buffer, starts, ends = _tokens(texts)
    values, certified = parse_tokens(buffer, starts, ends, json_number=True)
    for text, value, sure in zip(texts, values.tolist(), certified.tolist(), strict=True):
        json_ok = JSON_NUMBER.fullmatch(text) is not None
        short = json_ok and len(text.replace(".", "")) <= MAX_DIGITS
        assert sure == short, text
        if sure:
            assert _bits(value) == _bits(float(json.loads(text))), text


@st.composite
def same_length(draw: st.DrawFn) -> list[str]:
    """Tokens all as long, as whole-second timestamps are: mostly digits, now and then
    a leading zero, a dot or a sign."""
    length = draw(st.integers(min_value=1, max_value=17))
    digits = st.from_regex(rf"[0-9]{{{length}}}", fullmatch=True)
    odd = st.from_regex(rf"[0-9.\-e]{{{length}}}", fullmatch=True)
    return draw(st.lists(st.one_of(digits, digits, digits, odd), min_size=1, max_size=20))


@settings(max_examples=200, deadline=None)
@given(same_length())
def test_same_length_json_numbers_are_jsons(texts: list[str]) -> None:
    """The eight-digits-at-a-time path (all tokens as long, all digits) certifies
    exactly what the column path does, with the same values."""
    buffer, starts, ends = _tokens(texts)
    values, certified = parse_tokens(buffer, starts, ends, json_number=True)
    for text, value, sure in zip(texts, values.tolist(), certified.tolist(), strict=True):
        json_ok = JSON_NUMBER.fullmatch(text) is not None
        assert sure == (json_ok and len(text.replace(".", "")) <= MAX_DIGITS), text
        if sure:
            assert _bits(value) == _bits(float(json.loads(text))), text


@settings(max_examples=150, deadline=None)
@given(st.lists(TOKENS, min_size=1, max_size=30))
def test_a_list_of_numbers_reads_as_float_reads_it(texts: list[str]) -> None:
    """Certified or not: ``float()`` of every number, or None when it refuses one."""
    expected = [_float(t) for t in texts]
    parsed = parse_decimals(",".join(texts).encode())
    if any(value is None for value in expected):
        assert parsed is None
        return
    assert parsed is not None
    assert [_bits(v) for v in parsed.tolist()] == [_bits(v) for v in expected if v is not None]


def test_digits_right_before_a_token_do_not_join_it() -> None:
    """The reader stops at the token's start: a token whose left neighbour is a digit
    is read within its bounds, or not certified; never misread as a longer number."""
    buffer = np.frombuffer(b'"1234"3412', np.uint8)
    starts, ends = np.array([1, 8], dtype=np.intp), np.array([5, 10], dtype=np.intp)
    values, certified = parse_tokens(buffer, starts, ends, json_number=False)
    assert certified.tolist() == [True, False]
    assert values[0] == 1234.0
    alone, sure = parse_tokens(buffer, starts[1:], ends[1:], json_number=False)
    assert sure.tolist() == [True]
    assert alone[0] == 12.0


def test_whole_second_timestamps_take_the_word_path() -> None:
    """Ten-digit timestamps (and a 15-digit and a 1-digit list) are read eight digits
    at a time, to the same floats; a leading zero or a dot sends them to the columns."""
    for texts in (
        [str(1_790_000_000 + 15 * k) for k in range(50)],
        ["999999999999999", "123456789012345"],
        ["7", "0", "3"],
    ):
        buffer, starts, ends = _tokens(texts)
        whole = _whole_numbers(buffer, starts, ends)
        assert whole is not None
        assert whole[0].tolist() == [float(t) for t in texts]
        assert whole[1].all()
    for texts in (["0123", "4567"], ["1.25", "1000"], ["1234567890123456"]):
        buffer, starts, ends = _tokens(texts)
        assert _whole_numbers(buffer, starts, ends) is None
