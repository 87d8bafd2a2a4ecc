"""Fault matrix, notifiers down: Slack answering 500 and PagerDuty answering 429
while an incident runs. The rollback still happens, and without waiting for the
notifications; each failed delivery is retried, then recorded on the incident's
timeline (and counted); once the receiver is back, later notifications arrive."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from tests.faults.support import log_text
from tests.scenarios.support import BAD, HEALTHY, breach, calm, pagerduty_triggers, recover
from tests.world import World, world
from watchdog.store.base import EventRecord

ATTEMPTS = 4  # watchdog.notify.base.NOTIFY_POLICY.max_attempts


def actions_metric(w: World, action: str, outcome: str) -> float:
    registry = w.runtime.watchdog.metrics.registry
    value = registry.get_sample_value(
        "watchdog_actions_total", {"action": action, "outcome": outcome}
    )
    return value or 0.0


async def notify_events(w: World, target: str) -> list[EventRecord]:
    return [
        e
        for e in await w.events("action")
        if e.data["action"] == "notify" and e.data["target"] == target
    ]


async def test_slack_down_never_blocks_the_rollback(tmp_path: Path) -> None:
    """Slack answers 500 to every post: the rollback is journalled the moment the
    incident opens (no notification retry in front of it), each Slack message is
    tried ``ATTEMPTS`` times and recorded as failed with the reason, the incident
    still verifies; when Slack is back, the all-clear arrives."""
    async with world(tmp_path) as w:
        await calm(w)
        w.receivers.slack.fail_next(500, times=1000)
        with capture_logs() as logs:
            await breach(w)
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "verifying"
        # The rollback started while the first Slack message was still being retried
        # (the timeline is in the order things happened).
        timeline = [(e.kind, e.data) for e in await w.runtime.store.events(incident.id)]
        started = next(i for i, (kind, _) in enumerate(timeline) if kind == "rollback_started")
        first_failure = next(
            i
            for i, (kind, data) in enumerate(timeline)
            if kind == "action" and data["target"] == "slack" and not data["ok"]
        )
        assert started < first_failure, timeline
        # Retried, then recorded with why; the log says which notifier and why.
        failed = [e for e in await notify_events(w, "slack") if not e.data["ok"]]
        assert failed
        assert all("HTTP 500" in e.data["detail"] for e in failed)
        assert len(w.receivers.slack.requests) == ATTEMPTS * len(failed)
        assert "slack notifier 'slack': HTTP 500" in log_text(logs)
        assert actions_metric(w, "notify", "failure") >= len(failed)
        assert actions_metric(w, "rollback", "success") == 2

        w.receivers.slack.faults = type(w.receivers.slack.faults)()  # Slack is back
        await recover(w)
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "resolved"
        assert any("Resolved" in text or "resolved" in text for text in w.slack_texts())
        assert w.worker_rollbacks() == 1


async def test_pagerduty_429_is_retried_after_its_wait(tmp_path: Path) -> None:
    """The rollback did not help, so on-call is paged; PagerDuty throttles the first
    two tries (429, Retry-After 5 s): the page is delivered on the third, recorded
    as sent, and nothing is rolled back a second time."""
    async with world(tmp_path) as w:
        await calm(w)
        w.receivers.pagerduty.fail_next(429, times=2, retry_after=5)
        with capture_logs() as logs:
            await breach(w)
            await w.feed("error_rate", [BAD] * 12, also=HEALTHY)  # still failing: escalate
        assert w.worker_rollbacks() == 1
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "escalated"
        (page,) = pagerduty_triggers(w)
        assert "did not help" in page["payload"]["custom_details"]["message"]
        assert [r.status for r in w.receivers.pagerduty.requests] == [429, 429, 202]
        (sent,) = await notify_events(w, "oncall")
        assert sent.data["ok"] is True
        retries = [e for e in logs if e["event"] == "retrying" and "pagerduty" in e["api"]]
        assert len(retries) == 2
        assert all("HTTP 429" in e["reason"] for e in retries)
        await recover(w)
        assert w.worker_rollbacks() == 1


async def test_pagerduty_throttling_past_the_retries_is_recorded(tmp_path: Path) -> None:
    """PagerDuty throttles every try: the page fails after ``ATTEMPTS`` tries and is
    recorded as failed on the incident; the escalation ladder goes on (level 2 is
    posted to Slack ten minutes later) and the incident still closes."""
    async with world(tmp_path) as w:
        await calm(w)
        w.receivers.pagerduty.fail_next(429, times=1000, retry_after=1)
        await breach(w)
        await w.feed("error_rate", [BAD] * 12, also=HEALTHY)
        (failed,) = await notify_events(w, "oncall")
        assert failed.data["ok"] is False
        assert "HTTP 429" in failed.data["detail"]
        assert len(w.receivers.pagerduty.requests) == ATTEMPTS
        assert actions_metric(w, "notify", "failure") >= 1
        await w.feed("error_rate", [BAD] * 40, also=HEALTHY)  # ten more minutes
        assert any("Escalated to level 2" in t for t in w.slack_texts()), w.slack_texts()
        await recover(w)
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "resolved"
        assert w.worker_rollbacks() == 1
