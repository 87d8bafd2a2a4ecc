"""Backtest: how would these rules have behaved over recorded history?

Recorded samples go through the live ``Engine`` and ``IncidentManager`` on a virtual
clock, so the answer comes from the same code that acts in production; nothing here
decides anything. Only the edges are stand-ins:

- **targets** read their state from ``deployments.json`` at the virtual now and never
  call an API. A rollback answers as if it went through, so the manager's guards
  (cooldown, hourly cap, one rollback per incident) and verification run as live; the
  timeline says "would roll back".
- **purges and notifiers** send nothing; each notification the manager would send is
  a "would notify" line naming the notifiers and the kind of message.
- **the store** is SQLite in memory; **silences** are none unless ``--silence`` gives
  some (they then cover the whole replay).

The package, one job a module (each docstring has the details):

- ``recordings``: ``DIR/SIGNAL.json`` (``--series DIR``) read and written, fetching
  from Prometheus' ``query_range``, and the samples a live daemon would have seen
  (an empty answer, a missing requests recording: read exactly as live, and noted)
- ``times``: time parsing and ``deployments.json``
- ``standins``: the recorded targets, purges, notifiers and the in-memory store
- ``replay``: ``Replay``, the engine and incident manager driven on a virtual clock
- ``timeline``: the result: timeline events and summaries
- ``run``: ``backtest``/``run_backtest``, from recordings to a result
- ``render``: the result as text or JSON lines

Everything callers use is importable from ``watchdog.backtest`` itself.
"""

from __future__ import annotations

from watchdog.backtest.recordings import (
    Points,
    Recording,
    evidence_notes,
    fetch_recordings,
    infer_step,
    load_recordings,
    matrix_body,
    read_matrix_file,
    record_report,
    samples_of,
    value_sample,
    watched_signals,
    write_recordings,
)
from watchdog.backtest.render import render_json, render_text
from watchdog.backtest.replay import Replay, suppression_reason
from watchdog.backtest.run import backtest, paused_gc, run_backtest, run_sync
from watchdog.backtest.standins import (
    RecordedNotifier,
    RecordedPurge,
    RecordedTarget,
    ReplayStore,
)
from watchdog.backtest.timeline import (
    STATES,
    BacktestResult,
    Event,
    RuleSummary,
    Span,
    Summary,
)
from watchdog.backtest.times import (
    Deployments,
    load_deployments,
    parse_deployments,
    parse_time,
    rfc3339,
)

__all__ = [
    "STATES",
    "BacktestResult",
    "Deployments",
    "Event",
    "Points",
    "RecordedNotifier",
    "RecordedPurge",
    "RecordedTarget",
    "Recording",
    "Replay",
    "ReplayStore",
    "RuleSummary",
    "Span",
    "Summary",
    "backtest",
    "evidence_notes",
    "fetch_recordings",
    "infer_step",
    "load_deployments",
    "load_recordings",
    "matrix_body",
    "parse_deployments",
    "parse_time",
    "paused_gc",
    "read_matrix_file",
    "record_report",
    "render_json",
    "render_text",
    "rfc3339",
    "run_backtest",
    "run_sync",
    "samples_of",
    "suppression_reason",
    "value_sample",
    "watched_signals",
    "write_recordings",
]
