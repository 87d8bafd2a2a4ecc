"""``test rules``: rule unit tests in the spirit of promtool, on the live engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchdog.backtest.ruletest import run_rule_tests
from watchdog.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 2m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", unit: ratio}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: errors, signal: error_rate, above: 5%, for: 1m, severity: critical,
     rollback: [worker]}
"""


def write_test(tmp_path: Path, body: str) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "rules.test.yaml"
    path.write_text("rule_files: [rules.yaml]\n" + textwrap.dedent(body))
    return path


def test_the_shipped_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """rules/tests/example.test.yaml passes against rules/example.yaml (CI runs it)."""
    path = ROOT / "rules" / "tests" / "example.test.yaml"
    assert main(["test", "rules", str(path)]) == 0
    assert capsys.readouterr().out == f"Unit Testing:  {path}\n  SUCCESS\n\n"


def test_states_and_decisions_pass(tmp_path: Path) -> None:
    """States at evaluation times and the decision (rollback) as expected: SUCCESS."""
    path = write_test(
        tmp_path,
        """
        tests:
          - interval: 15s
            input_series:
              - {series: error_rate, values: 0.01x3 0.08x8 0.01x3}
            rule_test:
              - {eval_time: 1m, rule: errors, exp_state: pending, exp_decision: none}
              - {eval_time: 2m, rule: errors, exp_state: firing, exp_decision: rollback}
              - {eval_time: 3m, rule: errors, exp_state: firing}
              - {eval_time: 3m15s, rule: errors, exp_state: inactive, exp_decision: resolved}
              - {eval_time: 3m30s}
        """,
    )
    assert run_rule_tests([str(path)]) == (0, [f"Unit Testing:  {path}", "  SUCCESS", ""])


def test_every_failure_shows_expected_and_actual(tmp_path: Path) -> None:
    """Wrong expectations fail with exit 1, each showing exp and got like promtool;
    an empty expectation at a firing moment says what fired."""
    path = write_test(
        tmp_path,
        """
        tests:
          - name: spike
            interval: 15s
            input_series:
              - {series: error_rate, values: 0.01x3 0.08x8 0.01x3}
            rule_test:
              - {eval_time: 1m, rule: errors, exp_state: firing}
              - {eval_time: 2m, rule: errors, exp_decision: notify}
              - {eval_time: 2m}
        """,
    )
    code, lines = run_rule_tests([str(path)])
    assert code == 1
    assert lines == [
        f"Unit Testing:  {path}",
        "  FAILED:",
        "    name: spike, rule: errors, time: 1m,\n"
        "        exp: state firing\n"
        "        got: state pending, decision none",
        "    name: spike, rule: errors, time: 2m,\n"
        "        exp: decision notify\n"
        "        got: state firing, decision rollback",
        "    name: spike, time: 2m,\n"
        "        exp: nothing firing, no decision to act\n"
        "        got: errors firing, decision rollback",
        "",
    ]


def test_gaps_and_stale_are_blind_and_reset_for(tmp_path: Path) -> None:
    """_ and stale are no data: blind (a blind decision after blind_after), and the
    breach starts over after the gap."""
    path = write_test(
        tmp_path,
        """
        tests:
          - interval: 15s
            input_series:
              - {series: error_rate, values: 0.08x2 _ 0.08x3 stale _x8 0.08x4}
            rule_test:
              - {eval_time: 30s, rule: errors, exp_state: pending}
              - {eval_time: 45s, rule: errors, exp_state: blind}
              - {eval_time: 1m45s, rule: errors, exp_state: pending}
              - {eval_time: 4m, rule: errors, exp_state: blind, exp_decision: blind}
              - {eval_time: 4m15s, rule: errors, exp_state: pending}
              - {eval_time: 5m15s, rule: errors, exp_state: firing, exp_decision: rollback}
        """,
    )
    code, lines = run_rule_tests([str(path)])
    assert code == 0, "\n".join(lines)


def test_silences_and_deployments(tmp_path: Path) -> None:
    """A silence turns the rollback into 'silenced'; deployments switch deploy
    correlation on, so an old deploy makes it 'blocked' (and escalated)."""
    path = write_test(
        tmp_path,
        """
        tests:
          - name: silenced
            silences: [[rule=errors]]
            input_series:
              - {series: error_rate, values: 0.08x8}
            rule_test:
              - {eval_time: 1m, rule: errors, exp_decision: silenced}
          - name: old deploy
            deployments:
              worker: [{version: v1, at: -2d}, {version: v2, at: -1d}]
            input_series:
              - {series: error_rate, values: 0.08x8}
            rule_test:
              - {eval_time: 1m, rule: errors, exp_decision: [blocked, escalated]}
          - name: fresh deploy
            deployments:
              worker: [{version: v1, at: -2d}, {version: v2, at: -5m}]
            input_series:
              - {series: error_rate, values: 0.08x8}
            rule_test:
              - {eval_time: 1m, rule: errors, exp_decision: rollback}
        """,
    )
    code, lines = run_rule_tests([str(path)])
    assert code == 0, "\n".join(lines)


def test_run_selects_groups(tmp_path: Path) -> None:
    """--run REGEX runs only the groups whose name matches."""
    path = write_test(
        tmp_path,
        """
        tests:
          - name: good
            input_series: [{series: error_rate, values: 0.01x4}]
            rule_test: [{eval_time: 1m}]
          - name: bad
            input_series: [{series: error_rate, values: 0.08x4}]
            rule_test: [{eval_time: 1m}]
        """,
    )
    assert run_rule_tests([str(path)])[0] == 1
    assert run_rule_tests([str(path)], run="^good$")[0] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tests: []\nextra: 1\n", "extra: Extra inputs are not permitted"),
        (
            "tests:\n  - input_series: [{series: nope, values: '1'}]\n",
            "input_series[0] (nope): unknown signal (expected one of: error_rate)",
        ),
        (
            "tests:\n  - input_series: [{series: error_rate, values: '1 x'}]\n",
            "item 2 'x'",
        ),
        (
            "tests:\n  - input_series: [{series: error_rate, values: '1x4'}]\n"
            "    rule_test: [{eval_time: 10s}]\n",
            "eval_time 10s is not a multiple of the interval 15s",
        ),
        (
            "tests:\n  - input_series: [{series: error_rate, values: '1x4'}]\n"
            "    rule_test: [{eval_time: 2m}]\n",
            "eval_time 2m is after the last input value (1m)",
        ),
        (
            "tests:\n  - input_series: [{series: error_rate, values: '1x4'}]\n"
            "    rule_test: [{eval_time: 1m, rule: nope}]\n",
            "unknown rule 'nope'",
        ),
        (
            "tests:\n  - input_series: [{series: error_rate, values: '1x4'}]\n"
            "    rule_test: [{eval_time: 1m, exp_state: firing}]\n",
            "exp_state and exp_decision need a rule",
        ),
    ],
)
def test_bad_test_files_fail_with_a_message(tmp_path: Path, body: str, message: str) -> None:
    """A test file that cannot run is a failure (exit 1) that says why."""
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "t.yaml"
    path.write_text("rule_files: [rules.yaml]\n" + body)
    code, lines = run_rule_tests([str(path)])
    assert code == 1
    assert lines[1] == "  FAILED:"
    assert message in lines[2]


def test_missing_files_and_bad_rules_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing test file, and a test file naming broken rules, fail with exit 1;
    other files still run."""
    (tmp_path / "bad.yaml").write_text("version: 2\n")
    broken = tmp_path / "broken.test.yaml"
    broken.write_text("rule_files: [bad.yaml]\ntests: []\n")
    good = write_test(tmp_path, "tests: []\n")
    assert main(["test", "rules", str(tmp_path / "none.yaml"), str(broken), str(good)]) == 1
    out = capsys.readouterr().out
    assert "none.yaml: no such file" in out
    assert "bad.yaml:1 version" in out
    assert out.endswith(f"Unit Testing:  {good}\n  SUCCESS\n\n")


TRAFFIC_RULES = """
version: 1
defaults: {interval: 15s, blind_after: 2m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", requests_query: "r", unit: ratio}
  counted: {source: prom, errors_query: "errs", requests_query: "r"}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: errors, signal: error_rate, above: 5%, for: 1m, severity: critical,
     min_requests: 100, rollback: [worker]}
  - {name: counted, signal: counted, above: 5%, for: 1m, severity: critical,
     min_requests: 100, rollback: [worker]}
"""


def write_traffic_test(tmp_path: Path, body: str) -> Path:
    (tmp_path / "rules.yaml").write_text(TRAFFIC_RULES)
    path = tmp_path / "rules.test.yaml"
    path.write_text("rule_files: [rules.yaml]\n" + textwrap.dedent(body))
    return path


def test_a_ratio_without_its_requests_series_is_blind(tmp_path: Path) -> None:
    """Defect 16: error_rate has a requests_query and the rule a min_requests; a test
    that gives no `requests:` is blind there, as live (not a rollback), and a failed
    expectation says why it is blind."""
    path = write_traffic_test(
        tmp_path,
        """
        tests:
          - name: no traffic given
            interval: 15s
            input_series:
              - {series: error_rate, values: 0.5x10}
            rule_test:
              - {eval_time: 1m, rule: errors, exp_state: firing}
              - {eval_time: 2m15s}
        """,
    )
    code, lines = run_rule_tests([str(path)])
    assert code == 1
    assert lines[2:] == [
        "    name: no traffic given, rule: errors, time: 1m,\n"
        "        exp: state firing\n"
        "        got: state blind (no_data: requests_query: no requests series given), "
        "decision none",
        "",
    ]


def test_errors_over_requests_in_rule_tests(tmp_path: Path) -> None:
    """`errors:` and `requests:` for a signal the watchdog divides: `_` errors with
    traffic is 0 % (inactive, not blind), 80 of 1000 breaches, `_` traffic is blind."""
    path = write_traffic_test(
        tmp_path,
        """
        tests:
          - interval: 15s
            input_series:
              - {series: counted, errors: _x4 80x8 _x3, requests: 1000x11 _ 1000x2}
            rule_test:
              - {eval_time: 45s, rule: counted, exp_state: inactive}
              - {eval_time: 1m, rule: counted, exp_state: pending}
              - {eval_time: 2m, rule: counted, exp_state: firing, exp_decision: rollback}
              - {eval_time: 3m, rule: counted, exp_state: blind}
              - {eval_time: 3m15s, rule: counted, exp_state: inactive}
        """,
    )
    code, lines = run_rule_tests([str(path)])
    assert code == 0, "\n".join(lines)


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ("{series: counted, values: 0.1x3, requests: 1000x3}", "give errors and requests"),
        ("{series: counted, errors: 1x3}", "give errors and requests"),
        ("{series: error_rate, errors: 1x3, requests: 1x3}", "errors applies only to"),
    ],
)
def test_errors_and_values_go_with_their_signals(tmp_path: Path, series: str, message: str) -> None:
    """`errors:` is for a divided signal only, which needs both counts."""
    path = write_traffic_test(tmp_path, f"tests:\n  - input_series: [{series}]\n")
    code, lines = run_rule_tests([str(path)])
    assert code == 1
    assert message in lines[2], lines


def test_a_failed_expectation_says_why_the_rule_is_inconclusive(tmp_path: Path) -> None:
    """As for blind: an inconclusive rule's reason (the evidence that cannot tell) is
    in the failure, so the test's author sees the counts, not only the state."""
    rules = Path(__file__).resolve().parents[2] / "rules/examples/confidence.yaml"
    path = tmp_path / "rules.test.yaml"
    path.write_text(
        f"rule_files: [{rules}]\n"
        + textwrap.dedent(
            """
            tests:
              - name: one error in five requests
                interval: 1m
                input_series:
                  - {series: error_rate, errors: 0x3 1 0x3, requests: 1x8}
                rule_test:
                  - {eval_time: 4m, rule: error-rate-sure, exp_state: firing}
            """
        )
    )
    code, lines = run_rule_tests([str(path)])
    assert code == 1
    got = next(line for line in lines if "got: state inconclusive" in line)
    assert "got: state inconclusive (" in got
    assert "1 errors / 5 requests" in got or "1 / 5" in got, got
