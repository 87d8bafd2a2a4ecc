"""SLO burn-rate rules (the SRE workbook's multiwindow, multi-burn-rate alerts) on
per-minute counts, through the real engine on virtual time (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import T0, ruleset
from watchdog.core import burn
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import RuleError
from watchdog.model import Sample

COUNTED = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
rules:
  - name: slo-page
    signal: error_rate
    burn_rate:
      objective: 99.9%
      windows:
        - {long: 1h, short: 5m, factor: 14.4}
        - {long: 6h, short: 30m, factor: 6}
    severity: critical
"""


def feed(
    engine: Engine, start: float, minutes: int, errors: float, requests: float
) -> list[Decision]:
    decisions: list[Decision] = []
    for index in range(minutes):
        sample = Sample.ratio(start + index * 60.0, errors, requests)
        decisions += engine.observe("error_rate", sample).decisions
    return decisions


def test_buckets_merge_per_minute_and_forget_the_old() -> None:
    buckets = burn.add(burn.NO_MINUTES, T0, 1, 10, T0 - 3600)
    buckets = burn.add(buckets, T0 + 15, 2, 10, T0 - 3600)
    assert buckets.rows() == ((T0 - T0 % 60, 3.0, 20.0),)
    later = burn.add(buckets, T0 + 7200, 0, 5, T0 + 3600)
    assert later.rows() == ((T0 + 7200 - (T0 + 7200) % 60, 0.0, 5.0),)
    assert burn.totals(later, T0 + 7200, 300) == (0, 5)


def test_a_full_outage_pages_within_minutes_not_an_hour(tmp_path: Path) -> None:
    """1h of 0.05% errors, then everything fails: the 1h window passes 1.44% after a
    minute; the 5m window at once: the page comes on the first outage minute."""
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    assert feed(engine, T0, 60, 0.5, 1000) == []
    (decision,) = feed(engine, T0 + 3600, 3, 1000, 1000)
    assert decision.kind is DecisionKind.NOTIFY  # no rollback target named
    assert decision.decided_at == T0 + 3600
    assert decision.burn is not None
    assert decision.burn.factor == 14.4
    assert "burns the error budget too fast" in decision.why
    assert "of a 99.9% objective" in decision.summary()


def test_a_slow_burn_fires_on_the_six_hour_pair_only(tmp_path: Path) -> None:
    """0.8% errors (8x the budget): under 14.4 in every window, over 6 once six hours
    of history hold it (the 6h window must be covered before it may breach)."""
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    decisions = feed(engine, T0, 6 * 60 + 2, 8, 1000)
    (decision,) = decisions
    assert decision.burn is not None
    assert decision.burn.factor == 6
    assert decision.decided_at >= T0 + 6 * 3600 - 60


def test_a_fresh_start_does_not_page_on_one_error(tmp_path: Path) -> None:
    """Defect found by bench/decisions.py: right after a start, 1 error in 5 requests
    met the 1h window's bar over five minutes of data; now a pair breaches only once
    its long window is covered, and until then the rule is inconclusive."""
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    assert feed(engine, T0, 1, 1, 5) == []
    fresh = engine.states["slo-page"]
    assert fresh.state is State.INCONCLUSIVE
    feed(engine, T0 + 60, 6 * 60, 0, 5)
    covered = engine.states["slo-page"]
    assert covered.state is State.INACTIVE


def test_a_short_spike_does_not_page(tmp_path: Path) -> None:
    """Two minutes at 5% within an otherwise clean hour: the 5m window burns, the 1h
    window does not; nothing fires (the long window says whether it matters)."""
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    feed(engine, T0, 60, 0, 1000)
    assert feed(engine, T0 + 3600, 2, 10, 1000) == []  # 20 of 62,000: 0.03% over 1h
    assert engine.states["slo-page"].state is State.INCONCLUSIVE  # no 6h of history yet


def test_errors_stopping_resolves_within_the_short_window(tmp_path: Path) -> None:
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    feed(engine, T0, 60, 0, 1000)
    feed(engine, T0 + 3600, 10, 1000, 1000)
    resolved = feed(engine, T0 + 4200, 40, 0, 1000)
    assert [d.kind for d in resolved] == [DecisionKind.RESOLVED]
    assert resolved[0].decided_at - (T0 + 4200) <= 30 * 60


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ("[{long: 5m, short: 1h, factor: 14.4}]", "shorter than 'long'"),
        ("[]", "at least 1"),
    ],
)
def test_bad_burn_rules_are_refused(tmp_path: Path, windows: str, message: str) -> None:
    base = COUNTED.split("rules:")[0]
    rule = (
        "rules:\n  - {name: r, signal: error_rate, severity: low,"
        f" burn_rate: {{objective: 99.9%, windows: {windows}}}}}\n"
    )
    with pytest.raises(RuleError, match=message):
        ruleset(tmp_path, rule, base=base)
