"""The ``Notifier`` protocol and the few helpers every notifier shares.

A notifier never raises for a remote failure: it retries through
``watchdog.http.client.send`` and then answers ``ActionResult(ok=False, ...)``, so a
Slack outage never blocks a rollback. In dry-run it sends nothing and returns the
exact request body it would have sent, with secrets (webhook URLs, keys) left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from watchdog.actions.notify.event import IncidentEvent, SilenceEvent
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy
from watchdog.model import ActionResult

ACTION = "notify"
REDACTED = "**********"

# Notifications are worth a short fight, not a long one: the playbook waits for them.
NOTIFY_POLICY = RetryPolicy(deadline_s=30.0, max_attempts=4, retry_after_cap_s=20.0)
NOTIFY_TIMEOUT_S = 10.0


class Notifier(Protocol):
    """Tells people (or systems) about an incident event."""

    name: str

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        """Deliver ``event``; never raises for a remote failure."""
        ...


@runtime_checkable
class SilenceListener(Protocol):
    """A notifier that also hears silences being added and expired (Grafana marks them)."""

    name: str

    async def silence(self, event: SilenceEvent, dry_run: bool = False) -> ActionResult:
        """Deliver ``event``; never raises for a remote failure."""
        ...


@runtime_checkable
class Refreshing(Protocol):
    """A notifier whose receiver forgets what is not re-sent (Alertmanager resolves an
    alert at its ``endsAt``): it is handed the open incidents again while they last."""

    name: str

    def refresh_due(self, now: float) -> bool:
        """Whether the open incidents should be re-sent now."""
        ...

    async def refresh(self, events: Sequence[IncidentEvent]) -> ActionResult:
        """Re-send ``events`` (one per open incident); never raises for a remote failure."""
        ...


_REFRESHING_CLASSES: dict[type, bool] = {}


def is_refreshing(notifier: object) -> bool:
    """``isinstance(notifier, Refreshing)``, once per class: the protocol check walks
    its members (~100 µs), and every incident tick asks it of every notifier."""
    kind = type(notifier)
    found = _REFRESHING_CLASSES.get(kind)
    if found is None:
        found = _REFRESHING_CLASSES[kind] = isinstance(notifier, Refreshing)
    return found


def sent(name: str, detail: str, **data: Any) -> ActionResult:
    return ActionResult(action=ACTION, target=name, ok=True, detail=detail, data=data)


def skipped(name: str, detail: str) -> ActionResult:
    """Nothing to send for this event kind: not a failure."""
    return ActionResult(action=ACTION, target=name, ok=True, detail=detail, data={"skipped": True})


def failed(name: str, exc: ActionError) -> ActionResult:
    """``exc``'s message names the API, never its URL (see ``actions.http``)."""
    return ActionResult(action=ACTION, target=name, ok=False, detail=str(exc))


def would(name: str, detail: str, request: dict[str, Any], **data: Any) -> ActionResult:
    return ActionResult(
        action=ACTION, target=name, ok=True, detail=detail, would=True, request=request, data=data
    )
