"""Deploy-regression rules with an absolute ``min_effect`` (``+1.5%``): the increase
of the error ratio the test aims at, beside the ratio ``2x`` (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import T0, ruleset
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.core.evidence import Verdict
from watchdog.core.regression import absolute_effects, judge
from watchdog.errors import RuleError
from watchdog.model import Sample

BASE = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
targets:
  worker: {type: cloudflare-worker, script: api}
"""


def rules(tmp_path: Path, effect: str) -> Engine:
    return Engine(
        ruleset(
            tmp_path,
            f"""
            rules:
              - name: regressed
                signal: error_rate
                regression: {{min_effect: "{effect}", confidence: 99%, baseline: 1h}}
                severity: critical
                rollback: [worker]
            """,
            base=BASE,
        )
    )


def run(engine: Engine, before: tuple[int, int], after: tuple[int, int], minutes: int) -> State:
    """An hour at ``before`` (errors, requests a minute), a deploy, then ``after``."""
    for m in range(60):
        engine.observe("error_rate", Sample.ratio(T0 + m * 60.0, *before))
    engine.deployed("worker", T0 + 3600.0)
    for m in range(minutes):
        engine.observe("error_rate", Sample.ratio(T0 + 3660.0 + m * 60.0, *after))
    return engine.states["regressed"].state


def test_the_syntax_is_parsed_into_an_absolute_effect(tmp_path: Path) -> None:
    rule = rules(tmp_path, "+1.5%").ruleset.rule("regressed")
    assert rule.regression is not None
    effect = rule.regression.min_effect
    assert effect.value == pytest.approx(0.015)
    assert (effect.absolute, effect.text) == (True, "+1.5%")
    assert rule.threshold.text == "+1.5%"
    ratio = rules(tmp_path, "2x").ruleset.rule("regressed").regression
    assert ratio is not None
    assert (ratio.min_effect.value, ratio.min_effect.absolute) == (2.0, False)


def test_an_absolute_effect_ignores_a_doubling_of_a_tiny_ratio(tmp_path: Path) -> None:
    """0.1 % to 0.25 % is 2.5x but only +0.15 %: ``2x`` rolls it back, ``+1.5%`` does
    not; 0.1 % to 2 % is caught by both."""
    small = ((6, 6000), (15, 6000))
    assert run(rules(tmp_path, "2x"), *small, minutes=30) is State.FIRING
    assert run(rules(tmp_path, "+1.5%"), *small, minutes=50) is State.INCONCLUSIVE
    assert run(rules(tmp_path, "+1.5%"), (6, 6000), (120, 6000), minutes=3) is State.FIRING


def test_the_alternatives_climb_from_the_bound_plus_the_increase() -> None:
    grid = absolute_effects(0.015, 0.005)
    assert grid[0] == pytest.approx((0.005 + 0.015) / 0.005)
    assert all(0.005 * k < 1.0 for k in grid)
    assert len(absolute_effects(0.5, 0.6)) == 1  # only "everything fails" is worse
    found = judge(60, 60_000, 40, 2000, 0.015, 0.99, absolute=True)
    assert found.verdict is Verdict.BREACH
    assert "test aims at +1.5%" in found.text()


@pytest.mark.parametrize(
    ("effect", "message"),
    [
        ("+1.5", "an absolute effect is an increase in percent, like \\+1.5%"),
        ("+0%", "above \\+0% and below \\+100%"),
        ("+100%", "above \\+0% and below \\+100%"),
        ("1.5%", "like 2x \\(a ratio\\) or \\+1.5% \\(an absolute increase\\)"),
        ("+abc%", "expected an absolute effect like \\+1.5%"),
    ],
)
def test_bad_effects_are_refused_with_their_line(tmp_path: Path, effect: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as refused:
        rules(tmp_path, effect)
    assert "rules.yaml:" in str(refused.value)  # file:line


SCRAPED = """
version: 1
sources:
  app: {type: scrape, url: "http://127.0.0.1:9/metrics"}
signals:
  slow: {source: app, kind: slow_ratio, metric: http_request_duration_seconds%s}
rules:
  - {name: r, signal: slow, regression: {min_effect: 2x}, severity: low}
"""


def test_a_slow_ratio_signal_feeds_a_regression_rule(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, "", base=SCRAPED % ", slower_than: 500ms")
    assert rules.signals["slow"].spec.slower_than == 0.5
    assert rules.signals["slow"].unit == "ratio"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", "slower_than: missing required key \\(the bucket bound a slow request exceeds"),
        (", slower_than: 0", "must be longer than 0s"),
    ],
)
def test_a_slow_ratio_needs_its_bound(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as refused:
        ruleset(tmp_path, "", base=SCRAPED % extra)
    assert "rules.yaml:" in str(refused.value)


def test_slower_than_applies_to_slow_ratio_only(tmp_path: Path) -> None:
    base = SCRAPED.replace("kind: slow_ratio", "kind: error_ratio") % ", slower_than: 1s"
    with pytest.raises(RuleError, match="slower_than: applies to kind slow_ratio only"):
        ruleset(tmp_path, "", base=base)
