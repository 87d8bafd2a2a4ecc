"""The demo's strict verdict (issue 10, defect 5), judged on recorded runs.

The two recordings were made with ``rollback-watchdog demo --virtual-time --record``
before the fix: the outage scenario, whose PagerDuty notification failed on a 33
character routing key, and bad-deploy, whose probe source raised a traceback on every
sample (``'.elapsed' may only be accessed after the response has been read``) so that
``site-down`` was blind the whole run. Both printed PASS then. These tests do not depend
on the demo's code or on the probe: they judge what was recorded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from watchdog.demo.record import RunRecord, strict_problems

RUNS = Path(__file__).resolve().parents[1] / "data" / "demo_runs"


def load(name: str) -> RunRecord:
    return RunRecord.from_json((RUNS / name).read_text(encoding="utf-8"))


def test_a_failed_notification_fails_the_run() -> None:
    record = load("outage-33-char-routing-key.json")
    problems = strict_problems(record)
    assert any(
        p.startswith("action failed: notify oncall") and "32 character" in p for p in problems
    ), problems


def test_a_traceback_and_a_blind_probe_fail_the_run() -> None:
    record = load("virtual-time-probe-traceback.json")
    problems = strict_problems(record)
    assert any("source failed unexpectedly (with a traceback)" in p for p in problems)
    assert "rule site-down was blind when the scenario began (no evidence in the warm-up)" in (
        problems
    )
    assert any(p.startswith("blind alarm at") for p in problems), problems


def test_a_clean_run_has_no_problems() -> None:
    """The same recording with its failures removed: blindness before the warm-up's
    end (the first sample of a rate has no previous one) is no problem."""
    record = load("virtual-time-probe-traceback.json")
    clean = replace(
        record,
        failed_actions=[],
        failures_counted=0,
        logged=[],
        blind_at_act=[],
        blind_alarms=[],
        went_blind=[(0.0, "error-rate"), (0.0, "slow-p95")],
    )
    assert strict_problems(clean) == []


def test_blindness_after_the_scenario_began_fails_unless_expected() -> None:
    record = RunRecord("x", True, acted_at=12.0, went_blind=[(30.0, "site-down")])
    assert strict_problems(record) == ["rule site-down went blind at +30.0s"]
    assert strict_problems(record, may_blind=frozenset({"site-down"})) == []


def test_failures_counted_but_not_reported_fail_the_run() -> None:
    record = RunRecord("x", True, acted_at=12.0, failures_counted=2)
    assert strict_problems(record) == [
        "watchdog_actions_total counts 2 failed action(s), 0 of them reported"
    ]


def test_a_record_survives_its_json() -> None:
    record = load("outage-33-char-routing-key.json")
    assert RunRecord.from_json(record.to_json()) == record


def test_the_demo_finds_its_rules_file_in_a_checkout() -> None:
    """The demo reads rules/demo.yaml (watchdog/_rules/ in a wheel); the move into
    watchdog/demo/ left it looking in watchdog/rules/, so ``demo`` could not start."""
    from watchdog.demo.main import RULES

    assert RULES.is_file(), RULES
    assert RULES.read_text(encoding="utf-8").startswith(("#", "version"))


def test_a_source_that_never_answered_by_the_scenario_fails_the_run() -> None:
    """Found by running `bash scripts/demo` and reading its console: the Worker's
    per-version telemetry source (`edge`) answered every sample with an error all run
    long, the canary rule stayed idle (no split) and the run said PASS."""
    record = RunRecord(
        "bad-deploy", False, acted_at=12.0, not_ready_at_act="sources not answering: edge"
    )
    assert strict_problems(record) == [
        "the watchdog was not ready when the scenario began: sources not answering: edge"
    ]
