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
    if json_number:
        whole = _whole_numbers(buffer, starts, ends)
        if whole is not None:
            return whole
    lengths = np.minimum(ends - starts, 255).astype(np.uint8)
    widest = min(int(lengths.max(initial=0)), _DIGIT_OR_DOT)
    taken, digits, after, dot, dots, mantissa = _read_columns(buffer, ends, widest)
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


def _read_columns(
    buffer: NDArray[np.uint8], ends: Indexes, widest: int
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8], Bools, Bools, Floats]:
    """The tokens read from their right end, ``widest`` bytes: how many digits and
    dots were taken, how many digits, how many before the dot, whether there was a
    dot and a second one, and the digits as a number (the dot read as nothing)."""
    count = ends.size
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
    return taken, digits, after, dot, dots, mantissa


_U64 = np.uint64
_ASCII_ZEROS = _U64(0x3030303030303030)
_HIGH_NIBBLES = _U64(0xF0F0F0F0F0F0F0F0)


def _whole_numbers(
    buffer: NDArray[np.uint8], starts: Indexes, ends: Indexes
) -> tuple[Floats, Bools] | None:
    """JSON numbers that are all digits and all as long (a query_range's whole-second
    timestamps), eight digits at a time in a 64-bit word (SWAR); None when they are
    not all that (the column reader takes them)."""
    if starts.size == 0:
        return None
    length = int(ends[0] - starts[0])
    if not 1 <= length <= MAX_DIGITS or not bool(np.all(ends - starts == length)):
        return None
    padded = np.concatenate((np.full(16, _ZERO, dtype=np.uint8), buffer))
    words = np.ndarray(shape=(padded.size - 7,), dtype="<u8", buffer=padded, strides=(1,))
    low = words[ends + (16 - 8)]  # the last eight bytes of each token
    number, good = _eight_digits(low, min(length, 8))
    if length > 8:
        high, also = _eight_digits(words[ends], length - 8)
        number += high * _U64(10**8)
        good &= also
    if not bool(good.all()):
        return None
    if length > 1 and bool(np.any(buffer.take(starts) == _ZERO)):
        return None  # a leading zero: not JSON
    return number.astype(np.float64), good


def _eight_digits(words: NDArray[np.uint64], digits: int) -> tuple[NDArray[np.uint64], Bools]:
    """The number in the top ``digits`` bytes of each little-endian word (the bytes
    below read as '0'), and whether those bytes are all digits."""
    if digits < 8:
        keep = _U64((0xFFFFFFFFFFFFFFFF << (8 * (8 - digits))) & 0xFFFFFFFFFFFFFFFF)
        words = (words & keep) | (_ASCII_ZEROS & ~keep)
    good = ((words & _HIGH_NIBBLES) == _ASCII_ZEROS) & (
        ((words + _U64(0x0606060606060606)) & _HIGH_NIBBLES) == _ASCII_ZEROS
    )
    v = words & _U64(0x0F0F0F0F0F0F0F0F)
    v = (v * _U64(2561)) >> _U64(8)  # pairs of digits
    v = ((v & _U64(0x00FF00FF00FF00FF)) * _U64(6553601)) >> _U64(16)  # fours
    v = ((v & _U64(0x0000FFFF0000FFFF)) * _U64(42949672960001)) >> _U64(32)  # eight
    return v, good
