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
_POW10 = np.array([10.0**k for k in range(MAX_DIGITS + 2)])  # exact doubles
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
    lengths = np.minimum(ends - starts, 255).astype(np.uint8)
    widest = min(int(lengths.max(initial=0)), _DIGIT_OR_DOT)
    alive = np.ones(count, dtype=np.bool_)
    dot = np.zeros(count, dtype=np.bool_)  # a dot was taken
    dots = np.zeros(count, dtype=np.bool_)  # a second one
    taken = np.zeros(count, dtype=np.uint8)  # digits and dots read from the right
    digits = np.zeros(count, dtype=np.uint8)
    after = np.zeros(count, dtype=np.uint8)  # digits taken before the dot
    mantissa = np.zeros(count)  # exact: below 10**15 < 2**53 wherever it counts
    index = ends - 1
    byte = np.empty(count, dtype=np.uint8)
    is_digit = np.empty(count, dtype=np.bool_)
    is_dot = np.empty(count, dtype=np.bool_)
    for _ in range(widest):
        np.take(buffer, index, out=byte)
        index -= 1
        byte -= np.uint8(_ZERO)  # uint8: bytes below '0' wrap above 9
        np.less(byte, 10, out=is_digit)
        np.equal(byte, np.uint8(_DOT - _ZERO + 256), out=is_dot)
        alive &= is_digit | is_dot
        is_digit &= alive
        is_dot &= alive
        dots |= is_dot & dot
        dot |= is_dot
        np.add(taken, alive, out=taken)
        np.add(after, is_digit & ~dot, out=after)
        mantissa += byte * _POW10.take(digits) * is_digit
        np.add(digits, is_digit, out=digits)
    first = buffer.take(np.minimum(starts, buffer.size - 1))
    negative = first == _MINUS
    after = np.where(dot, after, np.uint8(0))  # digits right of the dot
    certified = (
        (taken + (False if json_number else negative) == lengths)
        & ~dots
        & (digits >= 1)
        & (digits <= MAX_DIGITS)
        & (~dot | ((after >= 1) & (after < digits)))
    )
    if json_number:  # no leading zero before another digit
        certified &= (digits - after == 1) | (first != _ZERO)
    values = mantissa / _POW10.take(np.minimum(after, MAX_DIGITS))
    if not json_number:
        np.negative(values, out=values, where=negative)
    return values, certified
