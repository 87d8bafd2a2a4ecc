"""One preflight, ``rollback-watchdog check config`` (issue 10, defect 10): every missing
secret and every rules problem at once, exit 1; the daemon refuses to start with the
same list; an empty token is a config error at start, not "connection failed" after
retries. And no password of ``WATCHDOG_STATE`` in its output (issue 11)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog

from watchdog.cli.main import main
from watchdog.errors import ConfigError
from watchdog.service import run_service
from watchdog.settings import load_settings

RULES = """
version: 1
sources:
  app: {type: scrape, url: "http://127.0.0.1:9/metrics", timeout: 2s}
signals:
  error_rate: {source: app, kind: error_ratio, metric: http_requests_total,
               status_label: code, error_status: "5.."}
targets:
  worker: {type: cloudflare-worker, script: api}
purges:
  app-cache: {type: app-admin, url: "http://127.0.0.1:9/api/admin/cache"}
notifiers:
  slack: {type: slack, webhook_secret: slack_webhook}
  oncall: {type: pagerduty, routing_key_secret: pagerduty_routing_key}
notify: [slack]
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, min_requests: 10,
     severity: critical, rollback: [worker]}
"""
BROKEN_RULE = """
  - {name: slow, signal: no_such_signal, above: 5s, for: 5m, severity: critical}
"""
MISSING = ("CLOUDFLARE_API_TOKEN", "slack_webhook", "pagerduty_routing_key", "app_admin_token")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: the rules above, an empty secrets directory."""
    for name in list(__import__("os").environ):
        if name.startswith(("WATCHDOG_", "CLOUDFLARE_", "SENTRY_")):
            monkeypatch.delenv(name)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    (tmp_path / "secrets").mkdir()
    monkeypatch.setenv("WATCHDOG_RULES", str(rules))
    monkeypatch.setenv("WATCHDOG_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("WATCHDOG_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct")
    return rules


def test_check_config_lists_every_missing_secret_and_exits_1(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "config"]) == 1
    err = capsys.readouterr().err
    for name in MISSING:
        assert name in err, err
    assert "4 problem(s)" in err


def test_check_config_lists_rules_problems_and_secrets_together(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text(RULES + BROKEN_RULE)
    assert main(["check", "config"]) == 1
    err = capsys.readouterr().err
    assert "no_such_signal" in err
    for name in MISSING:
        assert name in err, err


def test_check_config_passes_when_everything_is_there(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = env.parent / "secrets"
    for name in ("slack_webhook", "pagerduty_routing_key", "app_admin_token"):
        (secrets / name).write_text(f"value-of-{name}\n")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "cf-token")
    assert main(["check", "config"]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out
    assert "value-of-" not in out  # secrets by name only
    assert "slack_webhook" in out


def test_an_empty_secret_is_a_problem_not_a_value(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = env.parent / "secrets"
    for name in ("slack_webhook", "pagerduty_routing_key"):
        (secrets / name).write_text("x\n")
    (secrets / "app_admin_token").write_text("\n")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "cf-token")
    assert main(["check", "config"]) == 1
    assert "app_admin_token" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["environment", "secrets directory"])
def test_an_empty_cloudflare_token_is_a_config_error(tmp_path: Path, where: str) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    env = {"WATCHDOG_SECRETS_DIR": str(secrets)}
    if where == "environment":
        env["CLOUDFLARE_API_TOKEN"] = ""
    else:
        (secrets / "cloudflare_api_token").write_text("\n")
    with pytest.raises(ConfigError, match="CLOUDFLARE_API_TOKEN: set but empty"):
        load_settings(env)


async def test_the_daemon_refuses_to_start_with_every_problem_at_once(env: Path) -> None:
    settings = load_settings(None, listen="127.0.0.1:0")
    with structlog.testing.capture_logs() as logs:
        assert await run_service(settings) == 1
    refusals = [line for line in logs if line["event"] == "cannot start"]
    assert len(refusals) == 1, logs
    text = str(refusals[0])
    for name in MISSING:
        assert name in text


def test_check_config_never_prints_the_state_password(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATCHDOG_STATE", "postgresql://watchdog:hunter2@db.internal:5432/wd")
    main(["check", "config"])
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
    assert "postgresql://watchdog:***@db.internal:5432/wd" in captured.out


def test_logs_never_carry_a_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    from watchdog import logs

    logs.configure("json", "info", cache=False)
    structlog.get_logger("t").error("cannot connect", url="postgresql://u:s3cret@h/db")
    logging.getLogger("lib").error("dsn postgresql://u:s3cret@h/db failed")
    err = capsys.readouterr().err
    assert "s3cret" not in err
    assert "postgresql://u:***@h/db" in err


def test_a_bad_setting_and_the_rules_problems_are_listed_together(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_text(RULES + BROKEN_RULE)
    monkeypatch.setenv("WATCHDOG_LISTEN", "nowhere")
    assert main(["check", "config"]) == 1
    err = capsys.readouterr().err
    assert "WATCHDOG_LISTEN" in err
    assert "no_such_signal" in err


async def test_a_reload_lists_every_missing_secret_at_once(tmp_path: Path) -> None:
    """Rules edited to need two new secrets: the reload fails naming both (the old
    rules stay), not one per attempt."""
    from tests.world import world

    async with world(tmp_path) as w:
        rules = tmp_path / "rules.yaml"
        text = rules.read_text().replace(
            "notifiers:\n",
            "notifiers:\n  hook: {type: webhook}\n  page2: {type: pagerduty, "
            "routing_key_secret: cto_routing_key}\n",
        )
        rules.write_text(text)
        assert await w.runtime.reload() is False
        error = w.runtime.watchdog.last_reload_error or ""
    for name in ("webhook_url", "webhook_hmac_key", "cto_routing_key"):
        assert name in error, error


def test_a_flow_source_needs_the_cloudflare_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: a flow source reads the Worker's deployments to find the split."""
    for name in list(__import__("os").environ):
        if name.startswith(("WATCHDOG_", "CLOUDFLARE_", "SENTRY_")):
            monkeypatch.delenv(name)
    example = Path(__file__).resolve().parents[2] / "rules" / "examples" / "canary-flow.yaml"
    monkeypatch.setenv("WATCHDOG_RULES", str(example))
    monkeypatch.setenv("WATCHDOG_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("WATCHDOG_STATE", str(tmp_path / "state.db"))
    assert main(["check", "config"]) == 1
    err = capsys.readouterr().err
    assert "CLOUDFLARE_API_TOKEN: not set (needed by source journey, target worker)" in err
