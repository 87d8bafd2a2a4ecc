"""promtool's expanding notation for input series, both ways.

``expand("0.01+0x3 0.08x2 _ stale")`` gives ``[0.01, 0.01, 0.01, 0.01, 0.08, 0.08,
0.08, MISSING, STALE]``; ``compact`` writes a list back in the shortest runs. The
notation is the one ``promtool test rules`` reads (Prometheus' series description):

- ``a``: one value. Numbers as PromQL writes them, including ``Inf``, ``-Inf``, ``NaN``.
- ``a+bxn`` / ``a-bxn``: ``a`` then ``n`` more values, each ``b`` more (less) than the
  one before, so **n+1 values**; ``axn`` is ``a+0xn``. Like Prometheus, the value is
  accumulated by repeated addition, so float rounding matches promtool's.
- ``_``: no sample at that step; ``_xn``: ``n`` of them (n, not n+1).
- ``stale``: a staleness marker (the series ended).

For the watchdog both ``_`` and ``stale`` are missing evidence: the rule is blind at
that step (a gap resets ``for:``). In promtool a ``_`` keeps the previous value visible
for the 5m lookback; write ``stale`` in promtool input for what is a gap here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import StrEnum

from watchdog.errors import WatchdogError


class SeriesNotationError(WatchdogError, ValueError):
    """A series string that is not in expanding notation (says which token and why)."""


class Gap(StrEnum):
    MISSING = "_"
    STALE = "stale"


Point = float | Gap

MISSING = Gap.MISSING
STALE = Gap.STALE

_NUMBER = r"(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Ii]nf|[Nn]a[Nn])"
_ITEM = re.compile(rf"^(?P<a>[+-]?{_NUMBER})(?:(?P<op>[+-])(?P<b>{_NUMBER}))?(?:x(?P<n>\d+))?$")
_GAPS = re.compile(r"^_(?:x(?P<n>\d+))?$")
_MAX_POINTS = 50_000_000  # a typo like 1x99999999999 should fail, not eat the memory


def _number(text: str) -> float:
    lowered = text.lower().lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if lowered == "inf":
        return sign * math.inf
    if lowered == "nan":
        return math.nan
    return float(text)


def expand(text: str) -> list[Point]:
    """The values ``text`` stands for, in order. Raises ``SeriesNotationError``."""
    out: list[Point] = []
    for position, token in enumerate(text.split(), start=1):
        gaps = _GAPS.match(token)
        if gaps is not None:
            count = int(gaps.group("n")) if gaps.group("n") is not None else 1
            _check_size(len(out) + count, token, position)
            out.extend([MISSING] * count)
            continue
        if token == STALE.value:
            out.append(STALE)
            continue
        match = _ITEM.match(token)
        if match is None:
            raise SeriesNotationError(
                f"item {position} {token!r}: expected a number, a+bxn, a-bxn, axn, _, _xn or stale"
            )
        value = _number(match.group("a"))
        if match.group("n") is None:
            if match.group("op") is not None:
                raise SeriesNotationError(
                    f"item {position} {token!r}: an increment needs a count (like {token}x10)"
                )
            out.append(value)
            continue
        count = int(match.group("n"))
        _check_size(len(out) + count + 1, token, position)
        increment = 0.0
        if match.group("op") is not None:
            increment = _number(match.group("b"))
            if match.group("op") == "-":
                increment = -increment
        for _ in range(count + 1):
            out.append(value)
            value += increment
    return out


def _check_size(size: int, token: str, position: int) -> None:
    if size > _MAX_POINTS:
        raise SeriesNotationError(
            f"item {position} {token!r}: more than {_MAX_POINTS:,} values in one series"
        )


def format_number(value: float) -> str:
    """A number as promtool reads it back exactly (shortest round-trip form)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def compact(points: Sequence[Point]) -> str:
    """``points`` in expanding notation, runs of equal values folded (``axn``, ``_xn``).

    ``expand(compact(p))`` gives ``p`` back (NaN compares by kind, not by value).
    ``stale`` has no repeat form in promtool, so each one is written out."""
    parts: list[str] = []
    index = 0
    total = len(points)
    while index < total:
        point = points[index]
        end = index + 1
        while end < total and _same(points[end], point) and point is not STALE:
            end += 1
        run = end - index
        if point is MISSING:
            parts.append("_" if run == 1 else f"_x{run}")
        elif point is STALE:
            parts.append("stale")
        else:
            assert isinstance(point, float)
            text = format_number(point)
            parts.append(text if run == 1 else f"{text}x{run - 1}")
        index = end
    return " ".join(parts)


def _same(a: Point, b: Point) -> bool:
    if isinstance(a, Gap) or isinstance(b, Gap):
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))
