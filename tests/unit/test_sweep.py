"""``backtest --sweep``: the README's example is what the command prints; labels.json
is validated with clear errors; the table, JSON and heat map mark the rules file's
choice and the best combinations; and the columnar backtest gives the step path's
timeline (or says why it did not run)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from watchdog.backtest.labels import Label, load_labels, parse_labels, score
from watchdog.backtest.recordings import load_recordings, read_matrix_file
from watchdog.backtest.render import render_json
from watchdog.backtest.run import point_reader, run_backtest
from watchdog.backtest.sweep import parse_axis
from watchdog.backtest.times import load_deployments, parse_time
from watchdog.cli.main import main
from watchdog.errors import BacktestError
from watchdog.rules.load import load_rules
from watchdog.store.base import IncidentRecord
from watchdog.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sweep"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("### Sweep: which threshold") :]


def _blocks(lang: str) -> list[str]:
    """The section's fenced blocks of ``lang`` ("" for output), fences paired in order."""
    found, lines, i = [], SECTION.splitlines(keepends=True), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if lines[i].strip() == "```" + lang:
                found.append("".join(lines[i + 1 : end]))
            i = end
        i += 1
    return found


def _elapsed(text: str) -> str:
    return re.sub(r" in \d+\.\d+ s$", " in N s", text, flags=re.M)


def test_the_readme_sweep_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    [command] = [c for c in _blocks("sh")[0].splitlines() if c.startswith("rollback-watchdog")]
    shown = _blocks("")[0]
    code = main(command.split()[1:])
    out = capsys.readouterr().out
    assert code == 0
    assert _elapsed(out) == _elapsed(shown)
    assert "*  5%     5m" in out  # the file's choice, which misses db-pool-leak
    assert " + 4%     4m" in out


def test_the_readme_labels_are_the_example_file() -> None:
    assert _blocks("json")[0] == (EXAMPLE / "labels.json").read_text(encoding="utf-8")
    labels = load_labels(EXAMPLE / "labels.json", ["error-rate"])
    assert [label.id for label in labels] == ["checkout-500s", "db-pool-leak", "bad-config"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], 'expected an object {"incidents": [...]}'),
        ({"incidents": [], "x": 1}, "unknown key 'x'"),
        ({"incidents": [3]}, "incidents[0]: expected an object"),
        ({"incidents": [{"id": "", "start": 1, "end": 2}]}, "incidents[0].id: expected"),
        ({"incidents": [{"id": "a", "end": 2}]}, "incidents[0]: missing 'start'"),
        ({"incidents": [{"id": "a", "start": 5, "end": 5}]}, "incidents[0].end: must be after"),
        ({"incidents": [{"id": "a", "start": "soon", "end": 5}]}, "incidents[0].start:"),
        ({"incidents": [{"id": "a", "start": True, "end": 5}]}, "incidents[0].start: expected"),
        ({"incidents": [{"id": "a", "start": 1, "end": 2, "rule": []}]}, "unknown key 'rule'"),
        ({"incidents": [{"id": "a", "start": 1, "end": 2, "rules": ["nope"]}]}, "'nope'"),
        (
            {"incidents": [{"id": "a", "start": 1, "end": 2}, {"id": "a", "start": 3, "end": 4}]},
            "incidents[1].id 'a' is used twice",
        ),
    ],
)
def test_bad_labels_are_named(body: Any, message: str) -> None:
    with pytest.raises(BacktestError, match=re.escape(message)):
        parse_labels(body, "labels.json", ["error-rate"])


def test_a_labels_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text("{nope")
    with pytest.raises(BacktestError, match=r"labels\.json: not JSON"):
        load_labels(path)


def test_scoring_catches_misses_and_counts_false_episodes() -> None:
    labels = [Label("a", 100.0, 200.0), Label("b", 500.0, 600.0), Label("c", 0.0, 1.0, ("x",))]
    judged = score("r", [(50.0, 120.0), (150.0, 160.0), (300.0, 310.0)], labels)
    assert judged.caught == {"a": 0.0}  # still firing when the window opened
    assert judged.missed == ("b",)  # "c" is meant for rule x only
    assert judged.false_episodes == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("r.above", "expected RULE.FIELD=LO..HI/STEP"),
        ("r.severity=high", "'severity' cannot be swept"),
        ("r.above=2%..8%", "a range needs a step"),
        ("r.above=8%..2%/1%", "ends before it starts"),
        ("r.for=1m..2m/0s", "the step must be above 0"),
        ("r.for=1x,2m", "--sweep r.for=1x,2m:"),
    ],
)
def test_bad_axes_are_named(text: str, message: str) -> None:
    with pytest.raises(BacktestError, match=re.escape(message)):
        parse_axis(text)


def test_axis_values() -> None:
    axis = parse_axis("a.b.above=2%..3%/0.5%")
    assert (axis.rule, axis.field, axis.values) == ("a.b", "above", (0.02, 0.025, 0.03))
    assert [axis.text(v) for v in axis.values] == ["2%", "2.5%", "3%"]
    assert parse_axis("r.for=1m,90s,1m").values == (60.0, 90.0)


def test_sweep_json_and_heatmap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "sweep.png"
    args = [
        "backtest", "--rules", str(EXAMPLE / "rules.yaml"), "--series", str(EXAMPLE),
        "--sweep", "error-rate.above=4%,5%", "--sweep", "error-rate.for=4m,5m",
        "--format", "json", "--plot", str(plot),
    ]  # fmt: skip
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    combos = {(c["values"]["above"], c["values"]["for"]): c for c in doc["combinations"]}
    assert combos[("5%", "5m")]["current"]
    assert not combos[("5%", "5m")]["best"]
    assert combos[("5%", "5m")]["missed"] == ["db-pool-leak"]
    assert combos[("4%", "4m")]["best"]
    assert combos[("4%", "4m")]["false_episodes"] == 0
    assert set(combos[("4%", "4m")]["caught"]) == {"checkout-500s", "db-pool-leak", "bad-config"}
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_sweep_of_an_unknown_rule_or_field_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["backtest", "--rules", str(EXAMPLE / "rules.yaml"), "--series", str(EXAMPLE)]
    assert main([*base, "--sweep", "nope.above=1%,2%"]) == 1
    assert "no rule named 'nope'" in capsys.readouterr().err
    assert main([*base, "--sweep", "error-rate.below=1%,2%"]) == 1
    assert "the rule has no 'below'" in capsys.readouterr().err


def test_columnar_backtest_equals_the_step_path() -> None:
    """The whole timeline (states, decisions, incidents, rollbacks, notifications) of
    the example week is the same both ways."""
    ruleset = load_rules([EXAMPLE / "rules.yaml"])
    deployments = load_deployments(EXAMPLE / "deployments.json")
    fast, _ = load_recordings(EXAMPLE, ruleset, point_reader())
    slow, _ = load_recordings(EXAMPLE, ruleset, read_matrix_file)
    columnar = list(render_json(run_backtest(ruleset, fast, deployments=deployments)))
    stepped = list(
        render_json(run_backtest(ruleset, slow, deployments=deployments, columnar=False))
    )
    assert columnar == stepped
    assert any('"would_rollback"' in line for line in columnar)


def test_without_the_fast_extra_the_backtest_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    ruleset = load_rules([EXAMPLE / "rules.yaml"])
    recordings, _ = load_recordings(EXAMPLE, ruleset, read_matrix_file)
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson raises ImportError
    result = run_backtest(ruleset, recordings, ignore_deploys=True)
    assert any("needs the fast extra" in note for note in result.summary.notes)


def test_labels_from_a_state_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The incidents a store recorded label their own rule: the file's choice caught
    the one it raised; a rule name the sweep does not judge is left out."""
    path = tmp_path / "state.db"

    async def seed() -> None:
        store = SQLiteStore(path)
        await store.open()
        opened = parse_time("2026-10-27T08:42:00Z")
        await store.save_incident(
            IncidentRecord(
                "i1", opened, "error-rate", "critical", "resolved", ["worker"], opened + 1800
            )
        )
        await store.save_incident(
            IncidentRecord("i2", opened, "latency", "low", "resolved", [], opened + 60)
        )
        await store.close()

    asyncio.run(seed())
    args = [
        "backtest", "--rules", str(EXAMPLE / "rules.yaml"), "--series", str(EXAMPLE),
        "--sweep", "error-rate.above=5%", "--labels-from-store", str(path), "--format", "json",
    ]  # fmt: skip
    assert main(args) == 0
    [combo] = json.loads(capsys.readouterr().out)["combinations"]
    assert combo["caught"] == {"i1": 0.0}
    assert combo["missed"] == []
    assert combo["false_episodes"] == 1  # bad-config, which this store never recorded
    assert main([*args[:-2], "--labels-from-store", str(tmp_path / "nope.db")]) == 1
    assert "no such file" in capsys.readouterr().err
