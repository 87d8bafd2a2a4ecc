"""Slack: the Block Kit message and how the notifier treats Slack's answers."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from tests.notify_helpers import ACTIONS, LINKS, ROLLED_BACK, SLACK_TOKEN, event, in_process
from watchdog.actions.notify.event import EventKind
from watchdog.actions.notify.slack import SlackNotifier, build_message, escape
from watchdog.demo.fakes.receivers import Receivers


def _all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def test_message_says_rule_value_threshold_window_samples_and_versions() -> None:
    """The blocks carry everything a person needs to judge the rollback."""
    message = build_message(
        event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK, actions=ACTIONS, links=LINKS)
    )
    text = _all_text(message)
    for needle in (
        "error-rate",
        "7.2%",
        "5%",
        "5m, 21 samples",
        "v42-bad → v41-good",
        "dep-new → dep-old",
        "✅ rollback worker",
        "❌ purge zone",
        "<https://grafana.example.com/d/errors|Grafana>",
    ):
        assert needle in text, needle
    assert message["blocks"][0]["type"] == "header"
    assert message["text"].startswith("⏪ [inc-20260801-error-rate] Rolled back")


def test_mrkdwn_is_escaped_but_the_fallback_text_is_not() -> None:
    """ "7.2% > 5%" must reach Slack as &gt; inside mrkdwn blocks."""
    message = build_message(event())
    assert "7.2% &gt; 5%" in message["blocks"][1]["text"]["text"]
    assert "7.2% > 5%" in message["text"]
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_rolling_back_carries_the_runbook_internal_template() -> None:
    """ROLLBACK IN PROGRESS with Component, Reason, Impact, ETA and Status Page."""
    text = _all_text(build_message(event(EventKind.ROLLING_BACK)))
    assert "*ROLLBACK IN PROGRESS*" in text
    for label in ("Component:", "Reason:", "Impact:", "ETA: &lt; 5 minutes", "Status Page:"):
        assert label in text, label


def test_long_content_is_cut_to_block_kit_limits() -> None:
    """A huge message still fits Slack's limits (header 150, section 3000)."""
    message = build_message(event(message="x" * 10_000, rule="r" * 90))
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    for block in message["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000


async def test_receiver_accepts_the_message_as_valid_block_kit() -> None:
    """The local Slack (which enforces Block Kit limits) answers ok."""
    async with in_process() as env:
        url = SecretStr(Receivers.slack_webhook_url(env.url, SLACK_TOKEN))
        notifier = SlackNotifier("slack", url, env.http, env.clock)
        result = await notifier.send(
            event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK, message="y" * 5000)
        )
    assert result.ok, result.detail
    assert result.detail == "posted to Slack"
    assert len(env.receivers.slack.messages) == 1


async def test_invalid_payload_is_permanent() -> None:
    """A 400 invalid_payload is reported, not retried."""
    async with in_process() as env:
        env.receivers.slack.fail_next(400, "invalid_payload")
        url = SecretStr(Receivers.slack_webhook_url(env.url, SLACK_TOKEN))
        result = await SlackNotifier("slack", url, env.http, env.clock).send(event())
    assert not result.ok
    assert "HTTP 400: invalid_payload" in result.detail
    assert len(env.receivers.slack.requests) == 1
    assert env.clock.sleeps == []


async def test_dry_run_returns_the_body_without_the_url() -> None:
    """Dry-run posts nothing and shows the exact body, never the secret URL."""
    async with in_process() as env:
        url = SecretStr(Receivers.slack_webhook_url(env.url, SLACK_TOKEN))
        result = await SlackNotifier("slack", url, env.http, env.clock).send(event(), dry_run=True)
    assert result.would
    assert result.ok
    assert result.request is not None
    assert result.request["body"] == build_message(event())
    assert SLACK_TOKEN not in repr(result)
    assert env.receivers.slack.requests == []
