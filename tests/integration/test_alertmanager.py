"""Both ways through the real Alertmanager on loopback.

In: an alert posted to Alertmanager reaches the running watchdog through its webhook
(``POST /api/v1/alertmanager/<source>``, with the API token), the rule that names the
alert fires, and the resolution brings it back. Out: the incident that firing opened is
pushed to Alertmanager's ``/api/v2/alerts`` by the ``alertmanager`` notifier with its
labels, annotations and an ``endsAt`` a few re-sends ahead, re-sent while it lasts,
and gone from Alertmanager once the incident resolves."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import until
from tests.integration.alertmanager_fixture import (
    RunningAlertmanager,
    StartAlertmanager,
    alertmanager_binary,
    start_alertmanager,
)
from tests.notify_helpers import event
from watchdog.actions.notify.alertmanager import AlertmanagerNotifier
from watchdog.actions.notify.event import EventKind
from watchdog.api.app import build_app
from watchdog.clock import SystemClock
from watchdog.core.evaluator import State
from watchdog.http.server import serve
from watchdog.rules.load import load_rules
from watchdog.rules.response import AlertmanagerNotifierSpec
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings

__all__ = ["alertmanager_binary", "start_alertmanager"]  # fixtures, used by name

pytestmark = pytest.mark.integration

TOKEN = "api-token-am-0b1c2d"
POLLS = 120  # at 0.25 s: Alertmanager flushes every second, the watchdog samples every second

RULES = """
version: 1
defaults: {{interval: 1s, blind_after: 1m}}
sources:
  am: {{type: alertmanager, staleness: 1m}}
signals:
  checkout_alert: {{source: am, alertname: CheckoutErrors, labels: {{service: checkout}}}}
notifiers:
  alertmanager: {{type: alertmanager, url: "{am_url}", resend: 1s,
                 generator_url: "http://watchdog.example/"}}
notify: [alertmanager]
rules:
  - {{name: checkout-alert, signal: checkout_alert, above: 0, severity: low}}
"""


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Stack:
    runtime: Runtime
    am: RunningAlertmanager
    http: httpx.AsyncClient
    watchdog_url: str

    def state(self) -> State:
        return self.runtime.watchdog.engine.states["checkout-alert"].state

    async def post_alert(self, ends_at: float | None = None, service: str = "checkout") -> None:
        alert: dict[str, Any] = {
            "labels": {"alertname": "CheckoutErrors", "service": service},
            "annotations": {"summary": "checkout 5xx above 2%"},
            "startsAt": rfc3339(time.time() - 60),
        }
        if ends_at is not None:
            alert["endsAt"] = rfc3339(ends_at)
        response = await self.http.post(f"{self.am.url}/api/v2/alerts", json=[alert])
        assert response.status_code == 200, response.text

    async def ours(self) -> list[dict[str, Any]]:
        return await self.am.alerts(self.http, filter='alertname="RollbackWatchdog"')


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, start_alertmanager: StartAlertmanager) -> AsyncIterator[Stack]:
    """The watchdog serving its API (token set) and an Alertmanager wired to it; the
    rules are written once Alertmanager's address is known."""
    rules = tmp_path / "rules.yaml"
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(tmp_path / "state.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
        "WATCHDOG_API_TOKEN": TOKEN,
    }
    async with httpx.AsyncClient(timeout=5.0) as http:
        # The API's address first (Alertmanager's config names it), then the rules.
        holder: dict[str, Any] = {}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await holder["app"](scope, receive, send)

        async with serve(app) as srv:
            am = await start_alertmanager(f"{srv.url}/api/v1/alertmanager/am", TOKEN)
            rules.write_text(RULES.format(am_url=am.url))
            runtime = await Runtime.build(load_settings(env), SystemClock(), http)
            runtime.tick_s = 0.2
            holder["app"] = build_app(
                runtime.watchdog, runtime.settings.api_token, silences=runtime.silences
            )
            await runtime.start()
            try:
                yield Stack(runtime, am, http, srv.url)
            finally:
                await runtime.stop(5.0)


async def test_an_alert_through_alertmanager_fires_the_rule_and_pushes_ours_back(
    tmp_path: Path, start_alertmanager: StartAlertmanager
) -> None:
    async with stack(tmp_path, start_alertmanager) as s:
        detail = s.am.log_tail
        # No notification yet: no evidence, so the rule is not inactive-by-default.
        assert s.state() is not State.FIRING
        await s.post_alert(service="search")  # another service's alert: no breach
        await until(
            lambda: s.runtime.watchdog.engine.states["checkout-alert"].value == 0.0,
            "a notification to reach the source",
            polls=POLLS,
            every_s=0.25,
            detail=detail,
        )
        await s.post_alert()
        await until(
            lambda: s.state() is State.FIRING,
            "the rule to fire",
            polls=POLLS,
            every_s=0.25,
            detail=detail,
        )

        # Ours, pushed back by the notifier: one alert for the notify-only incident.
        async def pushed() -> bool:
            return bool(await s.ours())

        await until(pushed, "our alert in Alertmanager", polls=POLLS, every_s=0.25, detail=detail)
        (alert,) = await s.ours()
        labels = alert["labels"]
        assert labels["rule"] == "checkout-alert"
        assert labels["severity"] == "low"
        assert labels["incident"].endswith("-checkout-alert")
        assert "target" not in labels  # a notify-only rule has no target
        assert "CheckoutErrors" not in alert["annotations"]["evidence"]
        assert "Observed: checkout_alert 1" in alert["annotations"]["evidence"]
        assert alert["generatorURL"] == "http://watchdog.example/"
        first_end = parse_time(alert["endsAt"])
        assert time.time() < first_end <= time.time() + 4 * 1.0 + 2

        # Re-sent every second while the incident is open: the end moves on.
        async def renewed() -> bool:
            now = await s.ours()
            return bool(now) and parse_time(now[0]["endsAt"]) > first_end + 1

        await until(renewed, "our alert to be renewed", polls=POLLS, every_s=0.25, detail=detail)

        # Resolved in Alertmanager: the rule stops firing, the incident closes and our
        # alert ends.
        await s.post_alert(ends_at=time.time() - 1)
        await until(
            lambda: s.state() is State.INACTIVE,
            "the rule to resolve",
            polls=POLLS,
            every_s=0.25,
            detail=detail,
        )

        async def gone() -> bool:
            return not await s.ours()

        await until(gone, "our alert to end", polls=POLLS, every_s=0.25, detail=detail)


async def test_the_webhook_needs_the_token_and_a_v4_payload(
    tmp_path: Path, start_alertmanager: StartAlertmanager
) -> None:
    async with stack(tmp_path, start_alertmanager) as s:
        url = f"{s.watchdog_url}/api/v1/alertmanager/am"
        local = {"host": "localhost"}
        bearer = {"authorization": f"Bearer {TOKEN}", **local}
        body = {
            "version": "4",
            "groupKey": '{}:{alertname="CheckoutErrors"}',
            "status": "firing",
            "receiver": "watchdog",
            "alerts": [{"status": "burning", "labels": {}, "startsAt": "x"}],
        }
        missing = await s.http.post(url, json=body, headers=local)
        wrong = await s.http.post(url, json=body, headers=bearer)
        unknown = await s.http.post(f"{url}x", json=body, headers=bearer)
        old = await s.http.post(url, json={**body, "version": "3"}, headers=bearer)
    assert missing.status_code == 401
    assert wrong.status_code == 400
    assert wrong.json()["error"].startswith("alerts[0].status: Input should be 'firing'")
    assert unknown.status_code == 404
    assert "known: am" in unknown.json()["error"]
    assert old.status_code == 400
    assert old.json()["error"].startswith("version: Input should be '4'")


ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_route_passes_amtool_and_feeds_the_example_source() -> None:
    """deploy/alertmanager/watchdog.yml is a valid Alertmanager config whose webhook is
    the example rules' source and whose route lets the example signal's alert through."""
    amtool = shutil.which("amtool")
    if amtool is None:
        if os.environ.get("CI"):
            pytest.fail("amtool is not installed; CI must run the integration tests")
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager)")
    config = ROOT / "deploy" / "alertmanager" / "watchdog.yml"
    checked = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = load_rules([ROOT / "rules" / "examples" / "alertmanager.yaml"])
    (source,) = [name for name, spec in rules.sources.items() if spec.type == "alertmanager"]
    signal = next(s for s in rules.signals.values() if s.source_name == source)
    parsed = yaml.safe_load(config.read_text())
    (receiver,) = [r for r in parsed["receivers"] if r.get("webhook_configs")]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith(f"/api/v1/alertmanager/{source}")
    routed = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"alertname={signal.spec.alertname}",
            *(f"{k}={v}" for k, v in signal.spec.labels.items()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert routed.stdout.strip() == receiver["name"], routed.stdout + routed.stderr


async def test_one_alert_per_target_and_resolve_ends_them(
    tmp_path: Path, start_alertmanager: StartAlertmanager
) -> None:
    """The notifier alone against the real Alertmanager: an incident with two targets is
    two alerts, a blind rule its own alertname, a dry run sends nothing, and the
    resolution ends them."""
    am = await start_alertmanager("http://127.0.0.1:9/unused", None)
    now = time.time()
    spec = AlertmanagerNotifierSpec(type="alertmanager", url=am.url, resend=60.0)
    async with httpx.AsyncClient(timeout=5.0) as http:
        notifier = AlertmanagerNotifier("am", spec, None, http, SystemClock())
        opened = event(EventKind.OPENED, occurred_at=now, first_breach_at=now - 300, decided_at=now)
        dry = await notifier.send(opened, dry_run=True)
        assert dry.would
        assert await am.alerts(http) == []
        result = await notifier.send(opened)
        assert result.ok, result.detail
        blind = await notifier.send(
            event(EventKind.BLIND, incident_id="blind-p95", occurred_at=now, rule="slow-p95")
        )
        assert blind.ok, blind.detail
        ours = await am.alerts(http, filter='alertname="RollbackWatchdog"')
        assert sorted(a["labels"]["target"] for a in ours) == ["frontend", "worker"]
        for alert in ours:
            assert alert["labels"]["rule"] == "error-rate"
            assert alert["labels"]["severity"] == "critical"
            assert abs(parse_time(alert["startsAt"]) - (now - 300)) < 1
            assert now + 239 <= parse_time(alert["endsAt"]) <= now + 242
            assert "Observed: error_rate 7.2%" in alert["annotations"]["evidence"]
        (blind_alert, *_) = await am.alerts(http, filter='alertname="RollbackWatchdogBlind"')
        assert blind_alert["labels"]["rule"] == "slow-p95"
        resolved = await notifier.send(
            event(EventKind.RESOLVED, occurred_at=time.time(), first_breach_at=now - 300)
        )
        assert resolved.ok, resolved.detail
        assert await am.alerts(http, filter='alertname="RollbackWatchdog"') == []
