"""Small builders shared by tests: rule sets from YAML text, sample series."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from watchdog.model import Sample
from watchdog.rules.load import RuleSet, load_rules

T0 = 1_790_000_000.0

BASE_RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "x", requests_query: "y", unit: ratio}
  p95: {source: prom, query: "z", unit: seconds}
targets:
  worker: {type: cloudflare-worker, script: api}
"""


def ruleset(tmp_path: Path, rules_yaml: str, base: str = BASE_RULES) -> RuleSet:
    """Write ``base`` + ``rules_yaml`` to a file and load it."""
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(base) + textwrap.dedent(rules_yaml))
    return load_rules([path])


# One prometheus signal and one critical rule: enough for the control API tests.
MINIMAL_RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", unit: ratio}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical}
"""

Point = float | None | str


def series(
    values: Iterable[Point],
    interval: float = 15.0,
    start: float = T0,
    requests: float | None = 1000.0,
) -> list[Sample]:
    """Samples at a fixed interval: a float is a value (NaN allowed), None is no data,
    the string "err" a source error."""
    out = []
    for index, value in enumerate(values):
        at = start + index * interval
        if value is None:
            out.append(Sample.no_data(at, "no series"))
        elif value == "err":
            out.append(Sample.error(at, "connection refused"))
        else:
            assert isinstance(value, float | int)
            out.append(Sample.of(at, float(value), requests))
    return out


def repeat(value: Point, count: int) -> list[Point]:
    return [value] * count


def nan() -> float:
    return math.nan


def flatten(*parts: Sequence[Point]) -> list[Point]:
    return [point for part in parts for point in part]
