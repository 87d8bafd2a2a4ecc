"""Slack incoming webhook: a Block Kit message that says what happened and why.

Slack answers 200 with the plain-text body ``ok``; errors are plain-text strings
(``no_service``, ``invalid_payload``, ...). 429 and 5xx are retried (``Retry-After``
honoured), any other 4xx is permanent. The webhook URL is a secret: it is never
logged, never put in an error or a dry-run result.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from watchdog.actions.notify.base import NOTIFY_POLICY, NOTIFY_TIMEOUT_S, failed, sent, would
from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.clock import Clock
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult
from watchdog.units import iso

# Block Kit limits (api.slack.com/reference/block-kit/blocks).
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000
_FIELDS_MAX = 10


def escape(text: str) -> str:
    """Slack mrkdwn needs &, < and > escaped (``>`` is in every "7% > 5%")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION_MAX)}}


def build_message(event: IncidentEvent) -> dict[str, Any]:
    """The webhook body: Block Kit blocks plus a ``text`` fallback for notifications."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(event.headline(), _HEADER_MAX)},
        },
        _section(escape(event.summary())),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{label}*\n{escape(value)}", _FIELD_MAX)}
                for label, value in event.facts()[:_FIELDS_MAX]
            ],
        },
    ]
    if event.kind in (EventKind.ROLLING_BACK, EventKind.WOULD_ROLLBACK):
        title = (
            "ROLLBACK IN PROGRESS"
            if event.kind is EventKind.ROLLING_BACK
            else "NO ROLLBACK: WOULD HAVE ROLLED BACK"
        )
        lines = [f"*{title}*"] + [
            f"• {label}: {escape(value)}" for label, value in event.runbook_fields()
        ]
        blocks.append(_section("\n".join(lines)))
    if event.rolled_back:
        label = "Would roll back" if event.kind is EventKind.WOULD_ROLLBACK else "Rolled back"
        lines = [f"*{label}*"] + [f"• {escape(line)}" for line in event.rolled_back_lines()]
        blocks.append(_section("\n".join(lines)))
    if event.actions:
        lines = ["*Actions*"] + [escape(line) for line in event.action_lines()]
        blocks.append(_section("\n".join(lines)))
    if event.message:
        blocks.append(_section(escape(event.message)))
    if event.links:
        links = " · ".join(f"<{url}|{escape(text)}>" for text, url in event.links)
        blocks.append(_section(links))
    context = f"incident {event.incident_id} · {iso(event.occurred_at)} · rollback-watchdog"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(context)}]})
    return {"text": f"{event.headline()}\n{event.summary()}", "blocks": blocks}


class SlackNotifier:
    def __init__(
        self,
        name: str,
        webhook_url: SecretStr,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy = NOTIFY_POLICY,
    ) -> None:
        self.name = name
        self._url = webhook_url
        self._http = http
        self._clock = clock
        self._policy = policy

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        body = build_message(event)
        if dry_run:
            request = {"method": "POST", "endpoint": "slack incoming webhook", "body": body}
            return would(self.name, "would post to Slack", request)
        try:
            response = await send(
                self._http,
                "POST",
                self._url.get_secret_value(),
                what=f"slack notifier {self.name!r}",
                clock=self._clock,
                policy=self._policy,
                json=body,
                timeout_s=NOTIFY_TIMEOUT_S,
            )
        except ActionError as exc:
            return failed(self.name, exc)
        answer = response.text.strip()
        if answer == "ok":
            return sent(self.name, "posted to Slack")
        # A 2xx with another body (workflow webhooks answer JSON) still means delivered.
        return sent(self.name, f"posted to Slack (HTTP {response.status_code})")
