"""Rules files: the shipped ones load, and every bad file fails with the exact
location (file:line key.path) and message it expects (``# expect:`` lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli.main import main
from watchdog.errors import RuleError
from watchdog.rules.load import check_files, load_rules

ROOT = Path(__file__).resolve().parents[2]
BAD = sorted((ROOT / "tests/data/bad_rules").glob("*.yaml"))


def _expected(path: Path) -> list[str]:
    rel = path.relative_to(ROOT)
    return [
        f"{rel}{line.removeprefix('# expect: ').strip()}"
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def test_there_are_at_least_twenty_bad_files() -> None:
    """The bad-file corpus covers at least 20 distinct mistakes."""
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_names_location_and_problem(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bad file yields exactly the problems its ``# expect:`` lines list."""
    monkeypatch.chdir(ROOT)
    rel = path.relative_to(ROOT)
    with pytest.raises(RuleError) as caught:
        load_rules([rel])
    assert caught.value.problems == _expected(path)


def test_shipped_rules_load() -> None:
    """rules/*.yaml load and encode the runbook's thresholds."""
    ruleset = load_rules([ROOT / "rules" / "example.yaml"])
    error = ruleset.rule("error-rate")
    assert (error.threshold.value, error.for_, error.severity) == (0.05, 300.0, "critical")
    assert ruleset.rule("slow-p95").threshold.value == 5.0
    assert ruleset.rule("site-down").signal == "health.up"
    assert ruleset.severities["high"].grace == 600.0
    assert ruleset.severities["medium"].escalate_after == 1800.0
    verify = ruleset.after_rollback.verify
    assert verify[0].below is not None
    assert verify[0].below.value == pytest.approx(0.005)
    assert (verify[0].within, verify[1].baseline, verify[1].within) == (120.0, True, 300.0)
    assert [level.level for level in ruleset.escalation] == [1, 2, 3]


def test_check_rules_cli_summarises_each_file(capsys: pytest.CaptureFixture[str]) -> None:
    """check rules exits 0 with one SUCCESS line per file, like promtool."""
    shipped = sorted(str(p) for p in (ROOT / "rules").glob("*.yaml"))
    assert len(shipped) >= 2
    assert main(["check", "rules", *shipped]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out
    assert all(": SUCCESS: " in line for line in out)


def test_check_rules_cli_lists_every_problem(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """check rules exits 1 and prints every problem of every file, not just the first."""
    monkeypatch.chdir(ROOT)
    bad = [str(p.relative_to(ROOT)) for p in BAD[:3]]
    assert main(["check", "rules", *bad]) == 1
    err = capsys.readouterr().err
    for path in BAD[:3]:
        for expected in _expected(path):
            assert expected in err


def test_directory_merges_and_rejects_cross_file_duplicates(tmp_path: Path) -> None:
    """Files in a directory merge; a name defined in two files names both places."""
    (tmp_path / "a.yaml").write_text(
        'version: 1\nsources:\n  prom: {type: prometheus, url: "http://p"}\n'
    )
    (tmp_path / "b.yaml").write_text(
        "version: 1\nsignals:\n  e: {source: prom, query: x, unit: ratio}\n"
        "rules:\n  - {name: r, signal: e, above: 5%, severity: low}\n"
    )
    merged = load_rules([tmp_path])
    assert [r.name for r in merged.rules] == ["r"]
    (tmp_path / "c.yaml").write_text(
        'version: 1\nsources:\n  prom: {type: prometheus, url: "http://q"}\n'
    )
    summaries, problems = check_files([tmp_path])
    assert problems == [
        f"{tmp_path / 'c.yaml'}:3 sources.prom: duplicate name "
        f"(first defined at {tmp_path / 'a.yaml'}:3)"
    ]
    assert len(summaries) == 2


def test_missing_file_is_an_error_not_a_crash() -> None:
    """A path that does not exist is reported, with its name."""
    with pytest.raises(RuleError) as caught:
        load_rules(["/nonexistent/rules.yaml"])
    assert caught.value.problems == ["/nonexistent/rules.yaml:0 (top level): no such file"]
