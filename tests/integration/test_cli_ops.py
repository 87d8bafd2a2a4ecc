"""The operator commands as a person runs them: ``targets``, ``rollback`` (the same path
as the automatic one), ``postmortem``, and ``silence``/``status`` against a running
watchdog's API, all on loopback."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from watchdog.api.app import build_app
from watchdog.cli.main import main
from watchdog.clock import SystemClock
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import serve
from watchdog.incidents.silence import Silences
from watchdog.metrics import Metrics
from watchdog.rules.load import load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps
from watchdog.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration

TOKEN = "cli-test-token-9f8e"
RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", unit: ratio}
targets:
  worker: {type: cloudflare-worker, script: api}
  frontend: {type: cloudflare-pages, project: site}
purges:
  zone: {type: cloudflare-zone, zone: z1, everything: true}
notifiers:
  slack: {type: slack, webhook_secret: slack_webhook}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     rollback: [worker, frontend]}
after_rollback: {purge: [zone], stable_for: 1s}
"""


@dataclass
class Env:
    cf: FakeCloudflare
    receivers: Receivers
    tmp: Path
    versions: dict[str, str]
    pages: dict[str, str]


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    now = time.time()
    cf = FakeCloudflare(token=TOKEN, account_id="acct")
    versions, pages = {}, {}
    for name, age in (("v1", 86400), ("v2", 600)):
        versions[name] = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], f"deploy {name}", created_on=now - age)
    cf.add_project("site")
    for name, age in (("p1", 86400), ("p2", 600)):
        pages[name] = cf.add_pages_deployment("site", created_on=now - age, commit_message=name)
    receivers = Receivers()
    async with serve(cf.router) as cf_srv, serve(receivers) as rx_srv:
        (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES))
        for key, value in {
            "WATCHDOG_RULES": str(tmp_path / "rules.yaml"),
            "WATCHDOG_STATE": str(tmp_path / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "none"),
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url),
        }.items():
            monkeypatch.setenv(key, value)
        yield Env(cf, receivers, tmp_path, versions, pages)


async def run(*argv: str) -> int:
    """The CLI runs its own event loop: give it a thread, as a shell would a process."""
    return await asyncio.to_thread(main, list(argv))


async def test_targets_shows_live_and_rollback_choice(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """``targets``: for each target, what is live, what a rollback goes to, and why."""
    assert await run("targets") == 0
    out = capsys.readouterr().out
    assert f"live:        {env.versions['v2']}" in out
    assert f"rollback to: {env.versions['v1']}" in out
    assert f"rollback to: {env.pages['p1']}" in out
    assert "the newest earlier version not rolled away from" in out
    assert "ledger:" in out
    assert not [c for c in env.cf.calls if c.method != "GET"]


async def test_manual_rollback_dry_run_then_for_real(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rollback --dry-run`` changes nothing; ``rollback`` rolls both targets back once,
    purges, notifies, and leaves an incident whose post-mortem names the reason."""
    assert await run("rollback", "worker", "frontend", "--reason", "bad v2", "--dry-run") == 0
    assert not [c for c in env.cf.calls if c.method != "GET"]
    assert (
        await run("rollback", "worker", "frontend", "--reason", "bad v2", "--author", "alice") == 0
    )
    out = capsys.readouterr().out
    assert "✅ rollback worker" in out
    assert "✅ rollback frontend" in out
    assert "✅ purge zone" in out
    assert env.cf.live_versions("api") == [(env.versions["v1"], 100.0)]
    assert env.cf.canonical("site") == env.pages["p1"]
    posts = [c for c in env.cf.calls if c.method == "POST" and c.path.endswith("/deployments")]
    assert len(posts) == 1
    assert posts[0].json["annotations"]["workers/message"].endswith("bad v2")
    incident = [line.split()[-1] for line in out.splitlines() if line.startswith("incident ")][-1]
    assert await run("postmortem", incident) == 0
    report = capsys.readouterr().out
    assert report.startswith("# Post-Mortem: ")
    assert "manual rollback by alice" in report
    assert "Rollback completed" in report


async def test_rollback_of_an_unknown_target_is_a_usage_error(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown target exits 2 and names the known ones."""
    assert await run("rollback", "wrker", "--reason", "x") == 2
    assert "expected one of: frontend, worker" in capsys.readouterr().err


async def test_silence_and_status_through_the_api(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``silence add`` prints an id, ``query`` lists it, ``status`` shows it with the
    rules, ``expire`` ends it; a bad duration is a usage error that says so."""
    store = SQLiteStore(tmp_path / "api.db")
    await store.open()
    clock = SystemClock()
    silences = Silences(store, clock)
    async with httpx.AsyncClient() as http:
        watchdog = Watchdog(
            load_rules([tmp_path / "rules.yaml"]), SourceDeps(http=http, clock=clock), Metrics()
        )
        app = build_app(watchdog, None, silences=silences)
        async with serve(app) as srv:
            assert (
                await run(
                    "silence",
                    "add",
                    "rule=error-rate",
                    "target=~worker|frontend",
                    "--duration",
                    "2h",
                    "--comment",
                    "migrating",
                    "--author",
                    "bob",
                    "--url",
                    srv.url,
                )
                == 0
            )
            silence_id = capsys.readouterr().out.strip()
            assert await run("silence", "query", "--url", srv.url) == 0
            listed = capsys.readouterr().out
            assert silence_id in listed
            assert "target=~worker|frontend" in listed
            assert "by bob: migrating" in listed
            assert await run("status", "--url", srv.url) == 0
            status = capsys.readouterr().out
            assert "error-rate" in status
            assert "silences: 1" in status
            assert await run("silence", "expire", silence_id, "--url", srv.url) == 0
            assert capsys.readouterr().out.strip() == f"expired {silence_id}"
            assert await run("silence", "query", "-q", "--url", srv.url) == 0
            assert silence_id not in capsys.readouterr().out
            assert (
                await run(
                    "silence", "add", "--comment", "x", "--url", srv.url, "--duration", "soon"
                )
                == 2
            )
            assert "--duration: expected a duration" in capsys.readouterr().err

    await store.close()
