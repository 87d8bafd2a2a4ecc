"""Sentry: a tagged message per event, only when Sentry is initialised."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from tests.notify_helpers import event
from watchdog.actions.notify.event import EventKind
from watchdog.actions.notify.sentry_event import SentryNotifier


class RecordingTransport(Transport):
    """Keeps every event the SDK would have sent; sends nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(dict(event))


@pytest.fixture
def sentry_events() -> Iterator[list[dict[str, Any]]]:
    """A live Sentry client with a recording transport, removed after the test."""
    transport = RecordingTransport()
    client = sentry_sdk.Client(
        dsn="https://public@sentry.invalid/1",
        transport=transport,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    scope = sentry_sdk.get_global_scope()
    scope.set_client(client)
    try:
        yield transport.events
    finally:
        scope.set_client(None)
        client.close()


async def test_without_sentry_it_says_not_configured() -> None:
    """No SENTRY_DSN: ok, and the detail says why nothing was sent."""
    assert not sentry_sdk.is_initialized()
    result = await SentryNotifier("sentry").send(event())
    assert result.ok
    assert result.detail == "sentry not configured"


async def test_event_is_tagged_with_rule_severity_incident_and_targets(
    sentry_events: list[dict[str, Any]],
) -> None:
    """The Sentry event can be filtered by rule, severity, incident and targets."""
    result = await SentryNotifier("sentry").send(event(EventKind.NOT_VERIFIED))
    assert result.ok
    assert result.detail == "sent a Sentry event"
    [captured] = sentry_events
    assert captured["tags"] == {
        "rule": "error-rate",
        "severity": "critical",
        "incident": "inc-20260801-error-rate",
        "targets": "worker,frontend",
        "event": "not_verified",
    }
    assert captured["level"] == "fatal"
    assert "Rollback did NOT help" in captured["message"]
    assert result.data["sentry_event_id"] == captured["event_id"]


async def test_resolved_is_informational(sentry_events: list[dict[str, Any]]) -> None:
    """An all-clear is level info whatever the severity."""
    await SentryNotifier("sentry").send(event(EventKind.RESOLVED))
    assert sentry_events[0]["level"] == "info"


async def test_dry_run_captures_nothing(sentry_events: list[dict[str, Any]]) -> None:
    """Dry-run returns the message and tags it would send."""
    result = await SentryNotifier("sentry").send(event(), dry_run=True)
    assert result.would
    assert result.request is not None
    assert result.request["tags"]["rule"] == "error-rate"
    assert sentry_events == []
