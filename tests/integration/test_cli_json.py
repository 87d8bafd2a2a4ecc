"""``-o json`` on every verb that prints (issue 14): each verb, run against real things on
loopback (the local Cloudflare API, a running watchdog's API, a query_range server, the
demo), prints exactly one JSON document that a strict parser accepts (no NaN, no
Infinity), an object with the same keys whether the verb succeeded or not."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_cli_ops import Env, env, run
from tests.unit.test_backtest import FRESH_DEPLOYS, RULES, STEP, T0, RangeServer, points
from watchdog.api.app import build_app
from watchdog.cli.main import build_parser
from watchdog.clock import SystemClock
from watchdog.http.server import serve
from watchdog.incidents.silence import Silences
from watchdog.metrics import Metrics
from watchdog.rules.load import load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps
from watchdog.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration
__all__ = ["env"]  # the fixture, shared with test_cli_ops

# The one verb without -o: the daemon has no result to print, it logs.
NOT_PRINTING = {"run"}

# Each verb's document keys, the same on every run (a missing value is null).
KEYS = {
    "check rules": {"ok", "files", "problems"},
    "check config": {"ok", "settings", "rules", "problems"},
    "check healthy": {"ok", "url", "status", "body", "error"},
    "check ready": {"ok", "url", "status", "body", "error"},
    "demo": {"ok", "scenario", "exit_code", "record"},
    "targets": {"ok", "targets"},
    "rollback": {"ok", "incident", "outcome", "steps"},
    "postmortem": {"incident", "out", "markdown"},
    "silence add": {"id"},
    "silence query": {"silences"},
    "silence expire": {"expired"},
    "status": None,  # the API's status document, checked by the OpenAPI test
    "backtest": {"timeline", "rules", "summary"},
    "record": {"ok", "out", "files", "notes"},
    "test rules": {"ok", "exit_code", "lines"},
    "version": {"version", "python"},
    "completion": {"shell", "script"},
    # A ramp: the API's Ramp document, checked against the OpenAPI document by
    # tests/scenarios/test_ramps_cli.py with a daemon that runs ramps.
    "ramp start": None,
    "ramp hold": None,
    "ramp promote": None,
    "ramp abort": None,
    "ramp list": {"ramps"},
}
ERROR_KEYS = {"ok", "error", "problems"}


def leaf_verbs(parser: argparse.ArgumentParser, path: str = "") -> dict[str, Any]:
    """Every verb path (``silence add``) and its parser."""
    found: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.update(leaf_verbs(child, f"{path} {name}".strip()))
    return found or {path: parser}


def strict(text: str) -> dict[str, Any]:
    """One JSON document, strictly: ``json.loads`` accepts NaN unless told not to, and
    fails on a second document after the first."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    document = json.loads(text, parse_constant=refuse)
    assert isinstance(document, dict), text[:200]
    return document


def test_every_verb_that_prints_has_the_output_flag() -> None:
    """A new verb gets ``-o`` or a place in NOT_PRINTING, and a line in KEYS."""
    verbs = leaf_verbs(build_parser())
    assert set(verbs) - NOT_PRINTING == set(KEYS)
    for name, parser in verbs.items():
        flags = {f: a for a in parser._actions for f in a.option_strings}
        if name in NOT_PRINTING:
            assert "-o" not in flags, name
            continue
        assert {"text", "json"} <= set(flags["-o"].choices), name
        assert flags["-o"] is flags["--output"], name
        assert flags["-o"].default == "text", name


class Runner:
    """Runs verbs with ``-o json`` and keeps each one's document."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.documents: dict[str, dict[str, Any]] = {}

    async def __call__(self, verb: str, *argv: str, code: int = 0) -> dict[str, Any]:
        got = await run(*verb.split(), *argv, "-o", "json")
        out = self.capsys.readouterr().out
        assert got == code, out
        document = strict(out)
        expected = KEYS[verb] if code == 0 or verb in ("check rules", "targets") else None
        if expected is not None:
            assert set(document) == expected, (verb, sorted(document))
        self.documents.setdefault(verb, document)
        return document


async def test_each_verb_prints_one_strict_document(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verb = Runner(capsys)
    await _offline_verbs(verb, env, tmp_path)
    await _api_verbs(verb, tmp_path)
    await _replay_verbs(verb, tmp_path)
    assert (await verb("demo", "--virtual-time"))["record"]["scenario"] == "bad-deploy"
    assert set(verb.documents) == set(KEYS), set(KEYS) - set(verb.documents)
    # A failure is a document too, with the error keys, and the exit code says so.
    failed = await verb("check healthy", "--url", "http://127.0.0.1:9", code=1)
    assert failed["ok"] is False
    assert failed["error"]
    assert failed["status"] is None
    assert set(await verb("postmortem", "no-such-incident", code=1)) == ERROR_KEYS
    assert set(await verb("status", "--url", "http://127.0.0.1:9", code=1)) == ERROR_KEYS
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules: [{name: x}]\n")
    broken = await verb("check rules", str(bad), code=1)
    assert broken["ok"] is False
    assert broken["problems"]


async def _offline_verbs(verb: Runner, env: Env, tmp_path: Path) -> None:
    """The verbs that need no running watchdog: on the local Cloudflare API and files."""
    checked = await verb("check rules", str(tmp_path / "rules.yaml"))
    assert checked["ok"] is True
    assert checked["problems"] == []
    config = await verb("check config")
    assert config["rules"] == 1
    assert config["settings"]["secrets"] == ["slack_webhook"]
    targets = await verb("targets")
    worker = next(t for t in targets["targets"] if t["target"] == "worker")
    assert worker["live"]["version"] == env.versions["v2"]
    assert worker["rollback_to"]["version"] == env.versions["v1"]
    rolled = await verb("rollback", "worker", "--reason", "bad v2", "--dry-run")
    assert rolled["outcome"] == "dry run"
    assert rolled["incident"]
    assert any(step["kind"] == "action" for step in rolled["steps"])
    assert not [c for c in env.cf.calls if c.method != "GET"]
    report = await verb("postmortem", rolled["incident"][:12])
    assert report["incident"] == rolled["incident"]  # the prefix, resolved
    assert report["markdown"].startswith("# Post-Mortem: ")
    assert report["out"] is None
    tests = await verb("test rules", "rules/tests/example.test.yaml")
    assert tests["ok"] is True
    assert tests["exit_code"] == 0
    assert (await verb("version"))["version"]
    assert "complete -o default" in (await verb("completion", "bash"))["script"]


async def _api_verbs(verb: Runner, tmp_path: Path) -> None:
    """The verbs that talk to a running watchdog's API."""
    store = SQLiteStore(tmp_path / "api.db")
    await store.open()
    clock = SystemClock()
    async with httpx.AsyncClient() as http:
        watchdog = Watchdog(
            load_rules([tmp_path / "rules.yaml"]), SourceDeps(http=http, clock=clock), Metrics()
        )
        app = build_app(watchdog, None, silences=Silences(store, clock))
        async with serve(app) as srv:
            url = ["--url", srv.url]
            assert (await verb("check healthy", *url))["status"] == 200
            ready = await verb("check ready", *url, code=1)  # no samples yet: not ready
            assert ready["status"] == 503
            assert ready["ok"] is False
            added = await verb("silence add", "rule=error-rate", "--comment", "m", *url)
            listed = await verb("silence query", *url)
            assert [s["id"] for s in listed["silences"]] == [added["id"]]
            status = await verb("status", *url)
            # A blind rule's value is NaN inside the process and null on the wire.
            assert status["rules"][0]["value"] is None
            assert (await verb("silence expire", added["id"], *url))["expired"] == [added["id"]]
            # No ramps in this app (only a daemon runs them): the error document.
            for ramp in ("ramp hold", "ramp promote", "ramp abort"):
                assert set(await verb(ramp, "r1", *url, code=1)) == ERROR_KEYS
            assert set(await verb("ramp start", "--version", "v9", *url, code=1)) == ERROR_KEYS
            assert set(await verb("ramp list", *url, code=1)) == ERROR_KEYS
    await store.close()


async def _replay_verbs(verb: Runner, tmp_path: Path) -> None:
    """``record`` from a query_range server (with a NaN in it), then ``backtest``."""
    rules = tmp_path / "replay.yaml"
    rules.write_text(RULES)
    values = [0.01] * 20 + [float("nan")] + [0.08] * 40 + [0.01] * 20
    fake = RangeServer(
        {
            "err_q": points(values),
            "req_q": points([1000.0] * len(values)),
            "p95_q": points([0.3] * len(values)),
        }
    )
    out = tmp_path / "rec"
    async with serve(fake.router) as server:
        window = ["--from", str(T0), "--to", str(T0 + 80 * STEP), "--step", "15s"]
        recorded = await verb(
            "record", "--rules", str(rules), "--prometheus", server.url, *window, "--out", str(out)
        )
    assert recorded["files"]
    assert any("health.up" in note for note in recorded["notes"])
    (out / "deployments.json").write_text(json.dumps(FRESH_DEPLOYS))
    replay = await verb("backtest", "--rules", str(rules), "--series", str(out))
    assert set(replay["rules"]) == {"error-rate", "slow", "site-down"}
    assert any(event["event"] == "would_rollback" for event in replay["timeline"])
