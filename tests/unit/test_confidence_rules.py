"""Confidence rules: a verdict on the counts of a window, inconclusive while the
evidence cannot tell (issue 13). Driven through the real engine on virtual time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import T0, ruleset
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import RuleError
from watchdog.incidents.postmortem import render
from watchdog.incidents.state import IncidentState, decision_from
from watchdog.model import Sample
from watchdog.rules.load import RuleSet
from watchdog.store.base import IncidentRecord

COUNTED = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
  p95: {source: prom, query: "z", unit: seconds}
targets:
  worker: {type: cloudflare-worker, script: api}
"""

RULE = """
rules:
  - {name: errors, signal: error_rate, above: 5%, confidence: 99%, window: 10m,
     severity: critical, rollback: [worker]}
"""


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return ruleset(tmp_path, RULE, base=COUNTED)


def feed(
    engine: Engine, counts: list[tuple[int, int]], start: float = T0, every: float = 60.0
) -> list[tuple[float, DecisionKind]]:
    """One sample a minute of (errors, requests); zero requests is no data, as sources say."""
    kinds: list[tuple[float, DecisionKind]] = []
    for index, (errors, requests) in enumerate(counts):
        at = start + index * every
        sample = (
            Sample.no_data(at, "no requests")
            if requests == 0
            else Sample.ratio(at, errors, requests)
        )
        observation = engine.observe("error_rate", sample)
        kinds += [(d.decided_at - start, d.kind) for d in observation.decisions]
    return kinds


def test_one_error_in_five_requests_stays_inconclusive(rules: RuleSet) -> None:
    """At one request a minute a lone error is 20% of five requests, far above 5%, and
    still no evidence of a bad ratio: the rule is inconclusive, never pending or firing."""
    engine = Engine(rules)
    decisions = feed(engine, [(0, 1)] * 4 + [(1, 1)] + [(0, 1)] * 4)
    assert decisions == []
    state = engine.states["errors"]
    assert state.state is State.INCONCLUSIVE
    assert (state.errors, state.requests) == (1.0, 9.0)


def test_full_outage_at_one_request_a_minute_rolls_back_within_minutes(rules: RuleSet) -> None:
    engine = Engine(rules)
    decisions = feed(engine, [(0, 1)] * 10 + [(1, 1)] * 5)
    assert decisions
    at, kind = decisions[0]
    assert kind is DecisionKind.ROLLBACK
    outage_start = 10 * 60.0
    assert at - outage_start <= 180.0
    assert engine.states["errors"].state is State.FIRING


def test_healthy_high_traffic_is_conclusively_inactive(rules: RuleSet) -> None:
    engine = Engine(rules)
    assert feed(engine, [(5, 1000)] * 20) == []
    assert engine.states["errors"].state is State.INACTIVE


def test_the_window_forgets_old_counts(rules: RuleSet) -> None:
    """Errors older than the window stop counting: after a burst, 10 clean minutes of
    1000 requests each make the rule conclusively fine again."""
    engine = Engine(rules)
    decisions = feed(engine, [(500, 1000)] * 3 + [(0, 1000)] * 11)
    assert [k for _, k in decisions] == [DecisionKind.ROLLBACK, DecisionKind.RESOLVED]
    assert engine.states["errors"].state is State.INACTIVE
    assert engine.states["errors"].requests == 10_000.0


def test_no_request_in_the_window_is_blind_not_inconclusive(rules: RuleSet) -> None:
    engine = Engine(rules)
    feed(engine, [(0, 0)] * 3)
    state = engine.states["errors"]
    assert state.state is State.BLIND
    assert "no requests in the last 10m" in state.blind_reason


def test_source_error_is_blind(rules: RuleSet) -> None:
    engine = Engine(rules)
    feed(engine, [(0, 100)] * 3)
    engine.observe("error_rate", Sample.error(T0 + 200, "connection refused"))
    assert engine.states["errors"].state is State.BLIND


def test_below_rule_breaches_on_the_upper_bound(tmp_path: Path) -> None:
    """``below`` mirrors ``above``: a success ratio surely under 99% breaches."""
    rules = ruleset(
        tmp_path,
        """
        rules:
          - {name: low, signal: error_rate, below: 50%, confidence: 95%, window: 5m,
             severity: low}
        """,
        base=COUNTED,
    )
    engine = Engine(rules)
    feed(engine, [(1, 100)] * 3)
    assert engine.states["low"].state is State.FIRING
    engine2 = Engine(rules)
    feed(engine2, [(1, 2)] * 2)
    assert engine2.states["low"].state is State.INCONCLUSIVE


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{name: r, signal: p95, above: 1s, confidence: 99%, window: 5m, severity: low}",
            "does not count errors and requests",
        ),
        (
            "{name: r, signal: error_rate, above: 5%, confidence: 99%, severity: low}",
            "needs a 'window'",
        ),
        (
            "{name: r, signal: error_rate, above: 5%, window: 5m, severity: low}",
            "'window' applies only with 'confidence'",
        ),
        (
            "{name: r, signal: error_rate, above: 5%, confidence: 100%, window: 5m, severity: low}",
            "below 100%",
        ),
        (
            "{name: r, signal: error_rate, above: 5%, confidence: 99%, window: 5m, severity: low,"
            " min_requests: 10}",
            "drop 'min_requests'",
        ),
    ],
)
def test_bad_confidence_rules_are_refused(tmp_path: Path, rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        ruleset(tmp_path, f"rules:\n  - {rule}\n", base=COUNTED)


def test_the_decision_carries_counts_interval_and_threshold(rules: RuleSet) -> None:
    """The rollback decision says what it stood on, in its JSON, its one-line summary
    (what Slack, the webhook and PagerDuty show) and after a restore from the store."""
    engine = Engine(rules)
    decisions: list[Decision] = []
    for index, (errors, requests) in enumerate([(0, 1)] * 5 + [(1, 1)] * 5):
        observation = engine.observe("error_rate", Sample.ratio(T0 + index * 60, errors, requests))
        decisions += observation.decisions
    decision = decisions[0]
    assert decision.evidence is not None
    assert (decision.evidence.errors, decision.evidence.threshold) == (4.0, 0.05)
    assert decision.evidence.lower > 0.05
    assert "surely (99% sure) > 5%" in decision.why
    assert "4 errors / 9 requests, 99% interval" in decision.summary()
    data = decision.to_dict()
    assert data["evidence"]["requests"] == 9.0
    assert data["evidence_text"] == decision.evidence.text()
    assert decision_from(json.loads(json.dumps(data))) == decision


def test_the_post_mortem_states_the_evidence(rules: RuleSet) -> None:
    engine = Engine(rules)
    decisions: list[Decision] = []
    for index, (errors, requests) in enumerate([(0, 1)] * 5 + [(1, 1)] * 5):
        observation = engine.observe("error_rate", Sample.ratio(T0 + index * 60, errors, requests))
        decisions += observation.decisions
    decision = decisions[0]
    record = IncidentRecord(
        "inc-1",
        decision.decided_at,
        "errors",
        "critical",
        "closed",
        ["worker"],
        closed_at=decision.decided_at + 600,
        state_json=IncidentState(decision).to_json(),
    )
    text = render(record, [], [])
    assert f"- **Evidence**: {decision.to_dict()['evidence_text']}" in text
