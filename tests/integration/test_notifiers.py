"""Every notifier (and the GitHub dispatch target) against the local receivers on a
real loopback socket: exact bodies, retries, phases, dry-run, and no secret leaks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr, TypeAdapter
from structlog.testing import capture_logs

from tests.notify_helpers import (
    ACTIONS,
    ALL_SECRETS,
    COMPONENT_ID,
    GITHUB_TOKEN,
    LINKS,
    PAGE_ID,
    ROLLED_BACK,
    SLACK_TOKEN,
    T0,
    Served,
    event,
    served,
    settings,
)
from watchdog import logs
from watchdog.actions.github_workflow import GithubWorkflowTarget
from watchdog.actions.notify.base import Notifier
from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.actions.notify.registry import build_notifier
from watchdog.actions.notify.slack import build_message
from watchdog.actions.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    build_body,
    verify_signature,
)
from watchdog.demo.fakes.receivers import Receivers
from watchdog.model import ActionResult, RollbackPlan
from watchdog.rules.response import GithubWorkflowTargetSpec, NotifierSpec

SPEC = TypeAdapter(NotifierSpec)
PLAN = RollbackPlan("ci", "live", "previous", "error-rate: error_rate 7.2% > 5% for 5m")


def notifiers(env: Served, tmp_path: Path) -> dict[str, Notifier]:
    """The example rules file's notifiers, built through the registry, aimed at ``env``."""
    specs = {
        "slack": {"type": "slack", "webhook_secret": "slack_webhook"},
        "webhook": {"type": "webhook"},
        "oncall": {"type": "pagerduty", "url": Receivers.pagerduty_url(env.url)},
        "cto": {
            "type": "pagerduty",
            "routing_key_secret": "pagerduty_cto_routing_key",
            "url": Receivers.pagerduty_url(env.url),
        },
        "statuspage": {
            "type": "statuspage",
            "page_id": PAGE_ID,
            "component_id": COMPONENT_ID,
            "url": Receivers.statuspage_url(env.url),
        },
        "sentry": {"type": "sentry"},
    }
    conf = settings(tmp_path, env.url)
    return {
        name: build_notifier(name, SPEC.validate_python(raw), conf, env.http, env.clock)
        for name, raw in specs.items()
    }


def github_target(env: Served) -> GithubWorkflowTarget:
    spec = GithubWorkflowTargetSpec.model_validate(
        {
            "type": "github-workflow",
            "repo": "acme/pitchey",
            "api_url": Receivers.github_api_url(env.url),
        }
    )
    return GithubWorkflowTarget("ci", spec, SecretStr(GITHUB_TOKEN), env.http, env.clock)


# --- Slack ---------------------------------------------------------------------------


async def test_slack_gets_the_exact_block_kit_message(tmp_path: Path) -> None:
    """Slack receives the Block Kit body: rule, value, threshold, window, samples, from→to."""
    async with served() as env:
        sent = event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK, actions=ACTIONS, links=LINKS)
        result = await notifiers(env, tmp_path)["slack"].send(sent)
    assert result.ok, result.detail
    [message] = env.receivers.slack.messages
    assert message == json.loads(json.dumps(build_message(sent)))
    text = json.dumps(message, ensure_ascii=False)
    for needle in ("error-rate", "7.2% &gt; 5%", "5m, 21 samples", "v42-bad → v41-good"):
        assert needle in text, needle


async def test_slack_500_then_ok_is_retried(tmp_path: Path) -> None:
    """A 500 rollup_error is transient: the second attempt delivers."""
    async with served() as env:
        env.receivers.slack.fail_next(500, "rollup_error")
        result = await notifiers(env, tmp_path)["slack"].send(event())
    assert result.ok, result.detail
    assert [r.status for r in env.receivers.slack.requests] == [500, 200]
    assert len(env.clock.sleeps) == 1


async def test_slack_404_no_service_is_not_retried(tmp_path: Path) -> None:
    """A removed webhook (404 no_service) fails at once with a clear detail."""
    async with served() as env:
        env.receivers.slack.disabled.add(SLACK_TOKEN)
        result = await notifiers(env, tmp_path)["slack"].send(event())
    assert not result.ok
    assert result.detail == "slack notifier 'slack': HTTP 404: no_service"
    assert len(env.receivers.slack.requests) == 1
    assert env.clock.sleeps == []


async def test_slack_429_waits_for_retry_after(tmp_path: Path) -> None:
    """Slack's rate limit answer is honoured to the second."""
    async with served() as env:
        env.receivers.slack.fail_next(429, "rate_limited", retry_after=4)
        result = await notifiers(env, tmp_path)["slack"].send(event())
    assert result.ok, result.detail
    assert env.clock.sleeps == [4.0]


# --- webhook -------------------------------------------------------------------------


async def test_webhook_body_is_exact_and_hmac_verifies(tmp_path: Path) -> None:
    """The receiver checks the signature with the shared key; the body is schema v1."""
    async with served() as env:
        sent = event(EventKind.ESCALATED, escalation_level=2, escalation_name="DevOps Lead")
        result = await notifiers(env, tmp_path)["webhook"].send(sent)
    assert result.ok, result.detail
    [delivery] = env.receivers.webhook.deliveries
    assert delivery.signature_ok is True
    assert verify_signature(
        delivery.body,
        delivery.headers[SIGNATURE_HEADER.lower()],
        delivery.headers[TIMESTAMP_HEADER.lower()],
        "hmacKEYSECRET-0123456789",
        now=T0,
    )
    assert delivery.json() == json.loads(json.dumps(build_body(sent, int(T0))))
    assert delivery.headers["x-watchdog-timestamp"] == str(int(T0))
    assert delivery.json()["incident"]["escalation"] == {"level": 2, "name": "DevOps Lead"}


# --- PagerDuty -----------------------------------------------------------------------


async def test_pagerduty_trigger_then_resolve_with_the_same_dedup_key(tmp_path: Path) -> None:
    """opened triggers, resolved resolves the same alert."""
    async with served() as env:
        oncall = notifiers(env, tmp_path)["oncall"]
        opened = await oncall.send(event(EventKind.OPENED))
        resolved = await oncall.send(event(EventKind.RESOLVED))
    assert opened.ok, opened.detail
    assert resolved.ok, resolved.detail
    trigger, resolve = env.receivers.pagerduty.events
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    key = "rollback-watchdog/inc-20260801-error-rate"
    assert trigger["dedup_key"] == resolve["dedup_key"] == key
    assert opened.data["dedup_key"] == resolved.data["dedup_key"] == key
    assert env.receivers.pagerduty.alerts == {key: "resolved"}
    assert trigger["payload"]["severity"] == "critical"


async def test_pagerduty_429_is_honoured(tmp_path: Path) -> None:
    """A throttled event is sent again after Retry-After."""
    async with served() as env:
        env.receivers.pagerduty.fail_next(429, retry_after=2)
        result = await notifiers(env, tmp_path)["oncall"].send(event())
    assert result.ok, result.detail
    assert env.clock.sleeps == [2.0]
    assert [r.status for r in env.receivers.pagerduty.requests] == [429, 202]


# --- Statuspage ----------------------------------------------------------------------


async def test_statuspage_walks_the_runbook_phases(tmp_path: Path) -> None:
    """investigating → identified → monitoring → resolved, runbook wording, components."""
    async with served() as env:
        page = notifiers(env, tmp_path)["statuspage"]
        ids = set()
        for kind in (
            EventKind.OPENED,
            EventKind.ROLLING_BACK,
            EventKind.ROLLED_BACK,
            EventKind.RESOLVED,
        ):
            result = await page.send(event(kind))
            assert result.ok, result.detail
            ids.add(result.data["statuspage_incident_id"])
    [incident] = env.receivers.statuspage.incidents.values()
    assert ids == {incident["id"]}
    assert incident["name"] == "Elevated error rates"
    assert incident["status"] == "resolved"
    updates = [(u["status"], u["body"]) for u in reversed(incident["incident_updates"])]
    assert updates == [
        ("investigating", "We're investigating reports of elevated error rates."),
        ("identified", "We've identified the issue and are implementing a fix."),
        ("monitoring", "A fix has been implemented and we're monitoring the results."),
        ("resolved", "The issue has been resolved."),
    ]
    assert [s for _, s in env.receivers.statuspage.component_history] == [
        "major_outage",
        "major_outage",
        "degraded_performance",
        "operational",
    ]
    assert env.receivers.statuspage.components[COMPONENT_ID] == "operational"
    auth = {r.headers["authorization"] for r in env.receivers.statuspage.requests}
    assert auth == {"OAuth statuspageKEYSECRET-0123456789"}


# --- GitHub --------------------------------------------------------------------------


async def test_github_dispatch_body_and_no_retry_on_500() -> None:
    """The dispatch carries ref and the runbook inputs; a 500 is not repeated."""
    async with served() as env:
        target = github_target(env)
        ok = await target.rollback(PLAN)
        env.receivers.github.fail_next(500)
        second = RollbackPlan("ci", "live", "previous", "again")
        failed = await target.rollback(second)
    assert ok.ok, ok.detail
    assert env.receivers.github.requests[0].json() == {
        "ref": "main",
        "inputs": {"component": "both", "reason": PLAN.reason},
    }
    assert env.receivers.github.requests[0].path == (
        "/github/repos/acme/pitchey/actions/workflows/rollback.yml/dispatches"
    )
    assert not failed.ok
    assert failed.data == {"outcome_unknown": True}
    assert [r.status for r in env.receivers.github.requests] == [204, 500]


# --- dry run -------------------------------------------------------------------------


async def test_dry_run_sends_nothing_anywhere(tmp_path: Path) -> None:
    """Dry-run returns would-results from every notifier and the target; no request lands."""
    async with served() as env:
        results = [
            await notifier.send(event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK), dry_run=True)
            for notifier in notifiers(env, tmp_path).values()
        ]
        results.append(await github_target(env).rollback(PLAN, dry_run=True))
    assert all(r.ok for r in results)
    # PagerDuty has nothing to say about rolled_back; every other one would send.
    assert [r.would for r in results] == [True, True, False, False, True, True, True]
    receivers = env.receivers
    assert receivers.slack.requests == []
    assert receivers.webhook.deliveries == []
    assert receivers.pagerduty.requests == []
    assert receivers.statuspage.requests == []
    assert receivers.github.requests == []


# --- secrets -------------------------------------------------------------------------


@pytest.fixture
def production_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The daemon's own logging set-up at debug level, with caplog still attached."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(fmt="json", level="debug", cache=False)
    root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        structlog.reset_defaults()


async def _full_run(env: Served, tmp_path: Path) -> list[ActionResult]:
    """An incident from open to all-clear, with failures and retries on the way."""
    chosen = notifiers(env, tmp_path)
    results: list[ActionResult] = []
    receivers = env.receivers
    receivers.slack.fail_next(500, "rollup_error")
    receivers.pagerduty.fail_next(429, retry_after=1)
    receivers.statuspage.fail_next(420, retry_after=1)
    receivers.webhook.fail_next(503)
    receivers.github.fail_next(500)
    kinds: list[tuple[EventKind, dict[str, Any]]] = [
        (EventKind.OPENED, {}),
        (EventKind.ROLLING_BACK, {}),
        (EventKind.ROLLED_BACK, {"rolled_back": ROLLED_BACK, "actions": ACTIONS, "links": LINKS}),
        (EventKind.NOT_VERIFIED, {}),
        (EventKind.ESCALATED, {"escalation_level": 3, "escalation_name": "CTO"}),
        (EventKind.RESOLVED, {}),
    ]
    for kind, extra in kinds:
        sent: IncidentEvent = event(kind, **extra)
        for notifier in chosen.values():
            results.append(await notifier.send(sent))
            results.append(await notifier.send(sent, dry_run=True))
    # Failures whose details come from the remote: a removed Slack hook, a bad PagerDuty key.
    receivers.slack.fail_next(404, "no_service")
    results.append(await chosen["slack"].send(event()))
    bad_pd = build_notifier(
        "bad",
        SPEC.validate_python(
            {
                "type": "pagerduty",
                "routing_key_secret": "short_key",
                "url": Receivers.pagerduty_url(env.url),
            }
        ),
        settings(tmp_path, env.url, short_key="tooShortSECRET"),
        env.http,
        env.clock,
    )
    results.append(await bad_pd.send(event()))
    target = github_target(env)
    results.append(await target.rollback(PLAN))
    results.append(await target.rollback(RollbackPlan("ci", "live", "previous", "again")))
    results.append(await target.rollback(PLAN, dry_run=True))
    return results


async def test_no_secret_reaches_logs_or_results(
    tmp_path: Path, production_logging: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Across a whole incident (retries, failures, dry runs), no webhook URL path,
    routing key, API key, HMAC key or token appears in any log line or ActionResult."""
    async with served() as env:
        with capture_logs() as structured:
            results = await _full_run(env, tmp_path)
    assert any(not r.ok for r in results)  # the failure paths really ran
    assert any(entry.get("event") == "retrying" for entry in structured)  # and the retries
    assert not any("HTTP Request" in r.getMessage() for r in production_logging.records)
    printed = capsys.readouterr()
    haystacks = {
        "structlog": json.dumps(structured, default=str),
        "stdlib logging": "\n".join(
            f"{r.name} {r.getMessage()} {r.__dict__}" for r in production_logging.records
        ),
        "stdout/stderr": printed.out + printed.err,
        "results": "\n".join(repr(r) for r in results),
        "results as JSON": json.dumps([r.__dict__ for r in results], default=str),
    }
    for secret in (*ALL_SECRETS, "tooShortSECRET"):
        for where, text in haystacks.items():
            assert secret not in text, f"{secret!r} leaked into {where}"
    # The receivers did get the real secrets: the test would catch a leak.
    seen: Any = json.dumps([r.headers for r in env.receivers.statuspage.requests])
    assert "statuspageKEYSECRET-0123456789" in seen
