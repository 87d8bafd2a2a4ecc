"""What notifiers hear besides an incident's steps: silences added or expired early
(notifiers that are ``SilenceListener``s: Grafana marks them), and the open incidents
re-sent to notifiers whose receiver forgets what is not renewed (``Refreshing``:
Alertmanager resolves an alert at its ``endsAt``). Both run as background tasks: an
API call or an incident tick never waits on a remote service."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

from watchdog.actions.notify.base import Refreshing, SilenceListener, is_refreshing
from watchdog.actions.notify.event import EventKind, SilenceEvent
from watchdog.core.decision import DecisionKind
from watchdog.incidents.model import log
from watchdog.incidents.recorder import Recorder
from watchdog.model import ActionResult


class Outbound:
    """Silence announcements and re-sends, each in a task of its own."""

    def __init__(self, rec: Recorder) -> None:
        self._rec = rec
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: set[str] = set()  # notifiers with a re-send in flight

    def silence_changed(self, event: SilenceEvent) -> None:
        """Tell every notifier that listens; called by ``Silences`` (no waiting)."""
        for notifier in list(self._rec.playbook.notifiers.values()):
            if isinstance(notifier, SilenceListener):
                self._spawn(self._told(notifier.silence(event, self._rec.dry_run)), "silence")

    def refreshes(self) -> bool:
        """Whether any notifier is re-sent open incidents (then each tick may be due)."""
        return any(is_refreshing(n) for n in self._rec.playbook.notifiers.values())

    def refresh(self) -> None:
        """Re-send the open incidents to each ``Refreshing`` notifier that is due, and
        that the incident's rule notifies; dry-run incidents sent nothing to renew."""
        rec = self._rec
        now = rec.clock.now()
        for name, each in list(rec.playbook.notifiers.items()):
            if not is_refreshing(each) or name in self._refreshing:
                continue
            notifier = cast(Refreshing, each)  # its class is one (is_refreshing)
            if not notifier.refresh_due(now):
                continue
            events = [
                rec.incident_event(
                    incident,
                    EventKind.OPENED
                    if incident.decision.kind is DecisionKind.ROLLBACK
                    else EventKind.NOTICE,
                )
                for incident in list(rec.open.values())
                if name in rec.notifier_names(incident.record.rule)
                and not rec.dry(incident.decision)
            ]
            self._refreshing.add(name)
            self._spawn(self._refreshed(name, notifier, events), f"refresh:{name}")

    async def _refreshed(self, name: str, notifier: Refreshing, events: list[Any]) -> None:
        try:
            await self._told(notifier.refresh(events))
        finally:
            self._refreshing.discard(name)

    async def _told(self, sending: Coroutine[Any, Any, ActionResult]) -> None:
        result = await sending
        if self._rec.playbook.metrics is not None:
            self._rec.playbook.metrics.count_action(result)
        if not result.ok:
            log.warning("notifier failed", notifier=result.target, detail=result.detail)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("notifier task failed", task=task.get_name(), error=repr(task.exception()))

    async def drain(self) -> None:
        """Wait for what is in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Another replica leads: its re-sends are the ones that count."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refreshing.clear()
