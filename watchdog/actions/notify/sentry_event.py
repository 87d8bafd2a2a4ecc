"""A Sentry message per incident event, tagged so incidents group and filter well.

Only when the process initialised Sentry (``SENTRY_DSN``); otherwise a no-op that says
so. ``capture_message`` only queues the event for the SDK's background transport, so
it never blocks the playbook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sentry_sdk

from watchdog.actions.notify.base import sent, would
from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.model import ActionResult

if TYPE_CHECKING:
    from sentry_sdk._types import LogLevelStr

LEVELS: dict[str, LogLevelStr] = {
    "critical": "fatal",
    "high": "error",
    "medium": "warning",
    "low": "info",
}
_CALM = frozenset({EventKind.VERIFIED, EventKind.RESOLVED})


def tags(event: IncidentEvent) -> dict[str, str]:
    d = event.decision
    return {
        "rule": d.rule,
        "severity": d.severity,
        "incident": event.incident_id,
        "targets": ",".join(d.targets) or "-",
        "event": event.kind.value,
    }


def level(event: IncidentEvent) -> LogLevelStr:
    return "info" if event.kind in _CALM else LEVELS.get(event.decision.severity, "error")


class SentryNotifier:
    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        message = f"{event.headline()}\n{event.summary()}"
        if dry_run:
            request = {"message": message, "level": level(event), "tags": tags(event)}
            return would(self.name, "would send a Sentry event", request)
        if not sentry_sdk.is_initialized():
            return sent(self.name, "sentry not configured")
        event_id = sentry_sdk.capture_message(message, level=level(event), tags=tags(event))
        return sent(self.name, "sent a Sentry event", sentry_event_id=event_id)
