"""The console's pieces that need no server: the sparkline drawn from a window (worst
value per column, breaches marked, blind time shown and breaking the line), the time a
rule entered its state, the timeline's words, and the package data the pages need."""

from __future__ import annotations

import re
from importlib import resources

from tests.factories import series
from watchdog.api import sparkline
from watchdog.api.console_data import step_of
from watchdog.api.console_view import StateTimes
from watchdog.core.decider import Transition
from watchdog.core.engine import Observation
from watchdog.core.evaluator import RuleState, State
from watchdog.model import Sample
from watchdog.store.base import EventRecord

T0 = 1_790_000_000.0


def test_a_one_sample_spike_is_kept_as_the_columns_worst_value() -> None:
    samples = series([0.01] * 100 + [0.5] + [0.01] * 99, interval=15.0)  # 50 minutes
    end = samples[-1].at
    cols = sparkline.columns(samples, end, 3600.0, above=True, count=10)
    assert max(c.value or 0 for c in cols) == 0.5
    below = sparkline.columns(samples, end, 3600.0, above=False, count=10)
    assert max(c.value or 0 for c in below) == 0.01  # a below rule's worst is its lowest


def test_the_span_starts_at_the_first_sample_when_the_window_is_young() -> None:
    samples = series([0.01, 0.02, 0.03, 0.04], interval=1.0)
    cols = sparkline.columns(samples, samples[-1].at, 3600.0, above=True, count=4)
    assert [c.value for c in cols] == [0.01, 0.02, 0.03, 0.04]


def test_breaches_are_marked_and_blind_time_breaks_the_line() -> None:
    samples = series([0.01, 0.02, "err", None, 0.09, 0.08], interval=10.0)
    cols = sparkline.columns(samples, samples[-1].at, 3600.0, above=True, count=6)
    assert [c.blind for c in cols] == [False, False, True, True, False, False]
    drawn = sparkline.svg(cols, 0.05, above=True, label="error_rate")
    assert drawn.count("<polyline") == 2  # before and after the blind stretch
    breach = re.search(r'class="breach" d="([^"]+)"', drawn)
    assert breach is not None
    assert breach.group(1).count("M") == 2  # the two samples above 5%
    blind = re.search(r'class="blind" d="([^"]+)"', drawn)
    assert blind is not None
    assert blind.group(1).count("M") == 2


def test_an_empty_window_draws_only_the_threshold() -> None:
    drawn = sparkline.svg(sparkline.columns([], T0, 3600.0, True), 0.05, True, "x")
    assert "<polyline" not in drawn
    assert 'class="thr"' in drawn


def test_time_in_state_comes_from_the_transitions_seen() -> None:
    times = StateTimes()
    firing = RuleState(state=State.FIRING, fired_at=T0 + 30, active_since=T0)
    assert times.of("r", firing, started_at=T0 - 100) == T0 + 30  # before any transition
    assert times.of("r", RuleState(), started_at=T0 - 100) == T0 - 100
    moved = Transition("r", T0 + 60, State.FIRING, State.INACTIVE)
    times.observe(Observation("s", Sample.of(T0 + 60, 0.0), (moved,)))
    assert times.of("r", RuleState(), started_at=T0 - 100) == T0 + 60


def test_timeline_steps_say_what_happened() -> None:
    finished = step_of(
        EventRecord("i", T0, "rollback_finished", {"rolled_back": [["worker", "v3", "v2"]]})
    )
    assert finished.detail == "worker: v3 → v2"
    assert finished.ok is True
    verified = step_of(EventRecord("i", T0, "verification", {"results": {"e": "failed: 7%"}}))
    assert verified.ok is False
    notified = step_of(
        EventRecord("i", T0, "action", {"action": "notify", "target": "slack", "ok": True})
    )
    assert notified.kind == "notify"  # the page's timeline leaves these out


def test_the_pages_and_their_files_travel_in_the_package() -> None:
    root = resources.files("watchdog.api")
    for name in ("index.html", "incident.html", "login.html", "base.html", "timeline.html"):
        assert root.joinpath("templates", name).is_file(), name
    for name in ("console.css", "console.js"):
        assert root.joinpath("static", name).is_file(), name
