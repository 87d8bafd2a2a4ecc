"""Backtest: recorded series through the live engine and incident manager on a
virtual clock; timeline, summary, JSON lines, bad input, record, plots."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from watchdog.backtest.recordings import (
    Recording,
    fetch_recordings,
    load_recordings,
    matrix_body,
)
from watchdog.backtest.replay import Replay, suppression_reason
from watchdog.backtest.run import run_backtest
from watchdog.backtest.samples import samples_of
from watchdog.backtest.times import parse_deployments, parse_time, rfc3339
from watchdog.cli.main import main
from watchdog.core.evaluator import RuleState, State, _quiet, step
from watchdog.errors import BacktestError
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import RuleSet, load_rules

T0 = 1_790_000_000
STEP = 15

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 5m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
  health: {type: probe, url: "http://127.0.0.1:9/health"}
signals:
  error_rate: {source: prom, query: "err_q", requests_query: "req_q", unit: ratio}
  p95: {source: prom, query: "p95_q", unit: seconds}
targets:
  worker: {type: cloudflare-worker, script: api}
notifiers:
  slack: {type: slack}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     min_requests: 100, rollback: [worker]}
  - {name: slow, signal: p95, above: 2s, for: 1m, severity: low}
  - {name: site-down, signal: health.up, below: 1, for: 1m, severity: critical,
     rollback: [worker]}
after_rollback: {stable_for: 5m}
correlation: {enabled: true, max_deploy_age: 2h}
guards: {cooldown: 30m, max_rollbacks_per_hour: 3}
"""

FRESH_DEPLOYS = {
    "worker": [
        {"version": "v1", "at": T0 - 86400},
        {"version": "v2", "at": T0, "description": "the bad one"},
    ]
}


def points(values: Sequence[float], start: int = T0, step: int = STEP) -> list[tuple[float, float]]:
    return [(float(start + i * step), v) for i, v in enumerate(values)]


def write(directory: Path, name: str, body: object) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = body if isinstance(body, str) else json.dumps(body)
    (directory / f"{name}.json").write_text(text)


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def ruleset(rules_path: Path) -> RuleSet:
    return load_rules([rules_path])


def record(
    directory: Path,
    errors: Sequence[float],
    requests: float = 1000.0,
    deploys: dict[str, Any] | None = None,
) -> None:
    write(directory, "error_rate", matrix_body(points(errors)))
    write(directory, "error_rate.requests", matrix_body(points([requests] * len(errors))))
    if deploys is not None:
        write(directory, "deployments", deploys)


def backtest_json(
    capsys: pytest.CaptureFixture[str], rules: Path, series: Path, *extra: str
) -> list[dict[str, Any]]:
    code = main(
        ["backtest", "--rules", str(rules), "--series", str(series), "--format", "json", *extra]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def events(
    lines: list[dict[str, Any]], event: str, rule: str | None = None
) -> list[dict[str, Any]]:
    return [e for e in lines if e["event"] == event and (rule is None or e["rule"] == rule)]


# --- the timeline ---------------------------------------------------------------------


def test_step_breach_rolls_back_with_json_lines(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1% then 8%: pending at the first breach, firing and a rollback decision for: 5m
    later, the recorded target would roll back v2 → v1; every JSON line has an RFC 3339
    UTC time, a rule and an event, and decisions carry action and targets."""
    series = tmp_path / "rec"
    record(series, [0.01] * 20 + [0.08] * 40 + [0.01] * 40, deploys=FRESH_DEPLOYS)
    lines = backtest_json(capsys, rules_path, series)
    breach = T0 + 20 * STEP
    assert [e["time"] for e in events(lines, "pending", "error-rate")] == [rfc3339(breach)]
    assert [e["time"] for e in events(lines, "firing", "error-rate")] == [rfc3339(breach + 300)]
    (decision,) = events(lines, "decision", "error-rate")
    assert decision["action"] == "rollback"
    assert decision["targets"] == ["worker"]
    (would,) = events(lines, "would_rollback")
    assert would["time"] == rfc3339(breach + 300)
    assert would["action"] == "rollback"
    assert would["targets"] == ["worker"]
    assert events(lines, "resolved", "error-rate")[0]["time"] == rfc3339(breach + 40 * STEP)
    for line in lines:
        assert line["time"].endswith("Z")
        assert {"time", "rule", "event"} <= set(line)
    summary = lines[-1]
    assert summary["event"] == "summary"
    assert summary["incidents"] == 1
    assert summary["rollbacks"] == 1
    notify = events(lines, "would_notify", "error-rate")
    assert notify
    assert all(n["action"] == "notify" and n["targets"] == ["slack"] for n in notify)


def test_without_deployments_every_rollback_is_suppressed(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No deployments.json: no deploy is known, so the rollback shows as suppressed
    (missing deploy) and the summary notes why; --ignore-deploys lets it through."""
    series = tmp_path / "rec"
    record(series, [0.01] * 20 + [0.08] * 40)
    lines = backtest_json(capsys, rules_path, series)
    (suppressed,) = events(lines, "suppressed")
    assert suppressed["reason"] == "deploy"
    assert suppressed["targets"] == ["worker"]
    assert "no deploy of worker recorded" in suppressed["why"]
    assert any("deployments.json" in note for note in lines[-1]["notes"])
    assert not events(lines, "would_rollback")
    lines = backtest_json(capsys, rules_path, series, "--ignore-deploys")
    assert len(events(lines, "would_rollback")) == 1


def test_second_breach_within_cooldown_is_suppressed(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first breach rolls back; a second one 15m later (cooldown 30m) is held back
    by the manager's cooldown guard, and the timeline says so."""
    series = tmp_path / "rec"
    breach = [0.08] * 24
    calm = [0.01] * 40
    record(series, [0.01] * 20 + breach + calm + breach + calm, deploys=FRESH_DEPLOYS)
    lines = backtest_json(capsys, rules_path, series)
    assert len(events(lines, "would_rollback")) == 1
    (suppressed,) = events(lines, "suppressed")
    assert suppressed["reason"] == "cooldown"
    assert lines[-1]["suppressed"] == {"cooldown": 1}
    assert lines[-1]["incidents"] == 2


def test_silence_holds_the_rollback_back(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--silence rule=error-rate: the rollback is suppressed by the silence, never done."""
    series = tmp_path / "rec"
    record(series, [0.01] * 20 + [0.08] * 40, deploys=FRESH_DEPLOYS)
    lines = backtest_json(capsys, rules_path, series, "--silence", "rule=error-rate")
    (suppressed,) = events(lines, "suppressed")
    assert suppressed["reason"] == "silence"
    assert "silenced by backtest" in suppressed["why"]
    assert not events(lines, "would_rollback")


def test_nan_is_data_the_rule_goes_blind(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN values are no data, not an error: blind, and after blind_after a blind
    decision; a NaN in the middle of a breach resets for:."""
    series = tmp_path / "rec"
    values = [0.01] * 4 + [math.nan] * 24 + [0.08] * 10 + [math.nan] + [0.08] * 19
    record(series, values, deploys=FRESH_DEPLOYS)
    lines = backtest_json(capsys, rules_path, series)
    (blind,) = [e for e in events(lines, "blind", "error-rate") if e["from"] == "inactive"]
    assert blind["time"] == rfc3339(T0 + 4 * STEP)
    assert blind["reason"] == "no_data: NaN"
    (decision,) = events(lines, "decision", "error-rate")
    assert decision["action"] == "blind"
    assert decision["time"] == rfc3339(T0 + 24 * STEP)
    assert not events(lines, "firing")  # 10 + 19 breaching samples, split by the NaN


def test_a_hole_in_the_timestamps_is_no_data(ruleset: RuleSet) -> None:
    """A missing step in a recording becomes a no-data sample at exactly that step, as
    the daemon would have sampled an empty answer; ±Inf is an error, like the source."""
    recorded = [*points([0.01] * 3), (T0 + 6.0 * STEP, math.inf), (T0 + 7.0 * STEP, 0.02)]
    samples = samples_of(Recording("p95", recorded))
    assert [s.at for s in samples] == [T0 + i * STEP for i in range(8)]
    assert [s.kind for s in samples[3:7]] == [SampleKind.NO_DATA] * 3 + [SampleKind.ERROR]
    assert samples[3].reason == "no sample in the recording"
    filled = samples_of(Recording("p95", points([0.1]), step=STEP), start=T0 - 30, end=T0 + 30)
    assert [s.at for s in filled] == [T0 - 30, T0 - 15, T0, T0 + 15, T0 + 30]


def test_summary_counts_time_in_each_state(tmp_path: Path, ruleset: RuleSet) -> None:
    """Time in each state adds up to the replayed span; firing lasts as long as the
    breach lasted past for:."""
    recordings = {
        "error_rate": Recording(
            "error_rate",
            points([0.01] * 20 + [0.08] * 40 + [0.01] * 40),
            points([1000.0] * 100),
        )
    }
    result = run_backtest(ruleset, recordings, deployments=parse_deployments(FRESH_DEPLOYS, "x"))
    rule = result.summary.rules["error-rate"]
    assert rule.backtested
    assert rule.fired == 1
    assert rule.time_in_state["pending"] == 300
    assert rule.time_in_state["firing"] == 20 * STEP
    assert sum(rule.time_in_state.values()) == 99 * STEP
    assert not result.summary.rules["site-down"].backtested
    assert any("not backtested: slow, site-down" in n for n in result.summary.notes)
    assert result.spans["error-rate"] == [
        (State.PENDING, T0 + 20 * STEP, T0 + 40 * STEP),
        (State.FIRING, T0 + 40 * STEP, T0 + 60 * STEP),
    ]


def test_text_output_reads_as_a_timeline(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default output: a header, one line per event, then the summary table."""
    series = tmp_path / "rec"
    record(series, [0.01] * 20 + [0.08] * 40, deploys=FRESH_DEPLOYS)
    assert main(["backtest", "--rules", str(rules_path), "--series", str(series)]) == 0
    out = capsys.readouterr().out
    assert "would roll back  worker: v2 → v1" in out
    assert "  error-rate  firing           error_rate 8% > 5% for 5m" in out
    assert "Summary" in out
    assert "incidents:        1" in out
    assert "(not backtested: no recording of health.up)" in out


def test_the_replay_is_the_live_engine(ruleset: RuleSet) -> None:
    """The replay's rule states are exactly what folding ``evaluator.step`` gives."""
    values = [0.01, 0.08, 0.08, math.nan, 0.08] * 30
    samples = [
        Sample.of(T0 + i * STEP, v, 1000.0) if v == v else Sample.no_data(T0 + i * STEP, "NaN")
        for i, v in enumerate(values)
    ]
    replay = Replay(ruleset, ignore_deploys=True)
    seen: list[RuleState] = []
    asyncio.run(
        replay.run(
            {"error_rate": samples}, after=lambda _: seen.append(replay.engine.states["error-rate"])
        )
    )
    rule = ruleset.rule("error-rate")
    state = RuleState()
    expected = []
    for sample in samples:
        state = step(rule, state, sample, ruleset.blind_after(rule))
        expected.append(state)
    assert seen == expected


def test_hot_path_state_equals_the_keyword_built_one() -> None:
    """``_quiet`` (the evaluator's fast constructor) builds exactly the state the
    keyword form does, so the two spellings cannot drift apart."""
    window = ((1.0, True),)
    assert _quiet(0.5, 10.0, 3.0) == RuleState(value=0.5, requests=10.0, at=3.0)
    assert _quiet(0.5, None, 3.0, window) == RuleState(value=0.5, at=3.0, window=window)
    assert type(_quiet(0.5, None, 3.0)) is RuleState


# --- bad input ------------------------------------------------------------------------

ONE = {"metric": {}, "values": [[T0, "0.1"], [T0 + 15, "0.2"]]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not JSON"),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "not a matrix"),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": [ONE, ONE]}},
            "several series",
        ),
        (
            {
                "status": "success",
                "data": {
                    "resultType": "matrix",
                    "result": [{"metric": {}, "values": [[T0 + 15, "1"], [T0, "1"]]}],
                },
            },
            "timestamps not sorted",
        ),
        (
            {
                "status": "success",
                "data": {
                    "resultType": "matrix",
                    "result": [{"metric": {}, "values": [[T0, "1"], [T0, "1"]]}],
                },
            },
            "duplicate timestamp",
        ),
        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "parse error"),
    ],
)
def test_bad_recordings_exit_1_with_a_clear_message(
    tmp_path: Path,
    rules_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: object,
    message: str,
) -> None:
    """A file that is not one sorted matrix series: exit 1, the file named and why."""
    series = tmp_path / "rec"
    write(series, "p95", body)
    code = main(["backtest", "--rules", str(rules_path), "--series", str(series)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ")
    assert "p95.json" in err
    assert message in err


def test_missing_inputs_exit_1(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing directory, a directory without any recording of the rules' signals,
    a missing rules file and a bad deployments file each exit 1 with a message."""
    cases = [
        (["--rules", str(rules_path), "--series", str(tmp_path / "nope")], "no such directory"),
        (["--rules", str(rules_path), "--series", str(tmp_path)], "no recording of any signal"),
        (["--rules", str(tmp_path / "missing.yaml"), "--series", str(tmp_path)], "no such file"),
    ]
    series = tmp_path / "rec"
    record(series, [0.01] * 3, deploys={"worker": [{"version": "v1"}]})
    cases.append((["--rules", str(rules_path), "--series", str(series)], "expected {version"))
    for argv, message in cases:
        assert main(["backtest", *argv]) == 1
        assert message in capsys.readouterr().err


def test_times_and_deployments_parse() -> None:
    """RFC 3339 with a zone, Unix seconds and now-7d are times; a naive time is not;
    deploy times may be relative to a base (for rule tests)."""
    assert parse_time("2026-11-28T10:00:00Z") == parse_time("2026-11-28T11:00:00+01:00")
    assert parse_time("1790000000") == 1_790_000_000.0
    assert parse_time("now-7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    with pytest.raises(BacktestError, match="time zone"):
        parse_time("2026-11-28T10:00:00")
    deploys = parse_deployments(
        {"w": [{"version": "b", "at": "-10m"}, {"version": "a", "at": "-1d"}]}, "t", 1000.0
    )
    assert [(d.version, d.created_at) for d in deploys["w"]] == [
        ("a", 1000.0 - 86400),
        ("b", 400.0),
    ]
    with pytest.raises(BacktestError, match="unknown key"):
        parse_deployments({"w": [{"version": "a", "at": 1, "when": 2}]}, "t")


def test_suppression_reasons_come_from_the_manager_wording() -> None:
    """Each blocker message of the incident manager maps to its short reason."""
    assert suppression_reason("cooldown: worker was rolled back at ...") == "cooldown"
    assert suppression_reason("global cap: 3 rollbacks in the last hour") == "cap"
    assert suppression_reason("silenced by alice until ...") == "silence"
    assert suppression_reason("no version to roll back to (...)") == "deploy"
    assert suppression_reason("cannot read the target: boom") == "error"


# --- record and --prometheus ----------------------------------------------------------


class RangeServer:
    """query_range on loopback: each query answers its recorded points."""

    def __init__(self, series: dict[str, list[tuple[float, float]]]) -> None:
        self.series = series
        self.queries: list[str] = []
        self.router = Router()
        self.router.add("GET", "/api/v1/query_range", self.handle)

    async def handle(self, request: Request, params: dict[str, str]) -> Response:
        query = request.arg("query") or ""
        self.queries.append(query)
        start, end = float(request.arg("start") or 0), float(request.arg("end") or 0)
        chosen = [(t, v) for t, v in self.series.get(query, []) if start <= t <= end]
        return Response.json(matrix_body(chosen))


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[str, RangeServer]]:
    values = [0.01] * 20 + [0.08] * 40 + [0.01] * 20
    fake = RangeServer(
        {
            "err_q": points(values),
            "req_q": points([1000.0] * len(values)),
            "p95_q": points([0.3] * len(values)),
        }
    )
    async with serve(fake.router) as server:
        yield server.url, fake


async def test_record_then_replay_equals_replay_from_prometheus(
    tmp_path: Path,
    rules_path: Path,
    prometheus: tuple[str, RangeServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`record` saves each prometheus signal as DIR/SIGNAL.json (and its requests),
    says which signals cannot be fetched (a probe), and a backtest of the saved files
    prints exactly what a backtest straight from Prometheus prints."""
    url, fake = prometheus
    out = tmp_path / "rec"
    window = ["--from", str(T0), "--to", str(T0 + 79 * STEP), "--step", "15s"]
    code = await asyncio.to_thread(
        main,
        ["record", "--rules", str(rules_path), "--prometheus", url, *window, "--out", str(out)],
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "error_rate.json",
        "error_rate.requests.json",
        "p95.json",
    ]
    assert "cannot fetch health.up" in captured.err
    assert set(fake.queries) == {"err_q", "req_q", "p95_q"}
    write(out, "deployments", FRESH_DEPLOYS)
    deploys = str(out / "deployments.json")
    base = ["backtest", "--rules", str(rules_path), "--format", "json"]
    code = await asyncio.to_thread(main, [*base, "--series", str(out)])
    from_files = capsys.readouterr().out
    assert code == 0
    code = await asyncio.to_thread(
        main, [*base, "--prometheus", url, *window, "--deployments", deploys]
    )
    from_prometheus = capsys.readouterr().out
    assert code == 0
    # Identical but for the note on what could not be fetched.
    files_lines, prometheus_lines = from_files.splitlines(), from_prometheus.splitlines()
    assert files_lines[:-1] == prometheus_lines[:-1]
    assert "cannot fetch health.up" in json.loads(prometheus_lines[-1])["notes"][0]
    assert '"event":"would_rollback"' in from_files


async def test_fetch_uses_the_sources_own_url_without_one(
    ruleset: RuleSet, prometheus: tuple[str, RangeServer]
) -> None:
    """--prometheus without a URL reads from each source's url; here the rules point
    at a closed port, so the error names the failed range query."""
    async with httpx.AsyncClient() as http:
        with pytest.raises(BacktestError, match="range query failed"):
            await fetch_recordings(ruleset, http, T0, T0 + 60, 15)
        recordings, notes = await fetch_recordings(
            ruleset, http, T0, T0 + 60, 15, url=prometheus[0]
        )
    assert set(recordings) == {"error_rate", "p95"}
    assert [n.split(":")[0] for n in notes] == ["cannot fetch health.up"]
    assert recordings["error_rate"].requests is not None
    assert len(recordings["p95"].points) == 5


def test_load_recordings_notes_unknown_files(tmp_path: Path, ruleset: RuleSet) -> None:
    """A JSON file that names no signal is reported, not silently used."""
    write(tmp_path, "p95", matrix_body(points([0.1])))
    write(tmp_path, "p59", matrix_body(points([0.1])))
    recordings, notes = load_recordings(tmp_path, ruleset)
    assert set(recordings) == {"p95"}
    assert notes == [f"ignored {tmp_path / 'p59.json'}: no signal of that name in the rules"]


# --- plots ----------------------------------------------------------------------------


@pytest.fixture
def plotted(tmp_path: Path) -> Path:
    series = tmp_path / "rec"
    record(series, [0.01] * 20 + [0.08] * 40 + [math.nan] * 25 + [0.01] * 20, deploys=FRESH_DEPLOYS)
    write(series, "p95", matrix_body(points([0.3] * 50 + [3.0] * 10 + [0.3] * 45)))
    return series


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<svg")])
def test_plot_writes_png_and_svg(
    tmp_path: Path,
    rules_path: Path,
    plotted: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    magic: bytes,
) -> None:
    """--plot FILE draws one panel per signal, as PNG or SVG by the file's suffix."""
    need_matplotlib()
    target = tmp_path / f"replay{suffix}"
    argv = ["backtest", "--rules", str(rules_path), "--series", str(plotted), "--plot", str(target)]
    assert main(argv) == 0
    capsys.readouterr()
    assert magic in target.read_bytes()[:400]


def test_plot_needs_a_known_format_and_matplotlib(
    tmp_path: Path,
    rules_path: Path,
    plotted: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A .jpg is refused; without matplotlib the error says how to install it."""
    base = ["backtest", "--rules", str(rules_path), "--series", str(plotted), "--plot"]
    assert main([*base, str(tmp_path / "x.jpg")]) == 1
    assert "give a .png or .svg file" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main([*base, str(tmp_path / "x.png")]) == 1
    assert "pip install 'rollback-watchdog[plot]'" in capsys.readouterr().err


def need_matplotlib() -> None:
    """Skip without matplotlib (the [plot] extra), except under CI, where it fails."""
    if importlib.util.find_spec("matplotlib") is None:
        message = "matplotlib is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the plot tests")
        pytest.skip(message)


# --- evidence: empty answers and missing traffic, read as the live daemon reads them -----


def rule_summary(lines: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    (found,) = [e for e in lines if e["event"] == "rule_summary" and e["rule"] == rule]
    return found


def test_missing_requests_recording_is_blind_not_a_rollback(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 16: error_rate has a requests_query and error-rate a min_requests, but
    only error_rate.json was recorded. Live, a ratio without its traffic is blind; so
    the replay is blind throughout (no rollback) and the summary says why."""
    series = tmp_path / "rec"
    record(series, [0.08] * 40, deploys=FRESH_DEPLOYS)
    (series / "error_rate.requests.json").unlink()
    lines = backtest_json(capsys, rules_path, series)
    assert not events(lines, "would_rollback")
    assert not events(lines, "firing")
    summary = rule_summary(lines, "error-rate")
    assert summary["backtested"] is True
    assert summary["time_in_state"]["blind"] == 39 * STEP
    (blind,) = events(lines, "blind", "error-rate")
    assert "no requests recording" in blind["reason"]
    assert any(
        "error_rate.requests.json" in note and "error-rate" in note and "blind" in note
        for note in lines[-1]["notes"]
    ), lines[-1]["notes"]


def test_an_empty_recording_is_blind_not_skipped(
    tmp_path: Path, rules_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 4: p95.json is `{"result": []}` (the query had no series). Live that is
    no data, so the rule on it is blind over the whole replay, never "not backtested",
    and the summary says so."""
    series = tmp_path / "rec"
    record(series, [0.01] * 40)
    write(series, "p95", matrix_body([]))
    lines = backtest_json(capsys, rules_path, series)
    summary = rule_summary(lines, "slow")
    assert summary["backtested"] is True
    assert summary["time_in_state"]["blind"] == 39 * STEP
    assert summary["time_in_state"]["inactive"] == 0
    (blind,) = events(lines, "blind", "slow")
    assert blind["reason"] == "no_data: no series"
    assert any(
        "p95.json" in note and "no series" in note and "slow" in note for note in lines[-1]["notes"]
    ), lines[-1]["notes"]


DIVIDED = RULES.replace(
    'error_rate: {source: prom, query: "err_q", requests_query: "req_q", unit: ratio}',
    'error_rate: {source: prom, errors_query: "errs_q", requests_query: "req_q"}',
)


@pytest.fixture
def divided_rules(tmp_path: Path) -> Path:
    path = tmp_path / "divided.yaml"
    path.write_text(DIVIDED)
    return path


def test_no_error_series_with_traffic_is_zero_in_the_replay(
    tmp_path: Path, divided_rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """errors_query / requests_query: no error point while there is traffic is 0 %
    (inactive, never blind); errors then appear, 80 of 1000 (8 %), and it rolls back;
    a step without traffic is blind, as live."""
    series = tmp_path / "rec"
    write(series, "error_rate.errors", matrix_body(points([80.0] * 40, start=T0 + 20 * STEP)))
    traffic = points([1000.0] * 80)
    del traffic[70]
    write(series, "error_rate.requests", matrix_body(traffic))
    write(series, "deployments", FRESH_DEPLOYS)
    lines = backtest_json(capsys, divided_rules, series)
    summary = rule_summary(lines, "error-rate")
    assert summary["time_in_state"]["blind"] == STEP
    assert summary["time_in_state"]["inactive"] == (20 + 19) * STEP - STEP
    assert events(lines, "firing", "error-rate")[0]["time"] == rfc3339(T0 + 40 * STEP)
    assert events(lines, "firing", "error-rate")[0]["value"] == pytest.approx(0.08)
    assert len(events(lines, "would_rollback")) == 1
    (blind,) = events(lines, "blind", "error-rate")
    assert blind["time"] == rfc3339(T0 + 70 * STEP)
    assert blind["reason"] == "no_data: no traffic: requests_query has no series"


def test_a_missing_errors_recording_is_not_zero_errors(
    tmp_path: Path, divided_rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An errors file that was never written is not an empty answer: blind, noted."""
    series = tmp_path / "rec"
    write(series, "error_rate.requests", matrix_body(points([1000.0] * 40)))
    lines = backtest_json(capsys, divided_rules, series)
    assert rule_summary(lines, "error-rate")["time_in_state"]["blind"] == 39 * STEP
    assert any("error_rate.errors.json" in note for note in lines[-1]["notes"])


async def test_record_says_what_an_empty_answer_means(
    tmp_path: Path, divided_rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`record` of an errors query without series (nothing failed) and of a p95 query
    without series says, per file, how the live daemon reads it; the backtest of the
    files is the backtest straight from Prometheus."""
    fake = RangeServer({"req_q": points([1000.0] * 40)})
    window = ["--from", str(T0), "--to", str(T0 + 39 * STEP), "--step", "15s"]
    out = tmp_path / "rec"
    async with serve(fake.router) as server:
        argv = ["record", "--rules", str(divided_rules), "--prometheus", server.url, *window]
        code = await asyncio.to_thread(main, [*argv, "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        base = ["backtest", "--rules", str(divided_rules), "--format", "json"]
        live = [*base, "--prometheus", server.url, *window]
        assert await asyncio.to_thread(main, live) == 0
        from_prometheus = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "error_rate.errors.json",
        "error_rate.requests.json",
        "p95.json",
    ]
    said = captured.out
    assert f"wrote {out / 'error_rate.requests.json'} (40 of 40 steps)" in said
    assert (
        f"wrote {out / 'error_rate.errors.json'}: no series: no errors, read as 0 errors "
        "wherever there was traffic (as live)"
    ) in said
    assert (
        f"wrote {out / 'p95.json'}: no series: no data, so slow would be blind throughout (as live)"
    ) in said
    assert await asyncio.to_thread(main, [*base, "--series", str(out)]) == 0
    from_files = capsys.readouterr().out
    assert from_files.splitlines()[:-1] == from_prometheus.splitlines()[:-1]
    lines = [json.loads(line) for line in from_files.splitlines()]
    assert rule_summary(lines, "error-rate")["time_in_state"] == {
        "inactive": 39 * STEP,
        "pending": 0,
        "firing": 0,
        "blind": 0,
        "inconclusive": 0,
    }
    assert rule_summary(lines, "slow")["time_in_state"]["blind"] == 39 * STEP


def test_a_ratio_recording_of_a_divided_signal_is_named_not_used(
    tmp_path: Path, divided_rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """error_rate.json recorded before the signal became errors over requests is not
    silently used nor silently skipped: the note says what the signal reads."""
    series = tmp_path / "rec"
    write(series, "error_rate", matrix_body(points([0.08] * 40)))
    write(series, "p95", matrix_body(points([0.3] * 40)))
    lines = backtest_json(capsys, divided_rules, series)
    assert (
        f"ignored {series / 'error_rate.json'}: error_rate is errors over requests"
        in (lines[-1]["notes"][0])
    )
    assert rule_summary(lines, "error-rate")["backtested"] is False
