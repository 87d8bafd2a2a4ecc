"""A whole run (the demo's bad deploy through the real daemon, logs at debug) never
prints a token, key or webhook URL: not in logs, not in the program's output."""

from __future__ import annotations

import logging

import pytest
import structlog

from watchdog import logs
from watchdog.demo.fakes.receivers import Receivers
from watchdog.demo.main import run_demo
from watchdog.demo.scenarios import TOKEN


@pytest.mark.integration
async def test_full_run_never_shows_a_secret(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Secrets of every kind stay out of stdout, stderr and stdlib log records (the
    test fails if httpx's URL logging is let through at INFO)."""
    logs.configure("json", "debug", cache=False)
    caplog.set_level(logging.DEBUG)
    try:
        assert await run_demo("bad-deploy", virtual_time=True) == 0
    finally:
        structlog.reset_defaults()
    captured = capsys.readouterr()
    slack_path = Receivers.slack_webhook_url("").removeprefix("/slack")
    secrets = [
        TOKEN,
        "demo-routing-key-0123456789abcdef",
        "demo-statuspage-key",
        "admin-token",
        slack_path,
        "XXXXXXXXXXXXXXXXXXXXXXXX",
    ]
    haystacks = {
        "stdout": captured.out,
        "stderr": captured.err,
        "stdlib logs": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
    }
    assert "rolled back" in captured.out or "rollback_finished" in captured.out
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {where}"
