"""Human units in rules files: durations (``30s``, ``5m``, ``1h30m``), percentages
(``5%``) and latencies (``500ms``, ``5s``). Each parser raises ``ValueError`` with a
message that says what was expected; the rules loader adds the location.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Literal

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

Unit = Literal["ratio", "seconds", "number"]
# The longest duration a rules file may give: anything longer is a typo (400d for 40d)
# and would hold a rule or a guard for longer than any deploy lives.
MAX_RULES_DURATION = 30 * 86400.0
_THRESHOLD_HELP = "expected a number, a percentage (5%) or a latency (500ms), got {value!r}"


def parse_duration(value: object, *, need_unit: bool = False) -> float:
    """``"5m"`` → 300.0; ``"1h30m"`` → 5400.0; a bare number is seconds, unless
    ``need_unit`` (a rules file), where only ``0`` may go without a unit."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"duration must be a finite number >= 0, got {value!r}")
        if need_unit and value != 0:
            # `for: 5` reads as five minutes to many people and is five seconds here.
            raise ValueError(
                f"a duration needs a unit ({value:g}s, {value:g}m or {value:g}h?), got {value!r}"
            )
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    return total


def parse_threshold(value: object) -> tuple[float, Unit]:
    """A threshold with its unit: ``"5%"`` → (0.05, ratio), ``"500ms"`` → (0.5, seconds),
    ``1`` → (1.0, number)."""
    if isinstance(value, bool):
        raise ValueError(_THRESHOLD_HELP.format(value=value))
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"threshold must be finite, got {value!r}")
        return float(value), "number"
    if not isinstance(value, str):
        raise ValueError(_THRESHOLD_HELP.format(value=value))
    text = value.strip()
    if text.endswith("%"):
        try:
            number = float(text[:-1])
        except ValueError:
            raise ValueError(f"expected a percentage like 5% or 0.5%, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"percentage must be finite, got {value!r}")
        return number / 100.0, "ratio"
    try:
        return float(text), "number"
    except ValueError:
        pass
    try:
        return parse_duration(text), "seconds"
    except ValueError:
        raise ValueError(
            f"expected a number, a percentage (5%) or a latency (500ms), got {value!r}"
        ) from None


def threshold_problem(
    comparison: str, value: float, unit: Unit, text: str, signal_unit: Unit
) -> str | None:
    """Why a threshold can never mean what was written for a signal in ``signal_unit``
    (None when it can): a ratio lies in (0, 1), a latency above 0."""
    if signal_unit == "ratio":
        if unit == "number" and value >= 1:
            return (
                f"{comparison}: {text} on a ratio signal is {value * 100:g} %; "
                f"did you mean {text}%?"
            )
        if not 0.0 < value < 1.0:
            return f"a ratio threshold must lie between 0% and 100% (both excluded), got {text}"
    if signal_unit == "seconds" and not value > 0.0:
        return f"a seconds threshold must be above 0s, got {text}"
    return None


def parse_share(value: object) -> float:
    """A share of samples: ``"80%"`` or ``0.8`` → 0.8, within (0, 1]."""
    number, unit = parse_threshold(value)
    if unit == "seconds" or not 0.0 < number <= 1.0:
        raise ValueError(f"expected a share between 0% and 100% (like 80%), got {value!r}")
    return number


def format_duration(seconds: float) -> str:
    """300 → ``5m``; 90 → ``1m30s``; 0.5 → ``500ms``."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    parts = []
    for suffix, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{suffix}")
            whole %= size
    return "".join(parts) or "0s"


def format_value(value: float, unit: Unit) -> str:
    """How a value reads to a person: 0.072 ratio → ``7.2%``, 5.3 seconds → ``5.3s``."""
    if math.isnan(value):
        return "NaN"
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "seconds":
        return f"{value * 1000:.0f}ms" if abs(value) < 1 else f"{value:.3g}s"
    return f"{value:.4g}"


def iso(ts: float) -> str:
    """RFC 3339 UTC with a Z, to the second: how times appear in logs and reports."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
