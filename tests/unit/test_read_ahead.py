"""Recordings read ahead on two threads are the recordings read one by one: the same
points, the same notes, and the same error for the first bad file in reading order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchdog.backtest import read_ahead
from watchdog.backtest.columns import read_points
from watchdog.backtest.recordings import load_recordings, matrix_body
from watchdog.errors import BacktestError
from watchdog.rules.load import RuleSet, load_rules

RULES = """\
version: 1
sources:
  prom: {type: prometheus, url: 'http://127.0.0.1:9'}
targets:
  worker: {type: cloudflare-worker, script: api}
signals:
  a: {source: prom, query: a, unit: ratio}
  b: {source: prom, query: b, unit: ratio, requests_query: r}
  c: {source: prom, query: c, unit: ratio}
rules:
  - {name: ra, signal: a, above: 5%, for: 1m, severity: high, rollback: [worker]}
  - {name: rb, signal: b, above: 5%, for: 1m, severity: high, rollback: [worker]}
  - {name: rc, signal: c, above: 5%, for: 1m, severity: high, rollback: [worker]}
"""


def _ruleset(tmp_path: Path) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return load_rules([path])


def _write(directory: Path, name: str, offset: float) -> None:
    points = [(1_790_000_000.0 + 15 * k, offset + 0.001 * (k % 7)) for k in range(500)]
    (directory / f"{name}.json").write_text(json.dumps(matrix_body(points)))


def _load(directory: Path, ruleset: RuleSet) -> tuple[dict[str, object], list[str]]:
    found, notes = load_recordings(directory, ruleset, read_points)
    return {
        name: (list(r.points), r.requests and list(r.requests)) for name, r in found.items()
    }, notes


def test_read_ahead_reads_what_one_by_one_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ruleset = _ruleset(tmp_path)
    directory = tmp_path / "series"
    directory.mkdir()
    for k, name in enumerate(("a", "b", "b.requests", "c", "stray")):
        _write(directory, name, 0.01 * k)
    one_by_one = _load(directory, ruleset)
    monkeypatch.setattr(read_ahead, "_READ_AHEAD_BYTES", 0)
    ahead = _load(directory, ruleset)
    assert ahead == one_by_one
    assert set(ahead[0]) == {"a", "b", "c"}
    assert any("stray.json" in note for note in ahead[1])


def test_read_ahead_raises_the_first_bad_file_in_reading_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ruleset = _ruleset(tmp_path)
    directory = tmp_path / "series"
    directory.mkdir()
    _write(directory, "a", 0.0)
    (directory / "b.requests.json").write_text("{nope")  # read before b.json and c.json
    (directory / "b.json").write_text('{"status":"error","error":"boom"}')
    (directory / "c.json").write_text("[]")
    with pytest.raises(BacktestError) as one_by_one:
        load_recordings(directory, ruleset, read_points)
    monkeypatch.setattr(read_ahead, "_READ_AHEAD_BYTES", 0)
    with pytest.raises(BacktestError) as ahead:
        load_recordings(directory, ruleset, read_points)
    assert str(ahead.value) == str(one_by_one.value)
    assert "b.requests.json" in str(ahead.value)
