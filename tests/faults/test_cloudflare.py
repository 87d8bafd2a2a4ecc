"""Fault matrix, Cloudflare API: each fault injected into the local Cloudflare API
while a real breach goes through the whole incident path (decision, incident,
journal, playbook, verification, close). Every row asserts how many deployments the
watchdog created (one, or none where it cannot roll back), the incident's outcome
(resolved, or escalated with a reason a person can act on), the log line, the
decision counter, and that the incident closes once production is healthy again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.faults.support import log_text
from tests.scenarios.support import breach, calm, pagerduty_triggers, recover
from tests.world import World, world
from watchdog.incidents.state import load_state
from watchdog.store.base import ActionRecord, IncidentRecord

DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
WORKER_ONLY = """
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     min_requests: 100, rollback: [worker]}
"""


def created(w: World) -> int:
    """Worker deployments that took effect through the API (the watchdog's)."""
    return sum(1 for d in w.cloudflare.scripts["api"].deployments if d.source == "api")


def rollbacks_counted(w: World, outcome: str) -> float:
    """``watchdog_actions_total{action="rollback"}`` for one outcome."""
    registry = w.runtime.watchdog.metrics.registry
    value = registry.get_sample_value(
        "watchdog_actions_total", {"action": "rollback", "outcome": outcome}
    )
    return value or 0.0


def decisions(w: World, kind: str = "rollback") -> float:
    registry = w.runtime.watchdog.metrics.registry
    value = registry.get_sample_value(
        "watchdog_decisions_total", {"rule": "error-rate", "kind": kind}
    )
    return value or 0.0


async def only_incident(w: World) -> IncidentRecord:
    (incident,) = await w.runtime.store.recent_incidents()
    return incident


async def worker_row(w: World, incident_id: str) -> ActionRecord:
    (row,) = [
        a
        for a in await w.runtime.store.actions(incident_id)
        if a.kind == "rollback" and a.target == "worker"
    ]
    return row


async def resolves(w: World) -> IncidentRecord:
    """Production heals: the one incident closes (lost by nothing, stuck on nothing)."""
    await recover(w)
    incident = await only_incident(w)
    assert incident.phase == "resolved", incident
    assert incident.closed_at is not None
    assert w.runtime.manager.open == {}
    return incident


async def rolled_back_once(w: World, logs: Sequence[Mapping[str, Any]]) -> IncidentRecord:
    """The common ending of a transient fault: one deployment, journal done, resolved."""
    assert created(w) == 1
    assert w.worker_live() == [(w.versions["v2"], 100.0)]
    assert decisions(w) == 1
    assert rollbacks_counted(w, "failure") == 0
    assert rollbacks_counted(w, "success") == 2  # the Worker and the Pages project
    incident = await only_incident(w)
    row = await worker_row(w, incident.id)
    assert row.state == "done", row
    assert incident.phase == "verifying", incident
    await resolves(w)
    assert created(w) == 1
    assert "rollback_finished" in log_text(logs) or any(
        e.get("step") == "rollback_finished" for e in logs
    )
    return incident


async def test_429_with_retry_after_seconds(tmp_path: Path) -> None:
    """Create-deployment answers 429 with ``Retry-After: 7`` twice: the rollback waits
    7 s of (virtual) time each time, then succeeds; one deployment in total."""
    async with world(tmp_path) as w:
        w.cloudflare.rate_limit("POST", DEPLOYMENTS, retry_after="7", times=2)
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        await rolled_back_once(w, logs)
        assert w.cloudflare.count("POST", DEPLOYMENTS) == 3
        incident = await only_incident(w)
        row = await worker_row(w, incident.id)
        assert row.finished_at is not None
        assert row.finished_at - row.created_at >= 14.0  # both waits honoured
        retries = [e for e in logs if e["event"] == "retrying"]
        assert len(retries) == 2
        assert all("HTTP 429" in e["reason"] for e in retries)


async def test_429_with_retry_after_http_date(tmp_path: Path) -> None:
    """``Retry-After`` as an HTTP date 20 s ahead (on the watchdog's clock): honoured."""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w, 20)
        # The rule fires on the next sample, 15 s from now; the date is 20 s after that.
        when = datetime.fromtimestamp(w.now + 15 + 20, tz=UTC)
        w.cloudflare.rate_limit("POST", DEPLOYMENTS, retry_after=format_datetime(when, True))
        with capture_logs() as logs:
            await breach(w, 1)
        await rolled_back_once(w, logs)
        incident = await only_incident(w)
        row = await worker_row(w, incident.id)
        assert row.finished_at is not None
        assert row.finished_at - row.created_at >= 15.0
        assert w.cloudflare.count("POST", DEPLOYMENTS) == 2


async def test_5xx_then_success(tmp_path: Path) -> None:
    """The deployments list answers 503 twice and the create 502 once, each before
    doing anything: retried, one deployment."""
    async with world(tmp_path) as w:
        w.cloudflare.fail("GET", DEPLOYMENTS, 503, times=2)
        w.cloudflare.fail("POST", DEPLOYMENTS, 502, times=1)
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        await rolled_back_once(w, logs)
        retries = [e for e in logs if e["event"] == "retrying"]
        assert any("HTTP 503" in e["reason"] for e in retries)
        assert any("HTTP 502" in e["reason"] for e in retries)


async def test_timeout_after_the_deployment_was_created(tmp_path: Path) -> None:
    """Cloudflare creates the deployment and then stalls past the client's timeout: the
    retry re-reads, sees the rollback live and posts nothing more (no second rollback)."""
    async with world(tmp_path, http_timeout_s=0.5) as w:
        w.cloudflare.stall_after_apply("POST", DEPLOYMENTS, seconds=30.0)
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        await rolled_back_once(w, logs)
        assert w.cloudflare.count("POST", DEPLOYMENTS) == 1
        incident = await only_incident(w)
        row = await worker_row(w, incident.id)
        assert "already rolled back" in row.outcome["detail"]
        assert any("timed out" in e.get("reason", "") for e in logs if e["event"] == "retrying")


async def escalated_without_worker_rollback(w: World, reason: str) -> IncidentRecord:
    """No Worker deployment; the incident escalated with ``reason`` and on-call paged."""
    assert created(w) == 0
    assert w.worker_live() == [(w.versions["v3"], 100.0)]
    assert decisions(w) == 1
    incident = await only_incident(w)
    # A refused call is a failed rollback; "nothing to roll back to" never calls.
    assert rollbacks_counted(w, "failure") == (0 if "no version" in reason else 1)
    assert incident.phase == "escalated", incident
    assert reason in load_state(incident).escalation_why
    page = pagerduty_triggers(w)[-1]
    assert reason in page["payload"]["custom_details"]["message"]
    return incident


async def test_10220_secrets_changed_escalates(tmp_path: Path) -> None:
    """Cloudflare refuses the Worker rollback with 10220 (secrets changed) and the
    target's policy is ``refuse``: no Worker deployment, Pages still rolled back, the
    incident escalates saying which secret and that a human must decide."""
    async with world(tmp_path) as w:
        w.cloudflare.secrets_changed("api", names=("DB_PASSWORD",))
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        incident = await escalated_without_worker_rollback(w, "code 10220")
        assert "DB_PASSWORD" in load_state(incident).escalation_why
        assert w.pages_rollbacks() == 1
        assert "code 10220" in log_text(logs)
        row = await worker_row(w, incident.id)
        assert row.state == "failed"
        await resolves(w)
        assert created(w) == 0


async def test_waf_html_page_escalates(tmp_path: Path) -> None:
    """The create-deployment request meets Cloudflare's WAF (an HTML challenge page):
    not retried, no deployment, escalated saying the firewall blocked it."""
    async with world(tmp_path, rules=WORKER_ONLY) as w:
        w.cloudflare.waf("POST", DEPLOYMENTS, times=None)
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        await escalated_without_worker_rollback(w, "blocked by Cloudflare's firewall")
        assert w.cloudflare.count("POST", DEPLOYMENTS) == 1
        assert "WAF challenge" in log_text(logs)
        await resolves(w)


async def test_success_false_on_http_200_escalates(tmp_path: Path) -> None:
    """HTTP 200 with ``success: false``: an error, not a rollback; escalated with the
    Cloudflare error code and message."""
    async with world(tmp_path, rules=WORKER_ONLY) as w:
        w.cloudflare.success_false("POST", DEPLOYMENTS, 10013, "workers.api.error", times=None)
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        await escalated_without_worker_rollback(w, "Cloudflare error 10013: workers.api.error")
        assert "Cloudflare error 10013" in log_text(logs)
        await resolves(w)


async def test_no_earlier_full_version_escalates(tmp_path: Path) -> None:
    """Every earlier deployment was a gradual split (no version ever served 100 %):
    there is nothing to roll back to, so nothing is posted and the incident escalates
    saying so."""
    async with world(tmp_path, rules=WORKER_ONLY, history=False) as w:
        cf, now = w.cloudflare, w.now
        a = cf.upload_version("api", "a", created_on=now - 3 * 86400)
        b = cf.upload_version("api", "b", created_on=now - 2 * 86400)
        cf.deploy("api", [(a, 60.0), (b, 40.0)], "canary", created_on=now - 2 * 86400)
        bad = cf.upload_version("api", "bad", created_on=now - 700)
        cf.deploy("api", [(bad, 100.0)], "bad", created_on=now - 600)
        w.versions["v3"] = bad
        await calm(w)
        with capture_logs() as logs:
            await breach(w)
        await escalated_without_worker_rollback(w, "no version to roll back to")
        assert "no earlier deployment has a single version at 100%" in log_text(logs)
        assert w.cloudflare.count("POST", DEPLOYMENTS) == 0
        await resolves(w)
