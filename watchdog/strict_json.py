"""The one JSON encoder for everything the watchdog emits (HTTP API, ``-o json``,
backtest lines, notification payloads, stored rows).

Python's ``json`` writes ``NaN``/``Infinity`` by default, which is not JSON:
JavaScript, Go and Grafana's JSON datasources refuse it. A blind rule's value is NaN
inside the process; on the wire it is ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, replaced by None (tuples
    become lists, as JSON has only arrays)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def dumps(
    value: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    compact: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """JSON text with non-finite numbers as null; anything else non-finite that slips
    through (a ``default`` returning NaN) raises instead of writing ``NaN``."""
    separators = (",", ":") if compact else None

    def strict_default(obj: Any) -> Any:
        if default is None:
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
        return finite(default(obj))

    return json.dumps(
        finite(value),
        indent=indent,
        sort_keys=sort_keys,
        separators=separators,
        default=strict_default,
        allow_nan=False,
    )


def dumpb(value: Any, **options: Any) -> bytes:
    """``dumps`` as UTF-8 bytes (request and response bodies)."""
    return dumps(value, **options).encode()


JSON_HEADERS = {"content-type": "application/json"}
