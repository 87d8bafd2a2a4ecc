"""Statuspage: one public incident per watchdog incident, walked through the phases."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.notify_helpers import COMPONENT_ID, PAGE_ID, STATUSPAGE_KEY, Served, event, in_process
from watchdog.actions.notify.event import EventKind
from watchdog.actions.notify.statuspage import StatuspageNotifier, component_status
from watchdog.demo.fakes.receivers import Receivers


def _notifier(env: Served, key: str = STATUSPAGE_KEY, **kwargs: object) -> StatuspageNotifier:
    return StatuspageNotifier(
        "statuspage",
        PAGE_ID,
        SecretStr(key),
        env.http,
        env.clock,
        component_id=COMPONENT_ID,
        url=Receivers.statuspage_url(env.url),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("phase", "severity", "status"),
    [
        ("investigating", "critical", "major_outage"),
        ("identified", "critical", "major_outage"),
        ("investigating", "high", "partial_outage"),
        ("monitoring", "critical", "degraded_performance"),
        ("resolved", "critical", "operational"),
    ],
)
def test_component_status_follows_phase_and_severity(
    phase: str, severity: str, status: str
) -> None:
    """Outage while investigating/identified, degraded while monitoring, then operational."""
    assert component_status(phase, severity) == status  # type: ignore[arg-type]


async def test_first_event_further_along_creates_investigating_then_moves_on() -> None:
    """A first event at "identified" still opens as investigating (runbook order)."""
    async with in_process() as env:
        result = await _notifier(env).send(event(EventKind.ROLLING_BACK))
    assert result.ok, result.detail
    [incident] = env.receivers.statuspage.incidents.values()
    assert [u["status"] for u in reversed(incident["incident_updates"])] == [
        "investigating",
        "identified",
    ]
    assert result.data["statuspage_incident_id"] == incident["id"]


async def test_same_phase_twice_adds_no_update() -> None:
    """rolled_back and verified both mean monitoring: one update, not two."""
    async with in_process() as env:
        notifier = _notifier(env)
        await notifier.send(event(EventKind.ROLLED_BACK))
        again = await notifier.send(event(EventKind.VERIFIED))
    assert again.ok
    [incident] = env.receivers.statuspage.incidents.values()
    assert len(incident["incident_updates"]) == 2  # investigating, monitoring


async def test_events_without_a_phase_leave_the_page_alone() -> None:
    """blind, notice and would_rollback never reach the public page."""
    async with in_process() as env:
        notifier = _notifier(env)
        for kind in (EventKind.BLIND, EventKind.NOTICE, EventKind.WOULD_ROLLBACK):
            result = await notifier.send(event(kind))
            assert result.ok
            assert result.data == {"skipped": True}
    assert env.receivers.statuspage.requests == []


async def test_resolving_an_unknown_incident_is_skipped() -> None:
    """Nothing was opened, so there is nothing to resolve (and nothing is created)."""
    async with in_process() as env:
        result = await _notifier(env).send(event(EventKind.RESOLVED))
    assert result.ok
    assert env.receivers.statuspage.requests == []


async def test_initial_mapping_patches_the_persisted_incident() -> None:
    """After a restart the persisted Statuspage id is reused, not a new incident."""
    async with in_process() as env:
        first = await _notifier(env).send(event(EventKind.OPENED))
        sp_id = first.data["statuspage_incident_id"]
        restarted = _notifier(env, incidents={"inc-20260801-error-rate": sp_id})
        result = await restarted.send(event(EventKind.RESOLVED))
    assert result.ok, result.detail
    assert len(env.receivers.statuspage.incidents) == 1
    assert env.receivers.statuspage.incidents[sp_id]["status"] == "resolved"
    assert restarted.incident_ids == {"inc-20260801-error-rate": sp_id}


async def test_rate_limit_420_is_retried() -> None:
    """Statuspage's historical 420 is a rate limit like 429."""
    async with in_process() as env:
        env.receivers.statuspage.fail_next(420, retry_after=3)
        result = await _notifier(env).send(event())
    assert result.ok, result.detail
    assert env.clock.sleeps == [3.0]


async def test_wrong_api_key_fails_without_leaking_it() -> None:
    """401 is reported as a failure; the key never appears in the result."""
    async with in_process() as env:
        result = await _notifier(env, key="wrong-key-123").send(event())
    assert not result.ok
    assert "HTTP 401" in result.detail
    assert "wrong-key-123" not in repr(result)


async def test_dry_run_lists_the_requests_it_would_make() -> None:
    """Dry-run shows the create and the PATCH, and sends nothing."""
    async with in_process() as env:
        result = await _notifier(env).send(event(EventKind.ROLLED_BACK), dry_run=True)
    assert result.would
    assert result.request is not None
    assert result.request["method"] == "POST"
    assert result.request["body"]["incident"]["status"] == "investigating"
    [then] = result.request["then"]
    assert then["method"] == "PATCH"
    assert then["body"]["incident"]["status"] == "monitoring"
    assert then["body"]["incident"]["components"] == {COMPONENT_ID: "degraded_performance"}
    assert env.receivers.statuspage.requests == []
