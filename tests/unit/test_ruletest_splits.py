"""Gradual deployments in ``test rules`` and the backtest (issue 16): the split form of
a deployments entry, told to the engine as the live deploy watch tells it, and a
canary rule's per-version counts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.factories import ruleset
from watchdog.actions.cloudflare_worker import WorkerDeployment
from watchdog.backtest.replay import Replay
from watchdog.backtest.ruletest import run_rule_tests
from watchdog.backtest.splits import SplitDeploy, parse_versions_recording, versions_sample
from watchdog.backtest.times import parse_deployments
from watchdog.cli.main import main
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import BacktestError
from watchdog.model import Sample
from watchdog.run.deploys import split_of

RULES = """
version: 1
defaults: {interval: 1m, blind_after: 10m}
sources:
  edge: {type: cloudflare, script: api, mode: versions}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: canary, signal: edge.versions, canary: {min_effect: 3x, confidence: 99%},
     severity: critical, rollback: [worker]}
correlation: {enabled: true, max_deploy_age: 1h}
"""

SPLIT = """
            deployments:
              worker:
                - {version: v1, at: -1d}
                - {versions: [{version: v2, percentage: 10}, {version: v1, percentage: 90}],
                   at: -30s, description: canary v2 at 10%}
"""


def write_test(tmp_path: Path, body: str) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "canary.test.yaml"
    path.write_text("rule_files: [rules.yaml]\n" + textwrap.dedent(body))
    return path


def run(path: Path) -> tuple[int, str]:
    code, lines = run_rule_tests([str(path)])
    return code, "\n".join(lines)


def test_a_split_with_a_failing_new_version_fires_the_canary(
    tmp_path: Path,
) -> None:
    path = write_test(
        tmp_path,
        """
        tests:
          - name: v2 fails a third of its requests at 10%
            input_series:
              - series: edge.versions
                versions:
                  v2: {errors: 2x9, requests: 6x9}
                  v1: {errors: "0x9", requests: 54x9}
            rule_test:
              - {eval_time: 9m, rule: canary, exp_state: firing}
              - {eval_time: 0m, rule: canary, exp_state: inconclusive}
        """
        + SPLIT,
    )
    code, out = run(path)
    assert (code, out.splitlines()[1]) == (0, "  SUCCESS"), out
    # And the rollback decision comes with it (the first moment it fires).
    fired = _first_firing(tmp_path, "v2: {errors: 2x9, requests: 6x9}")
    assert fired is not None
    assert fired > 0


def _first_firing(tmp_path: Path, v2: str) -> int | None:
    """The first eval minute at which the canary fires with a rollback, by trying each."""
    for minute in range(10):
        body = f"""
        tests:
          - input_series:
              - series: edge.versions
                versions:
                  {v2}
                  v1: {{errors: "0x9", requests: 54x9}}
            rule_test:
              - {{eval_time: {minute}m, rule: canary, exp_state: firing, exp_decision: rollback}}
        """
        path = write_test(tmp_path, body + SPLIT)
        if run(path)[0] == 0:
            return minute
    return None


def test_no_traffic_on_the_new_version_is_inconclusive_never_a_rollback(
    tmp_path: Path,
) -> None:
    path = write_test(
        tmp_path,
        """
        tests:
          - name: v2 at 10% but nothing reaches it
            input_series:
              - series: edge.versions
                versions:
                  v2: {errors: _x9, requests: _x9}
                  v1: {errors: 5x9, requests: 60x9}
            rule_test:
              - {eval_time: 5m, rule: canary, exp_state: inconclusive}
              - {eval_time: 9m, rule: canary, exp_state: inconclusive}
              - {eval_time: 9m}
        """
        + SPLIT,
    )
    code, out = run(path)
    assert (code, out.splitlines()[1]) == (0, "  SUCCESS"), out


def test_without_a_split_the_canary_is_idle(
    tmp_path: Path,
) -> None:
    path = write_test(
        tmp_path,
        """
        tests:
          - input_series:
              - series: edge.versions
                versions:
                  v2: {errors: 20x9, requests: 60x9}
            deployments:
              worker:
                - {version: v1, at: -1d}
                - {versions: [{version: v2, percentage: 100}], at: -30s}
            rule_test:
              - {eval_time: 9m, rule: canary, exp_state: inactive}
        """,
    )
    code, out = run(path)
    assert (code, out.splitlines()[1]) == (0, "  SUCCESS"), out


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [
                {
                    "versions": [
                        {"version": "v2", "percentage": 10},
                        {"version": "v1", "percentage": 80},
                    ],
                    "at": 10,
                }
            ],
            "d.json: worker[0]: versions: the percentages add up to 90, not 100",
        ),
        (
            [
                {"version": "v1", "at": 0},
                {
                    "versions": [
                        {"version": "v2", "percentage": 10},
                        {"version": "v3", "percentage": 90},
                    ],
                    "at": 10,
                },
            ],
            "d.json: worker[1]: a split of v2 and v3 at 1970-01-01T00:00:10Z, but v1 served 100% "
            "before it: which version is new is unknown",
        ),
        (
            [
                {
                    "versions": [
                        {"version": "v2", "percentage": 10},
                        {"version": "v1", "percentage": 90},
                    ],
                    "at": 10,
                }
            ],
            "d.json: worker[0]: a split of v2 and v1 at 1970-01-01T00:00:10Z, but nothing came "
            "before it",
        ),
        (
            [{"version": "v1", "versions": [], "at": 0}],
            "d.json: worker[0]: expected {version: ..., at: ...} or, for a gradual deployment",
        ),
        (
            [{"versions": [{"version": "v2", "percentage": True}], "at": 0}],
            "d.json: worker[0]: versions[0]: percentage: expected a number, got True",
        ),
        (
            [
                {
                    "versions": [
                        {"version": "v2", "percentage": 50},
                        {"version": "v2", "percentage": 50},
                    ],
                    "at": 0,
                }
            ],
            "d.json: worker[0]: versions[1]: version v2 is given twice",
        ),
        (
            [
                {
                    "versions": [
                        {"version": "a", "percentage": 10},
                        {"version": "b", "percentage": 80},
                        {"version": "c", "percentage": 10},
                    ],
                    "at": 0,
                }
            ],
            "d.json: worker[0]: versions: expected a list of one or two",
        ),
    ],
)
def test_bad_split_entries_are_named(entries: list[object], message: str) -> None:
    with pytest.raises(BacktestError) as caught:
        parse_deployments({"worker": entries}, "d.json")
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_ramp_keeps_one_test_and_a_rollback_goes_to_old() -> None:
    deploys = parse_deployments(
        {
            "worker": [
                {"version": "v1", "at": 0},
                {
                    "versions": [
                        {"version": "v2", "percentage": 10},
                        {"version": "v1", "percentage": 90},
                    ],
                    "at": 100,
                },
                {
                    "versions": [
                        {"version": "v1", "percentage": 50},
                        {"version": "v2", "percentage": 50},
                    ],
                    "at": 200,
                },
            ]
        },
        "d.json",
    )["worker"]
    assert [d.version for d in deploys] == ["v1", "v2", "v2"]
    assert isinstance(deploys[2], SplitDeploy)
    assert deploys[2].versions == (("v1", 50.0), ("v2", 50.0))


# --- the backtest and the live engine agree on the same per-version counts -------------

T0 = 1_800_000_000.0
WINDOWS = 30


def _counts(i: int) -> dict[str, tuple[float, float]]:
    """v2 at 10 % then 50 % of 600 requests a minute; from minute 12 it fails 20 %."""
    share = 0.1 if i < 15 else 0.5
    bad = 0.2 if i >= 12 else 0.005
    new, old = 600 * share, 600 * (1 - share)
    return {"v2": (round(new * bad), new), "v1": (round(old * 0.005), old)}


async def test_the_backtest_and_the_live_engine_give_the_same_verdict(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, "", base=RULES)
    samples = [versions_sample(T0 + 60 * i, _counts(i)) for i in range(WINDOWS)]
    # Live: the deploy watch reads Cloudflare's deployments (newest first) and tells the
    # engine the split before each sample, as run/deploys.py does.
    history = [
        WorkerDeployment("d1", T0 - 86400, (("v1", 100.0),), author="ana"),
        WorkerDeployment("d2", T0 - 30, (("v2", 10.0), ("v1", 90.0)), author="ana"),
        WorkerDeployment("d3", T0 + 60 * 14 + 30, (("v2", 50.0), ("v1", 50.0)), author="ana"),
    ]
    live = Engine(rules)
    live_states: list[State] = []
    for sample in samples:
        seen = [d for d in history if d.created_at <= sample.at][::-1]
        live.split("worker", split_of("worker", seen))
        live.observe("edge.versions", sample)
        live_states.append(live.states["canary"].state)
    # Backtest: the same history as deployments.json, the same samples replayed.
    deployments = parse_deployments(
        {
            "worker": [
                {"version": "v1", "at": T0 - 86400},
                {
                    "versions": [
                        {"version": "v2", "percentage": 10},
                        {"version": "v1", "percentage": 90},
                    ],
                    "at": T0 - 30,
                },
                {
                    "versions": [
                        {"version": "v2", "percentage": 50},
                        {"version": "v1", "percentage": 50},
                    ],
                    "at": T0 + 60 * 14 + 30,
                },
            ]
        },
        "deployments.json",
    )
    replay = Replay(rules, deployments)
    replayed: list[State] = []
    await replay.run(
        {"edge.versions": samples},
        after=lambda _: replayed.append(replay.engine.states["canary"].state),
    )
    assert State.FIRING in live_states
    assert (
        replayed[: live_states.index(State.FIRING) + 1]
        == live_states[: live_states.index(State.FIRING) + 1]
    )
    # The replay's rollback goes to 100 % of the old version, as the live one would.
    (rollback,) = [e for e in replay.timeline if e.event == "would_rollback"]
    assert rollback.text == "worker: v2 → v1 (backtest: nothing was sent)"


def test_a_versions_recording_reads_as_the_source_samples() -> None:
    samples = parse_versions_recording(
        {
            "step": 60,
            "samples": [
                {
                    "at": 60,
                    "versions": {
                        "v1": {"errors": 1, "requests": 540},
                        "v2": {"errors": 5, "requests": 60},
                    },
                },
                {"at": 120, "versions": {}},
            ],
        },
        "edge.versions.versions.json",
    )
    first, second = samples
    assert [(v.version, v.errors, v.requests) for v in first.versions] == [
        ("v1", 1.0, 540.0),
        ("v2", 5.0, 60.0),
    ]
    assert (first.errors, first.requests, first.fresh_to) == (6.0, 600.0, 60.0)
    assert second == Sample.no_data(120.0, "no invocations in the window")
    with pytest.raises(BacktestError, match=r"samples\[0\]: versions.v2: errors 7 exceed"):
        parse_versions_recording(
            {"samples": [{"at": 1, "versions": {"v2": {"errors": 7, "requests": 6}}}]}, "f"
        )


def test_backtest_replays_a_versions_recording_through_a_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``backtest --series DIR`` with ``edge.versions.versions.json`` (per-version counts
    per window, as the cloudflare source reads them) and a split in deployments.json:
    the canary rolls v2 back to v1; the same counts without the split: nothing."""
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULES)
    series = tmp_path / "rec"
    series.mkdir()
    windows = []
    for i in range(WINDOWS):
        counts = _counts(i)
        versions = {v: {"errors": e, "requests": r} for v, (e, r) in counts.items()}
        windows.append({"at": T0 + 60 * i, "versions": versions})
    (series / "edge.versions.versions.json").write_text(
        json.dumps({"step": 60, "samples": windows})
    )
    split = [
        {"version": "v1", "at": T0 - 86400},
        {
            "versions": [{"version": "v2", "percentage": 10}, {"version": "v1", "percentage": 90}],
            "at": T0 - 30,
        },
    ]
    (series / "deployments.json").write_text(json.dumps({"worker": split}))
    argv = ["backtest", "--rules", str(rules_path), "--series", str(series)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "would roll back  worker: v2 → v1" in out, out
    assert "ignored" not in out, out
    (series / "deployments.json").write_text(json.dumps({"worker": split[:1]}))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "would roll back  worker" not in out, out
    assert "would roll back:  0" in out, out
