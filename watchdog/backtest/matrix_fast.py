"""A saved ``query_range`` body read straight into two arrays (times, values), for the
columnar replay (the ``fast`` extra: numpy and orjson).

A month at 15 s is 172,800 points: as Python objects (a list, a tuple and two floats
each) that costs more than the whole replay. Here the ``values`` array is cut out of
the bytes and its numbers parsed by numpy: a decimal of at most 15 digits is
``mantissa / 10**fraction_digits``, one correctly rounded division of two exact
numbers, so the same float that Python's ``float()`` gives (the fast path of every
correctly rounding parser). Anything else (``NaN``, ``+Inf``, exponents, longer
numbers) goes through ``float()`` one by one; a body of any other shape, or one that
``float()`` refuses, is read the careful way (``recordings.read_matrix_file``) so
that every error names the file and the point exactly as before.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
from numpy.typing import NDArray

from watchdog.backtest.recordings import read_matrix_file
from watchdog.errors import BacktestError
from watchdog.sources.prometheus_range import parse_matrix

Floats = NDArray[np.float64]

_VALUES = re.compile(rb'"values"\s*:\s*\[')
_WHITESPACE = b" \t\r\n"
_DIGITS = 15  # at most this many digits: the mantissa is exact (below 2**53)
_POW10 = np.array([10.0**k for k in range(23)])  # exact doubles up to 1e22
_DIGIT, _DOT, _COMMA, _OTHER = 0, 1, 2, 3
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[ord("0") : ord("9") + 1] = _DIGIT
_CLASS[ord(".")] = _DOT
_CLASS[ord(",")] = _COMMA


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
    end = body.find(b"]]", start)
    if end < 0 or _VALUES.search(body, found.end()) is not None:
        return None
    end += 2
    try:
        envelope = orjson.loads(body[:start] + b"[]" + body[end:])
        if parse_matrix(envelope) != []:
            return None
    except (orjson.JSONDecodeError, BacktestError):
        return None
    pairs = _pairs(body[start:end].translate(None, _WHITESPACE))
    if pairs is None:
        return None
    times, values = pairs
    if times.size > 1 and not bool(np.all(np.diff(times) > 0)):
        return None  # the careful way names the point out of order
    return times, values


def _pairs(text: bytes) -> tuple[Floats, Floats] | None:
    """``[[ts,"v"],...]`` → the two columns; None when it is not exactly that shape."""
    n = text.count(b"[") - 1
    if (
        n < 1
        or not text.startswith(b"[[")
        or text.count(b"]") != n + 1
        or text.count(b",") != 2 * n - 1
        or text.count(b'"') != 2 * n
        or text.count(b',"') != n
        or text.count(b'"]') != n
    ):
        return None
    numbers = parse_decimals(text.translate(None, b'[]"'))
    if numbers is None or numbers.size != 2 * n:
        return None
    return numbers[0::2].copy(), numbers[1::2].copy()


def parse_decimals(text: bytes) -> Floats | None:
    """Comma-separated numbers → floats equal to Python's ``float()`` of each; None
    when ``float()`` refuses one."""
    buf = np.frombuffer(text, dtype=np.uint8)
    cls = _CLASS[buf]
    commas = np.flatnonzero(cls == _COMMA)
    starts = np.concatenate(([0], commas + 1))
    ends = np.concatenate((commas, [buf.size]))
    if buf.size == 0 or not bool(np.all(ends > starts)):
        return None  # an empty number: float('') refuses it
    at = np.flatnonzero(cls == _DIGIT)
    dot_at = np.flatnonzero(cls == _DOT)
    first = np.searchsorted(at, starts)  # each number's first digit, among all digits
    digits = np.searchsorted(at, ends) - first
    dots = np.searchsorted(dot_at, ends) - np.searchsorted(dot_at, starts)
    leading = buf[starts] == ord("-")
    # Simple: digits, at most one dot, a leading minus, nothing else, and few digits.
    simple = (digits + dots + leading == ends - starts) & (digits > 0) & (dots <= 1)
    simple &= digits <= _DIGITS
    # The mantissa, numbers grouped by their count of digits: a matrix product of
    # whole numbers below 2**53, exact in any order of summation.
    mantissa = np.zeros(starts.size)
    for width in np.unique(digits[simple]).tolist():
        which = np.flatnonzero(simple & (digits == width))
        matrix = buf[at[first[which][:, None] + np.arange(width)]] - ord("0")
        mantissa[which] = matrix @ _POW10[width - 1 :: -1]
    # Fraction digits: those after the dot (a simple number has nothing else there).
    fraction = np.zeros(starts.size, dtype=np.int64)
    owner = np.searchsorted(starts, dot_at, side="right") - 1
    fraction[owner] = ends[owner] - dot_at - 1
    out: Floats = mantissa / _POW10[np.minimum(fraction, 22)]
    out[leading] = -out[leading]
    hard = np.flatnonzero(~simple)
    if hard.size:
        try:
            for index in hard.tolist():
                out[index] = float(text[starts[index] : ends[index]])
        except (ValueError, OverflowError):
            return None
    return out
