"""PagerDuty Events API v2: which events page, with what body."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.notify_helpers import LINKS, ROLLED_BACK, ROUTING_KEY, event, in_process
from watchdog.actions.notify.event import EventKind
from watchdog.actions.notify.pagerduty import PagerDutyNotifier, build_body, event_action
from watchdog.demo.fakes.receivers import Receivers


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info")],
)
def test_severity_maps_to_pagerduty_levels(severity: str, expected: str) -> None:
    """critical→critical, high→error, medium→warning, low→info."""
    body = build_body(event(severity=severity), ROUTING_KEY, "rollback-watchdog")
    assert body["payload"]["severity"] == expected


def test_which_events_trigger_and_which_resolve() -> None:
    """opened/escalated/not_verified trigger; verified/resolved resolve; others skip."""
    actions = {kind: event_action(event(kind)) for kind in EventKind}
    assert actions == {
        EventKind.OPENED: "trigger",
        EventKind.ESCALATED: "trigger",
        EventKind.NOT_VERIFIED: "trigger",
        EventKind.VERIFIED: "resolve",
        EventKind.RESOLVED: "resolve",
        EventKind.ROLLING_BACK: None,
        EventKind.ROLLED_BACK: None,
        EventKind.WOULD_ROLLBACK: None,
        EventKind.BLIND: None,
        EventKind.NOTICE: None,
    }


def test_trigger_body_is_complete() -> None:
    """A trigger carries summary, source, component, details and links."""
    body = build_body(
        event(EventKind.NOT_VERIFIED, rolled_back=ROLLED_BACK, links=LINKS), ROUTING_KEY, "src"
    )
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "rollback-watchdog/inc-20260801-error-rate"
    payload = body["payload"]
    assert "7.2% > 5%" in payload["summary"]
    assert payload["source"] == "src"
    assert payload["component"] == "worker, frontend"
    assert payload["class"] == "error_rate"
    assert payload["timestamp"].endswith("Z")
    assert payload["custom_details"]["window"] == "for 5m (21 samples)"
    assert payload["custom_details"]["rolled_back"][0] == "worker: v42-bad → v41-good"
    assert body["links"][0] == {"href": "https://grafana.example.com/d/errors", "text": "Grafana"}


def test_resolve_body_is_minimal() -> None:
    """A resolve needs only routing_key, dedup_key and event_action."""
    body = build_body(event(EventKind.RESOLVED), ROUTING_KEY, "src")
    assert body == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "rollback-watchdog/inc-20260801-error-rate",
    }


def test_summary_is_cut_to_1024_characters() -> None:
    """PagerDuty refuses a summary over 1024 characters."""
    body = build_body(event(rule="r" * 2000), ROUTING_KEY, "src")
    assert len(body["payload"]["summary"]) == 1024


async def test_invalid_event_is_permanent_and_not_retried() -> None:
    """A 400 "invalid event" (here: a bad routing key) fails at once."""
    async with in_process() as env:
        url = Receivers.pagerduty_url(env.url)
        notifier = PagerDutyNotifier("oncall", SecretStr("short"), env.http, env.clock, url=url)
        result = await notifier.send(event())
    assert not result.ok
    assert "HTTP 400" in result.detail
    assert "invalid event" in result.detail
    assert len(env.receivers.pagerduty.requests) == 1


async def test_skipped_kinds_send_nothing() -> None:
    """A rolled_back event has nothing to tell PagerDuty: ok, nothing sent."""
    async with in_process() as env:
        url = Receivers.pagerduty_url(env.url)
        notifier = PagerDutyNotifier("oncall", SecretStr(ROUTING_KEY), env.http, env.clock, url=url)
        result = await notifier.send(event(EventKind.ROLLED_BACK))
    assert result.ok
    assert result.data == {"skipped": True}
    assert env.receivers.pagerduty.requests == []


async def test_dry_run_redacts_the_routing_key() -> None:
    """Dry-run shows the exact body with the routing key replaced."""
    async with in_process() as env:
        url = Receivers.pagerduty_url(env.url)
        notifier = PagerDutyNotifier("oncall", SecretStr(ROUTING_KEY), env.http, env.clock, url=url)
        result = await notifier.send(event(), dry_run=True)
    assert result.would
    assert result.request is not None
    assert result.request["body"]["routing_key"] == "**********"
    assert result.request["body"]["event_action"] == "trigger"
    assert ROUTING_KEY not in repr(result)
    assert env.receivers.pagerduty.requests == []
