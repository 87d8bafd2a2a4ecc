"""Decimal numbers inside a byte buffer → the very floats ``float()`` gives, over
whole arrays (the ``fast`` extra).

``float()`` costs ~200 ns a number, which made parsing most of a month's backtest.
Here a token of at most 15 digits, an optional ``.`` and an optional leading ``-``
(what Prometheus and ``record`` write for most values) is read as an integer
mantissa M and a count k of digits after the dot: M < 10**15 < 2**53 and 10**k
(k <= 15) are exact doubles, so the one IEEE division M / 10**k is the correctly
rounded value of the decimal, which is what ``float()`` returns (Clinger's fast
path). Every other token (exponents, NaN, ±Inf, longer mantissas) is not certified,
and the caller gives it to ``float()`` itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Indexes = NDArray[np.intp]

MAX_DIGITS = 15  # below 2**53: the mantissa is an exact double
_POW10 = np.array([10.0**k for k in range(MAX_DIGITS + 1)])  # exact doubles
_POW10_INT = 10 ** np.arange(MAX_DIGITS + 2, dtype=np.int64)
_DIGIT_OR_DOT = MAX_DIGITS + 1  # the most bytes a certified token reads from the right
_ZERO, _DOT, _MINUS = 48, 46, 45


def parse_tokens(
    buffer: NDArray[np.uint8], starts: Indexes, ends: Indexes, json_number: bool
) -> tuple[Floats, Bools]:
    """The value of each token ``buffer[starts[i]:ends[i]]`` and whether it is
    certified (read exactly as ``float()`` reads it); uncertified tokens read junk.

    ``json_number``: certify only JSON's grammar for a non-negative number (no sign,
    no leading zero before another digit, digits on both sides of a dot); otherwise
    ``-?D+(.D+)?``. Tokens are read column by column from their right end, so every
    step is one operation over all tokens: digits and a dot are taken until the first
    other byte, and a token is certified when that byte is its start (or its ``-``)."""
    count = starts.size
    lengths = ends - starts
    widest = min(int(lengths.max(initial=0)), _DIGIT_OR_DOT)
    alive = np.ones(count, dtype=np.bool_)
    taken = np.zeros(count, dtype=np.uint8)  # digits and dots read from the right
    dots = np.zeros(count, dtype=np.uint8)
    dot_at = np.zeros(count, dtype=np.uint8)  # digits right of the dot
    mantissa = np.zeros(count, dtype=np.int64)  # the digits, the dot read as nothing
    term = np.empty(count, dtype=np.int64)
    for r in range(widest):
        digit = buffer.take(ends - (r + 1))
        digit -= np.uint8(_ZERO)  # uint8: bytes below '0' wrap above 9
        is_digit = digit < 10
        is_dot = digit == np.uint8(_DOT - _ZERO + 256)
        alive &= is_digit | is_dot
        is_digit &= alive
        is_dot &= alive
        np.add(taken, alive, out=taken)
        np.add(dots, is_dot, out=dots)
        np.add(dot_at, is_dot * np.uint8(r), out=dot_at)
        digit *= is_digit
        np.multiply(digit, _POW10_INT[r], out=term)
        mantissa += term
    first = buffer.take(np.minimum(starts, buffer.size - 1))
    negative = first == _MINUS
    has_dot = dots == 1
    digits = taken.astype(np.int64) - has_dot
    after = np.where(has_dot, dot_at, np.uint8(0))
    certified = (
        (digits + has_dot + (0 if json_number else negative) == lengths)
        & (dots <= 1)
        & (digits >= 1)
        & (digits <= MAX_DIGITS)
        & (~has_dot | ((after >= 1) & (after < digits)))
    )
    if json_number:  # no leading zero before another digit
        certified &= (digits - after == 1) | (first != _ZERO)
    if bool(has_dot.any()):  # digits left of the dot were weighted a power too high
        fraction = mantissa % _POW10_INT[after]
        mantissa = np.where(has_dot, (mantissa - fraction) // 10 + fraction, mantissa)
    values = mantissa.astype(np.float64) / _POW10[np.minimum(after, MAX_DIGITS)]
    if not json_number:
        np.negative(values, out=values, where=negative)
    return values, certified
