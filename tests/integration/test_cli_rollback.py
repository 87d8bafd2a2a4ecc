"""A person's ``rollback`` as they run it, beside a realistic history (v1, v2, and the
bad v3 live): it goes through the same verification and phases as an automatic one,
marks a version healthy only on a passed verification (never a dry run, never a
failed rollback), never goes back to a version rolled away from, and acts under a
silence (a silence holds the automatic path). All on loopback: the local Cloudflare
API, the notification receivers and a Prometheus whose answer the test sets."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.servers import PrometheusBehaviour, faulty_server
from watchdog.cli.main import main
from watchdog.demo.fakes.cloudflare import VALIDATION_CODE, FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import serve
from watchdog.store.base import EventRecord, SilenceRecord
from watchdog.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration

TOKEN = "cli-rollback-token-4b1c"
DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
RULES = """
version: 1
defaults: {{interval: 1s}}
sources:
  prom: {{type: prometheus, url: "{prom}"}}
signals:
  error_rate: {{source: prom, query: "e", unit: ratio}}
targets:
  worker: {{type: cloudflare-worker, script: api}}
notifiers:
  slack: {{type: slack, webhook_secret: slack_webhook}}
rules:
  - {{name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     rollback: [worker]}}
after_rollback:
  verify: [{{signal: error_rate, below: 0.5%, within: 3s}}]
  stable_for: 1s
"""


@dataclass
class Env:
    cf: FakeCloudflare
    prom: PrometheusBehaviour
    receivers: Receivers
    state: Path
    versions: dict[str, str]


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    now = time.time()
    cf = FakeCloudflare(token=TOKEN, account_id="acct")
    versions = {}
    for name, age in (("v1", 2 * 86400), ("v2", 86400), ("v3", 600)):
        versions[name] = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(versions[name], 100.0)], f"deploy {name}", created_on=now - age)
    prom = PrometheusBehaviour(value=0.001)
    receivers = Receivers()
    async with (
        serve(cf.router) as cf_srv,
        serve(receivers) as rx_srv,
        faulty_server(prom) as prom_srv,
    ):
        (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES).format(prom=prom_srv.url))
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
        yield Env(cf, prom, receivers, tmp_path / "state.db", versions)


async def run(*argv: str) -> int:
    """The CLI runs its own event loop: give it a thread, as a shell would a process."""
    return await asyncio.to_thread(main, list(argv))


async def events(env: Env) -> list[EventRecord]:
    store = SQLiteStore(env.state)
    await store.open()
    try:
        found: list[EventRecord] = []
        for incident in reversed(await store.recent_incidents(10)):
            found += await store.events(incident.id)
        return found
    finally:
        await store.close()


def ledger_line(out: str, version: str) -> str:
    """The `targets` ledger line of ``version``."""
    (line,) = [x for x in out.splitlines() if x.strip().startswith(version)]
    return line


async def test_a_manual_rollback_is_verified_before_it_is_resolved(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 2 (real rollback): the new live version is marked healthy only by a
    passed verification, and "resolved" comes after verification and the stable
    period, not ~20 ms after the rollback. Then defect 1 through the CLI: a second
    rollback goes to v1, never back to v3."""
    v1, v2, v3 = (env.versions[v] for v in ("v1", "v2", "v3"))
    assert await run("rollback", "worker", "--reason", "bad v3", "--author", "alice") == 0
    out = capsys.readouterr().out
    assert f"✅ rollback worker: deployed version {v2}" in out
    assert "✅ verify error_rate:below: passed" in out
    assert "verified and stable" in out
    kinds = [e.kind for e in await events(env)]
    assert kinds.index("rollback_finished") < kinds.index("verification") < kinds.index("resolved")
    phases = [e.data["phase"] for e in await events(env) if e.kind == "phase"]
    assert phases[-3:] == ["verifying", "monitoring", "resolved"]
    assert await run("targets") == 0
    targets = capsys.readouterr().out
    assert "verified healthy: verification passed after the rollback" in ledger_line(targets, v2)
    assert await run("rollback", "worker", "--reason", "v2 bad too") == 0
    capsys.readouterr()
    assert env.cf.live_versions("api") == [(v1, 100.0)]
    assert await run("targets") == 0
    targets = capsys.readouterr().out
    assert "rolled away from" in ledger_line(targets, v3)
    assert "rolled away from" in ledger_line(targets, v2)
    assert "rollback to: none" in targets


async def test_a_manual_rollback_that_does_not_help_escalates_and_marks_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """The errors stay at 8 % after the rollback: not verified, escalated, exit 1, no
    "resolved", and v2 is not verified healthy."""
    env.prom.value = 0.08
    assert await run("rollback", "worker", "--reason", "bad v3") == 1
    out = capsys.readouterr().out
    assert "❌ verify error_rate:below: failed" in out
    assert "❌ escalated" in out
    assert "resolved" not in [e.kind for e in await events(env)]
    assert await run("targets") == 0
    line = ledger_line(capsys.readouterr().out, env.versions["v2"])
    assert "not verified healthy" in line


async def test_a_dry_run_marks_nothing_healthy(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 2 (dry run): after ``rollback --dry-run`` the bad live v3 is not healthy.
    When v4 ships, v3 is the target only as "not verified", never "seen healthy"."""
    assert await run("rollback", "worker", "--reason", "bad v3", "--dry-run") == 0
    assert "🟡 rollback worker" in capsys.readouterr().out
    assert not [c for c in env.cf.calls if c.method != "GET"]
    env.cf.publish("api", "v4")
    assert await run("targets") == 0
    out = capsys.readouterr().out
    assert "seen healthy" not in out
    assert "not verified healthy" in ledger_line(out, env.versions["v3"])


async def test_a_failed_manual_rollback_marks_nothing_healthy(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 15: Cloudflare refuses the rollback; exit 1, and the bad v3 is not made
    healthy (so the next rollback, after v4, does not prefer it as such)."""
    env.cf.refuse("POST", DEPLOYMENTS, VALIDATION_CODE, "binding no longer exists", times=None)
    assert await run("rollback", "worker", "--reason", "bad v3") == 1
    assert "❌ rollback worker" in capsys.readouterr().out
    env.cf.publish("api", "v4")
    assert await run("targets") == 0
    out = capsys.readouterr().out
    assert "seen healthy" not in out
    assert "not verified healthy" in ledger_line(out, env.versions["v3"])


async def test_a_manual_rollback_acts_under_a_silence(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 14: under an active silence a person's explicit rollback acts (the
    silence holds the automatic path) and says which silence it went past; before,
    it did nothing, printed a check mark and exited 0."""
    store = SQLiteStore(env.state)
    await store.open()
    now = time.time()
    await store.save_silence(
        SilenceRecord("s1", [], now - 60, now + 3600, "bob", "migrating the database")
    )
    await store.close()
    assert await run("rollback", "worker", "--reason", "bad v3") == 0
    out = capsys.readouterr().out
    assert "the silence holds only automatic ones" in out
    assert "bob" in out
    assert env.cf.live_versions("api") == [(env.versions["v2"], 100.0)]
    assert "silence_overridden" in [e.kind for e in await events(env)]


async def test_targets_and_rollback_print_remote_text_escaped(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect f: a deploy message and a Cloudflare error message are outside text; a
    raw ESC in them could rewrite the operator's terminal (OSC 52 writes the
    clipboard). ``targets`` and ``rollback`` print them escaped."""
    env.cf.publish("api", "v4 \x1b]52;c;ZXZpbA==\x07 \x1b[2J")
    assert await run("targets") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\\x1b]52" in out
    env.cf.refuse("POST", DEPLOYMENTS, VALIDATION_CODE, "no \x1b[31mred\x1b[0m", times=None)
    assert await run("rollback", "worker", "--reason", "bad \x1b[2J v4") == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\\x1b[31m" in out


async def test_a_manual_rollbacks_baseline_check_says_where_its_goal_comes_from(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect c: the CLI process has no samples from before the episode, so a
    ``baseline: true`` check had no baseline and escalated whatever the evidence.
    Its goal is the signal's rule threshold (never laxer), and the verdict says so."""
    rules = env.state.parent / "rules.yaml"
    _rewrite(
        rules,
        "verify: [{signal: error_rate, below: 0.5%, within: 3s}]",
        "verify: [{signal: error_rate, baseline: true, within: 3s}]",
    )
    assert await run("rollback", "worker", "--reason", "bad v3") == 0
    out = capsys.readouterr().out
    assert "✅ verify error_rate:baseline: passed" in out
    assert "rule's threshold" in out
    assert "no samples from before" in out


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))
