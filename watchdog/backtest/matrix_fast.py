"""A saved ``query_range`` body read straight into two arrays (times, values), for the
columnar replay (the ``fast`` extra: numpy and orjson).

A month at 15 s is 172,800 points: as Python objects (a list, a tuple and two floats
each) that costs more than the whole replay, and even ``float()`` of each number
(~200 ns) was most of a backtest. Here the ``values`` array is cut out of the bytes,
its exact shape checked over whole arrays (the structure in order, nothing but the
numbers between it), and its numbers read by ``decimals`` (the same floats as
``float()``; ``float()`` itself for the few it does not certify). A body of any other
shape, or one with a number ``float()`` or JSON refuses, is read the careful way
(``recordings.read_matrix_file``) so that every error names the file and the point
exactly as before."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson

from watchdog.backtest.decimals import Bools, Floats, Indexes, parse_tokens
from watchdog.backtest.recordings import read_matrix_file
from watchdog.errors import BacktestError
from watchdog.sources.prometheus_range import parse_matrix

_VALUES = re.compile(rb'"values"\s*:\s*\[')
# What a number token may hold (float() and JSON); whatever else is between the
# brackets must be the structure itself.
_TOKEN_BYTES = b"0123456789.eE+-NaIfn"
_QUOTE, _COMMA, _SPACE, _BRACKET, _CLOSE = 34, 44, 32, 91, 93


def read_matrix_arrays(path: Path) -> tuple[Floats, Floats]:
    """``(times, values)`` of a saved ``query_range`` body, exactly as
    ``read_matrix_file`` reads it (same floats, same errors)."""
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise BacktestError(f"{path}: no such file") from None
    except OSError as exc:
        raise BacktestError(f"{path}: cannot read: {exc}") from None
    fast = _fast(body, path)
    if fast is not None:
        return fast
    points = read_matrix_file(path)  # the careful way: it raises naming what is wrong
    times = np.array([p[0] for p in points], dtype=np.float64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    return times, values


def _fast(body: bytes, path: Path) -> tuple[Floats, Floats] | None:
    """The arrays when the body is one well-formed series; None for the careful way."""
    found = _VALUES.search(body)
    if found is None:
        return None
    start = found.end() - 1
    # The last "]]": a values list holds no other, and a wrong guess fails the checks.
    end = body.rfind(b"]]", start) + 2
    if end < 2 or _VALUES.search(body, end) is not None:
        return None
    try:
        envelope = orjson.loads(body[:start] + b"[]" + body[end:])
        if parse_matrix(envelope) != []:
            return None
    except (orjson.JSONDecodeError, BacktestError):
        return None
    pairs = _pairs(body[start:end])
    if pairs is None:
        return None
    times, values = pairs
    if times.size > 1 and not bool(np.all(np.diff(times) > 0)):
        return None  # the careful way names the point out of order
    return times, values


def _pairs(text: bytes) -> tuple[Floats, Floats] | None:
    """``[[ts,"v"],...]`` (compact, or a space after each comma as ``json.dumps``
    writes it) → the two columns; None when it is not exactly that shape, a
    timestamp is not a plain JSON number, or ``float()`` refuses a value."""
    skeleton = text.translate(None, _TOKEN_BYTES)
    compact, spaced = (len(skeleton) - 1) // 6, len(skeleton) // 8
    if not (
        (compact >= 1 and skeleton == b"[" + b'[,""],' * (compact - 1) + b'[,""]]')
        or (spaced >= 1 and skeleton == b"[" + b'[, ""], ' * (spaced - 1) + b'[, ""]]')
    ):
        return None
    buffer = np.frombuffer(text, np.uint8)
    quotes = np.flatnonzero(buffer == _QUOTE)
    opens, closes = quotes[0::2], quotes[1::2]
    # The skeleton has the structure in order; here nothing else is between its bytes
    # but the tokens.
    ts_comma = opens - 1 - (buffer[opens - 1] == _SPACE)
    follows = closes[:-1] + 3
    bracket = follows + (buffer[follows] == _SPACE)
    if (
        text[:2] != b"[["
        or int(closes[-1]) != len(text) - 3
        or not bool(np.all(buffer[ts_comma] == _COMMA))
        or not bool(np.all(buffer[bracket] == _BRACKET))
        or not bool(np.all(buffer[closes[:-1] + 1] == _CLOSE))
        or not bool(np.all(buffer[closes[:-1] + 2] == _COMMA))
    ):
        return None
    ts_starts = np.empty_like(opens)
    ts_starts[0] = 2
    ts_starts[1:] = bracket + 1
    times, exact = parse_tokens(buffer, ts_starts, ts_comma, json_number=True)
    if not bool(exact.all()):
        return None  # an exponent, a sign, a long mantissa: the careful way
    values, exact = parse_tokens(buffer, opens + 1, closes, json_number=False)
    return (times, values) if _rest(text, values, exact, opens, closes) else None


def _rest(text: bytes, values: Floats, exact: Bools, opens: Indexes, closes: Indexes) -> bool:
    """``float()`` of each value the array path did not certify (NaN, ±Inf,
    exponents, long mantissas), in place; False when ``float()`` refuses one."""
    try:
        for row in np.flatnonzero(~exact).tolist():
            values[row] = float(text[opens[row] + 1 : closes[row]])
    except (ValueError, OverflowError):
        return False
    return True


def parse_decimals(text: bytes) -> Floats | None:
    """Comma-separated numbers → Python's ``float()`` of each (so the very same
    floats); None when ``float()`` refuses one."""
    text = b"," + text  # a byte before the first number, as in a body
    buffer = np.frombuffer(text, np.uint8)
    commas = np.flatnonzero(buffer == _COMMA)
    ends = np.append(commas[1:], len(text))
    values, exact = parse_tokens(buffer, commas + 1, ends, json_number=False)
    return values if _rest(text, values, exact, commas, ends) else None
