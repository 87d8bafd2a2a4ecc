"""PagerDuty Events API v2: trigger on opened / escalated / not verified, resolve on
verified / resolved, both with the incident's stable ``dedup_key``.

202 means accepted; 400 ("invalid event") is permanent; 429 and 5xx are retried.
The routing key travels in the body, so a dry run shows it redacted.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from watchdog.actions.notify.base import (
    NOTIFY_POLICY,
    NOTIFY_TIMEOUT_S,
    REDACTED,
    failed,
    sent,
    skipped,
    would,
)
from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.clock import Clock
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult
from watchdog.units import iso

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY_MAP = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
TRIGGER_KINDS = frozenset({EventKind.OPENED, EventKind.ESCALATED, EventKind.NOT_VERIFIED})
RESOLVE_KINDS = frozenset({EventKind.VERIFIED, EventKind.RESOLVED})
_SUMMARY_MAX = 1024


def event_action(event: IncidentEvent) -> str | None:
    """``trigger``, ``resolve`` or None (nothing to tell PagerDuty)."""
    if event.kind in TRIGGER_KINDS:
        return "trigger"
    if event.kind in RESOLVE_KINDS:
        return "resolve"
    return None


def build_body(event: IncidentEvent, routing_key: str, source: str) -> dict[str, Any]:
    action = event_action(event)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": event.dedup_key(),
    }
    if action != "trigger":
        return body
    d = event.decision
    summary = event.headline()
    if len(summary) > _SUMMARY_MAX:
        summary = summary[: _SUMMARY_MAX - 1] + "…"
    details: dict[str, Any] = {
        "incident": event.incident_id,
        "event": event.kind.value,
        "rule": d.rule,
        "signal": d.signal,
        "observed": d.observed_text,
        "threshold": f"{d.comparison} {d.threshold_text}",
        "window": event.window_text,
        "targets": list(d.targets),
        "why": d.why,
        "rolled_back": event.rolled_back_lines(),
        "actions": event.action_lines(),
    }
    if event.escalation_level is not None:
        details["escalation"] = event.escalation_text
    if event.message:
        details["message"] = event.message
    body["payload"] = {
        "summary": summary,
        "source": source,
        "severity": SEVERITY_MAP.get(d.severity, "error"),
        "timestamp": iso(event.occurred_at),
        "component": ", ".join(d.targets) or d.signal,
        "group": "rollback-watchdog",
        "class": d.signal,
        "custom_details": details,
    }
    body["client"] = "rollback-watchdog"
    if event.links:
        body["links"] = [{"href": url, "text": text} for text, url in event.links]
    return body


class PagerDutyNotifier:
    def __init__(
        self,
        name: str,
        routing_key: SecretStr,
        http: httpx.AsyncClient,
        clock: Clock,
        url: str = DEFAULT_URL,
        source: str = "rollback-watchdog",
        policy: RetryPolicy = NOTIFY_POLICY,
    ) -> None:
        self.name = name
        self._key = routing_key
        self._http = http
        self._clock = clock
        self._url = url
        self._source = source
        self._policy = policy

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        action = event_action(event)
        if action is None:
            return skipped(self.name, f"nothing to send to PagerDuty for {event.kind.value}")
        dedup_key = event.dedup_key()
        if dry_run:
            body = build_body(event, REDACTED, self._source)
            request = {"method": "POST", "url": self._url, "body": body}
            return would(self.name, f"would {action} on PagerDuty", request, dedup_key=dedup_key)
        body = build_body(event, self._key.get_secret_value(), self._source)
        try:
            response = await send(
                self._http,
                "POST",
                self._url,
                what=f"pagerduty notifier {self.name!r}",
                clock=self._clock,
                policy=self._policy,
                json=body,
                timeout_s=NOTIFY_TIMEOUT_S,
            )
        except ActionError as exc:
            return failed(self.name, exc)
        answer = _json(response)
        key = answer.get("dedup_key") if isinstance(answer.get("dedup_key"), str) else dedup_key
        return sent(
            self.name,
            f"{action} accepted by PagerDuty (HTTP {response.status_code})",
            dedup_key=key,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
