"""Shared builders for the notifier tests: an instant clock, a decision, an event,
settings holding the test secrets, and the receivers served on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import InstantClock
from watchdog.actions.notify.event import EventKind, IncidentEvent, StatusPhase, default_phase
from watchdog.core.decision import Decision, DecisionKind
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import serve
from watchdog.model import ActionResult
from watchdog.settings import Settings, load_settings

T0 = 1_790_000_000.0

# Test secrets: distinctive strings so a leak is easy to grep for.
SLACK_TOKEN = "slacktokenSECRET0123456789"
ROUTING_KEY = "R0UT1NGKEYSECRET0123456789abcdef"  # 32 characters, as PagerDuty wants
CTO_ROUTING_KEY = "CT0R0UT1NGKEYSECRET0123456789abc"
STATUSPAGE_KEY = "statuspageKEYSECRET-0123456789"
HMAC_KEY = "hmacKEYSECRET-0123456789"
GITHUB_TOKEN = "ghp_githubTOKENSECRET0123456789"
WEBHOOK_PATH = "hookPATHSECRET0123"
PAGE_ID = "kctbh9vrtdwd"
COMPONENT_ID = "8kbf7d35c070"
ALL_SECRETS = (
    SLACK_TOKEN,
    ROUTING_KEY,
    CTO_ROUTING_KEY,
    STATUSPAGE_KEY,
    HMAC_KEY,
    GITHUB_TOKEN,
    WEBHOOK_PATH,
)


def decision(**overrides: Any) -> Decision:
    """The runbook's critical error-rate rule breaching: 7.2% > 5% for 5m."""
    base = Decision(
        kind=DecisionKind.ROLLBACK,
        rule="error-rate",
        severity="critical",
        signal="error_rate",
        targets=("worker", "frontend"),
        observed=0.072,
        threshold=0.05,
        comparison="above",
        unit="ratio",
        window_s=300.0,
        sample_count=21,
        first_breach_at=T0 - 300,
        decided_at=T0,
        why="error_rate above 5% for 5m with 1500 requests",
        requests=1500.0,
    )
    return replace(base, **overrides)


def event(
    kind: EventKind = EventKind.OPENED,
    *,
    incident_id: str = "inc-20260801-error-rate",
    phase: StatusPhase | str | None = "default",
    rolled_back: Sequence[tuple[str, str, str]] = (),
    actions: Sequence[ActionResult] = (),
    links: Sequence[tuple[str, str]] = (),
    message: str = "",
    escalation_level: int | None = None,
    escalation_name: str = "",
    occurred_at: float = T0,
    **decision_overrides: Any,
) -> IncidentEvent:
    """An event of ``kind``; the status phase defaults to what the runbook implies."""
    status_phase: Any = default_phase(kind) if phase == "default" else phase
    return IncidentEvent(
        kind=kind,
        incident_id=incident_id,
        decision=decision(**decision_overrides),
        occurred_at=occurred_at,
        status_phase=status_phase,
        rolled_back=rolled_back,
        actions=actions,
        links=links,
        message=message,
        escalation_level=escalation_level,
        escalation_name=escalation_name,
    )


ROLLED_BACK = [("worker", "v42-bad", "v41-good"), ("frontend", "dep-new", "dep-old")]
ACTIONS = [
    ActionResult("rollback", "worker", ok=True, detail="rolled back v42-bad → v41-good"),
    ActionResult("purge", "zone", ok=False, detail="cloudflare purge: HTTP 429"),
]
LINKS = [
    ("Grafana", "https://grafana.example.com/d/errors"),
    ("Runbook", "https://wiki.example.com/rb"),
]


def settings(tmp_path: Path, base_url: str = "http://127.0.0.1:9", **extra: str) -> Settings:
    """Settings with every notifier secret pointing at ``base_url``'s receivers."""
    secrets = {
        "slack_webhook": Receivers.slack_webhook_url(base_url, SLACK_TOKEN),
        "webhook_url": Receivers.webhook_url(base_url, WEBHOOK_PATH),
        "webhook_hmac_key": HMAC_KEY,
        "pagerduty_routing_key": ROUTING_KEY,
        "pagerduty_cto_routing_key": CTO_ROUTING_KEY,
        "statuspage_api_key": STATUSPAGE_KEY,
        "github_token": GITHUB_TOKEN,
        **extra,
    }
    return load_settings({"WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets")}, secrets=secrets)


@dataclass
class Served:
    receivers: Receivers
    url: str
    http: httpx.AsyncClient
    clock: InstantClock


@contextlib.asynccontextmanager
async def served(**receiver_options: Any) -> AsyncIterator[Served]:
    """The receivers on a real loopback socket, an HTTP client and an instant clock."""
    options: dict[str, Any] = {
        "statuspage_api_key": STATUSPAGE_KEY,
        "github_token": GITHUB_TOKEN,
        "webhook_hmac_key": HMAC_KEY,
        **receiver_options,
    }
    clock = InstantClock()
    receivers = Receivers(**{"now": clock.now, **options})
    receivers.statuspage.add_component(COMPONENT_ID)
    receivers.github.add_workflow("acme/pitchey")
    async with serve(receivers) as srv, httpx.AsyncClient() as http:
        yield Served(receivers, srv.url, http, clock)


@contextlib.asynccontextmanager
async def in_process(**receiver_options: Any) -> AsyncIterator[Served]:
    """The same receivers driven in-process through ``httpx.ASGITransport``."""
    options: dict[str, Any] = {
        "statuspage_api_key": STATUSPAGE_KEY,
        "github_token": GITHUB_TOKEN,
        "webhook_hmac_key": HMAC_KEY,
        **receiver_options,
    }
    clock = InstantClock()
    receivers = Receivers(**{"now": clock.now, **options})
    receivers.statuspage.add_component(COMPONENT_ID)
    receivers.github.add_workflow("acme/pitchey")
    transport = httpx.ASGITransport(app=receivers)
    async with httpx.AsyncClient(transport=transport) as http:
        yield Served(receivers, "http://receivers.test", http, clock)
