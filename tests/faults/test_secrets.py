"""Fault matrix, secrets: a few faulty rows run back to back with the daemon's own
logging at debug level and everything captured (stdout, stderr, stdlib log records,
every notification received, the incident timeline and journal, the status API and
/metrics). No API token, key or webhook URL appears anywhere, even in the error
messages the faults produce."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.scenarios.support import BAD, HEALTHY, breach, calm, recover
from tests.world import PD_KEY, SLACK_TOKEN, SP_KEY, TOKEN, World, world
from watchdog import logs
from watchdog.api.app import status_snapshot

DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
PAGES_ROLLBACK = "/accounts/acct/pages/projects/site/deployments/{id}/rollback"


@pytest.fixture
def production_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Puts the root logger back after the test set the daemon's logging up (it
    replaces the handlers)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield caplog
    finally:
        root.handlers, root.level = handlers, level


async def everything_recorded(w: World) -> dict[str, str]:
    """What the watchdog wrote or sent, as text per place."""
    store = w.runtime.store
    timeline, journal = [], []
    for incident in await store.recent_incidents(50):
        timeline += [json.dumps(e.data, default=str) for e in await store.events(incident.id)]
        journal += [
            json.dumps([a.intent, a.outcome], default=str) for a in await store.actions(incident.id)
        ]
        timeline.append(incident.state_json)
    receivers = w.receivers
    pagerduty = []
    for event in receivers.pagerduty.events:
        # The routing key is the address of a PagerDuty event: it must be in the body.
        assert event.pop("routing_key") == PD_KEY
        pagerduty.append(json.dumps(event))
    status = status_snapshot(w.runtime.watchdog) | w.runtime.status_extra()
    metrics = w.runtime.watchdog.metrics.registry
    return {
        "incident timeline": "\n".join(timeline),
        "action journal": "\n".join(journal),
        "slack messages": json.dumps(receivers.slack.messages),
        "pagerduty events": "\n".join(pagerduty),
        "statuspage": json.dumps(receivers.statuspage.incidents, default=str),
        "status API": json.dumps(status, default=str),
        "metrics": generate_latest(metrics).decode(),
    }


async def test_faulty_rows_never_show_a_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    production_logging: pytest.LogCaptureFixture,
) -> None:
    """Cloudflare 429 and a WAF page, Slack 500, PagerDuty 429, a rollback that does
    not help (escalation) and a Prometheus that is down: no secret in any output."""
    logs.configure("json", "debug", cache=False)  # on the stderr capsys captures
    logging.getLogger().addHandler(production_logging.handler)
    production_logging.set_level(logging.DEBUG)
    async with world(tmp_path) as w:
        w.cloudflare.rate_limit("POST", DEPLOYMENTS, retry_after="3")
        w.cloudflare.waf("POST", PAGES_ROLLBACK)
        w.receivers.slack.fail_next(500, times=3)
        w.receivers.pagerduty.fail_next(429, times=2, retry_after=2)
        await calm(w)
        await breach(w)
        await w.feed("error_rate", [BAD] * 10, also=HEALTHY)  # not verified: escalate
        await w.feed("error_rate", [None] * 25, also=HEALTHY)  # Prometheus down: blind
        await recover(w)
        assert w.worker_rollbacks() == 2  # the 429, then the rollback
        recorded = await everything_recorded(w)
    captured = capsys.readouterr()
    places = {
        "stdout": captured.out,
        "stderr": captured.err,
        "stdlib logs": "\n".join(
            f"{r.getMessage()} {r.__dict__}" for r in production_logging.records
        ),
        **recorded,
    }
    assert "escalated" in captured.err or "escalated" in captured.out
    slack_url = w.runtime.settings.secret("slack_webhook")
    assert slack_url is not None
    secrets = {
        "Cloudflare token": TOKEN,
        "Slack webhook URL": slack_url.get_secret_value(),
        "Slack webhook token": SLACK_TOKEN,
        "PagerDuty routing key": PD_KEY,
        "Statuspage key": SP_KEY,
    }
    for where, text in places.items():
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} leaked into {where}"
