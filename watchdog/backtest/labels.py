"""Labelled history for ``backtest --sweep --labels FILE``: the incidents that really
happened, and whether a rule's firing episodes caught them.

The file (``labels.json``)::

    {"incidents": [
      {"id": "bad-deploy-v42", "start": "2026-09-21T14:30:00Z", "end": "2026-09-21T15:10:00Z"},
      {"id": "db-failover", "start": 1790100000, "end": 1790101800, "rules": ["error-rate"]}
    ]}

Or ``--labels-from-store LOCATION`` (a state store, as ``WATCHDOG_STATE``): each
incident the watchdog recorded is a label for its own rule, from its opening to its
closing (an open one: to the end of the replay), so a sweep shows whether other
settings would still have caught what these caught, and how many more episodes.

``start``/``end`` are RFC 3339 or Unix seconds, ``end`` after ``start``; ``id`` is
unique; ``rules`` (optional) names the rules meant to catch it (others are not
judged on it). An episode *catches* an incident when it fires during the incident's
window (or is still firing when the window opens); its detection delay is the time
from the window's start to the first firing. An episode that catches none is false.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.backtest.run import run_sync
from watchdog.backtest.times import parse_time
from watchdog.errors import BacktestError, ConfigError, StoreError
from watchdog.store import is_postgres, open_store
from watchdog.store.base import IncidentRecord


@dataclass(frozen=True)
class Label:
    """One known incident: its window and the rules meant to catch it (empty: any)."""

    id: str
    start: float
    end: float
    rules: tuple[str, ...] = ()

    def judges(self, rule: str) -> bool:
        return not self.rules or rule in self.rules


Episode = tuple[float, float]  # (first firing, end of firing)


@dataclass(frozen=True)
class Score:
    """A rule's firing episodes held against the labels."""

    caught: dict[str, float]  # incident id -> detection delay (s)
    missed: tuple[str, ...]
    false_episodes: int


def load_labels(path: Path, rules: Sequence[str] = ()) -> list[Label]:
    """``labels.json`` → labels; ``BacktestError`` names the file and what is wrong."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BacktestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BacktestError(f"{path}: not JSON: {exc}") from None
    return parse_labels(body, str(path), rules)


def parse_labels(body: Any, where: str, rules: Sequence[str] = ()) -> list[Label]:
    if not isinstance(body, dict) or not isinstance(body.get("incidents"), list):
        raise BacktestError(f'{where}: expected an object {{"incidents": [...]}}')
    extra = sorted(set(body) - {"incidents"})
    if extra:
        raise BacktestError(f"{where}: unknown key {extra[0]!r} (only 'incidents')")
    labels: list[Label] = []
    for index, item in enumerate(body["incidents"]):
        label = _label(item, f"{where}: incidents[{index}]", rules)
        if any(other.id == label.id for other in labels):
            raise BacktestError(f"{where}: incidents[{index}].id {label.id!r} is used twice")
        labels.append(label)
    return labels


def _label(item: Any, where: str, rules: Sequence[str]) -> Label:
    if not isinstance(item, dict):
        raise BacktestError(f"{where}: expected an object with id, start and end")
    unknown = sorted(set(item) - {"id", "start", "end", "rules"})
    if unknown:
        raise BacktestError(f"{where}: unknown key {unknown[0]!r} (id, start, end, rules)")
    ident = item.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise BacktestError(f"{where}.id: expected a non-empty string")
    start = _time(item, "start", where)
    end = _time(item, "end", where)
    if not end > start:
        raise BacktestError(f"{where}.end: must be after start")
    named = item.get("rules", [])
    if not isinstance(named, list) or not all(isinstance(r, str) for r in named):
        raise BacktestError(f"{where}.rules: expected a list of rule names")
    unknown_rules = [r for r in named if rules and r not in rules]
    if unknown_rules:
        raise BacktestError(f"{where}.rules: no rule named {unknown_rules[0]!r} in the rules")
    return Label(ident, start, end, tuple(named))


def _time(item: dict[str, Any], key: str, where: str) -> float:
    if key not in item:
        raise BacktestError(f"{where}: missing {key!r}")
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BacktestError(f"{where}.{key}: expected RFC 3339 or Unix seconds")
    try:
        seconds = parse_time(str(value))
    except BacktestError as exc:
        raise BacktestError(f"{where}.{key}: {exc}") from None
    if not math.isfinite(seconds):
        raise BacktestError(f"{where}.{key}: expected a finite time")
    return seconds


STORE_LIMIT = 100_000  # incidents read from a store


def labels_from_store(location: str, until: float) -> list[Label]:
    """Each recorded incident as a label for its rule; ``BacktestError`` when the
    store cannot be read."""
    if not is_postgres(location) and not Path(location).is_file():
        raise BacktestError(f"--labels-from-store {location}: no such file")
    try:
        records = run_sync(_recorded(location))
    except (StoreError, ConfigError) as exc:
        raise BacktestError(f"--labels-from-store {location}: {exc}") from None
    labels = []
    for record in sorted(records, key=lambda r: r.opened_at):
        end = record.closed_at if record.closed_at is not None else until
        end = max(end, record.opened_at + 1.0)
        labels.append(Label(record.id, record.opened_at, end, (record.rule,)))
    return labels


async def _recorded(location: str) -> list[IncidentRecord]:
    store = open_store(location)
    await store.open()
    try:
        return await store.recent_incidents(STORE_LIMIT)
    finally:
        await store.close()


def score(rule: str, episodes: Sequence[Episode], labels: Sequence[Label]) -> Score:
    """Which labelled incidents ``rule``'s episodes caught (and how late), which they
    missed, and how many episodes caught nothing."""
    judged = [label for label in labels if label.judges(rule)]
    caught: dict[str, float] = {}
    false_episodes = 0
    for fired, ended in episodes:
        hits = [label for label in judged if fired <= label.end and ended >= label.start]
        if not hits:
            false_episodes += 1
        for label in hits:
            delay = max(0.0, fired - label.start)
            caught[label.id] = min(delay, caught.get(label.id, math.inf))
    missed = tuple(label.id for label in judged if label.id not in caught)
    return Score(caught, missed, false_episodes)
