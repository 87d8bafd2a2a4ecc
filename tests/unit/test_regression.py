"""Deploy-regression rules: the anytime-valid sequential test on two binomials
(core.regression) and the engine's deploy hook, on virtual time (issue 13)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import T0, ruleset
from watchdog.backtest.replay import Replay
from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.core.evidence import Verdict
from watchdog.core.regression import baseline_upper, effects, judge
from watchdog.errors import RuleError
from watchdog.model import Deploy, Sample

COUNTED = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, errors_query: "e", requests_query: "r"}
targets:
  worker: {type: cloudflare-worker, script: api}
  pages: {type: cloudflare-pages, project: web}
rules:
  - name: regressed
    signal: error_rate
    regression: {min_effect: 2x, confidence: 99%, baseline: 30m, watch: 1h}
    severity: critical
    rollback: [worker]
"""


def test_a_tenfold_regression_is_found_on_a_few_hundred_requests() -> None:
    found = judge(180, 36_000, 15, 300, min_effect=2.0, confidence=0.99)
    assert found.verdict is Verdict.BREACH
    assert found.effect == pytest.approx(10.0)
    assert found.needed == pytest.approx(200.0)
    same = judge(180, 36_000, 2, 300, min_effect=2.0, confidence=0.99)
    assert same.verdict is Verdict.INCONCLUSIVE
    assert "e-value" in found.text()


def test_grid_starts_at_min_effect_and_stays_below_certain_failure() -> None:
    grid = effects(2.0, 0.01)
    assert grid[0] == 2.0
    assert all(0.01 * k < 1.0 for k in grid)
    assert len(effects(3.0, 0.6)) == 1  # only "everything fails" is worse than 60%


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(1, 200),
    base_n=st.integers(200, 50_000),
    n=st.integers(1, 5_000),
    data=st.data(),
)
def test_more_errors_since_the_deploy_never_weaken_the_evidence(
    base: int, base_n: int, n: int, data: st.DataObject
) -> None:
    x = data.draw(st.integers(0, n - 1))
    fewer = judge(base, base_n, x, n, 2.0, 0.99)
    more = judge(base, base_n, x + 1, n, 2.0, 0.99)
    assert more.e_value >= fewer.e_value


def test_false_alarms_stay_below_alpha_under_continuous_looks() -> None:
    """A deploy that changes nothing, looked at after each of 120 batches: the share of
    deploys that ever alarm stays at most alpha (5% here), however often one looks.
    Seeded simulation; the bound is loose on purpose (Ville's inequality)."""
    rng = random.Random(1913)
    p, alarms, runs = 0.02, 0, 400
    for _ in range(runs):
        base_n = 3000
        base_x = sum(rng.random() < p for _ in range(base_n))
        upper = baseline_upper(base_x, base_n, 0.95)
        x = n = 0
        for _ in range(120):
            n += 20
            x += sum(rng.random() < p for _ in range(20))
            if judge(base_x, base_n, x, n, 1.5, 0.95, upper).verdict is Verdict.BREACH:
                alarms += 1
                break
    assert alarms / runs <= 0.05


def feed(
    engine: Engine, start: float, minutes: int, errors: float, requests: float
) -> list[Decision]:
    decisions: list[Decision] = []
    for index in range(minutes):
        sample = Sample.ratio(start + index * 60.0, errors, requests)
        decisions += engine.observe("error_rate", sample).decisions
    return decisions


def test_a_bad_deploy_is_rolled_back_with_its_evidence(tmp_path: Path) -> None:
    """0.5% before, 5% after, 600 requests a minute: caught on the first minute."""
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    assert feed(engine, T0, 30, 3, 600) == []
    assert engine.states["regressed"].state is State.INACTIVE  # nothing to compare yet
    engine.deployed("worker", T0 + 30 * 60 - 1)
    decisions = feed(engine, T0 + 30 * 60, 3, 30, 600)
    (decision,) = decisions
    assert decision.kind is DecisionKind.ROLLBACK
    assert decision.decided_at == T0 + 30 * 60
    assert decision.regression is not None
    assert decision.regression.base_requests == 30 * 600
    assert decision.regression.effect == pytest.approx(10.0)
    assert "got worse after the deploy" in decision.why


def test_a_good_deploy_stays_inconclusive_then_idle(tmp_path: Path) -> None:
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    feed(engine, T0, 30, 3, 600)
    engine.deployed("worker", T0 + 30 * 60 - 1)
    assert feed(engine, T0 + 30 * 60, 59, 3, 600) == []
    assert engine.states["regressed"].state is State.INCONCLUSIVE
    feed(engine, T0 + 89 * 60, 2, 3, 600)
    after = engine.states["regressed"]
    assert after.state is State.INACTIVE  # the watch is over


def test_a_deploy_of_another_target_or_without_a_baseline(tmp_path: Path) -> None:
    engine = Engine(ruleset(tmp_path, "", base=COUNTED))
    engine.deployed("pages", T0 - 1)
    feed(engine, T0, 3, 30, 600)
    assert engine.states["regressed"].state is State.INACTIVE
    engine.deployed("worker", T0 + 170)
    feed(engine, T0 + 180 + 3600, 1, 3, 600)  # long after the deploy: idle again
    fresh = Engine(ruleset(tmp_path, "", base=COUNTED))
    fresh.deployed("worker", T0 - 1)
    feed(fresh, T0, 1, 3, 600)
    state = fresh.states["regressed"]
    assert state.state is State.BLIND
    assert "no requests in the 30m before the deploy" in state.blind_reason


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{name: r, signal: error_rate, regression: {min_effect: 1x}, severity: low}", "above 1x"),
        (
            "{name: r, signal: error_rate, regression: {min_effect: 2x}, above: 5%, severity: low}",
            "no above/below",
        ),
        (
            "{name: r, signal: error_rate, regression: {min_effect: 2x, baseline: 2h},"
            " severity: low}",
            "less than or equal to 3600",
        ),
    ],
)
def test_bad_regression_rules_are_refused(tmp_path: Path, rule: str, message: str) -> None:
    base = COUNTED.split("rules:")[0]
    with pytest.raises(RuleError, match=message):
        ruleset(tmp_path, f"rules:\n  - {rule}\n", base=base)


async def test_the_backtest_tells_deploys_and_prints_the_evidence(tmp_path: Path) -> None:
    """The replay announces ``deployments`` to the engine as it reaches them, and its
    timeline (the backtest JSON) carries the test's counts and e-value."""
    rules = ruleset(tmp_path, "", base=COUNTED)
    deploy = Deploy("d2", "v2", T0 + 30 * 60 - 1)
    replay = Replay(rules, deployments={"worker": [Deploy("d1", "v1", T0 - 86400), deploy]})
    stream = [Sample.ratio(T0 + m * 60.0, 3 if m < 30 else 30, 600) for m in range(33)]
    await replay.run({"error_rate": stream})
    (decision,) = [e for e in replay.timeline if e.event == "decision"]
    assert decision.at == T0 + 30 * 60
    evidence = decision.fields["evidence"]
    assert evidence["base_requests"] == 30 * 600
    assert evidence["e_value"] >= evidence["needed"]
