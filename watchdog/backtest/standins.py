"""The outside world during a replay: targets read the recorded deploy history at the
virtual now, purges and notifiers send nothing, and the store is SQLite in memory."""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from watchdog.actions.notify.event import IncidentEvent
from watchdog.backtest.times import rfc3339
from watchdog.clock import FakeClock
from watchdog.errors import StoreError
from watchdog.model import ActionResult, Deploy, RollbackPlan, TargetState
from watchdog.store.base import EventRecord, IncidentRecord, event_params, incident_params
from watchdog.store.sqlite import EVENT_INSERT, INCIDENT_UPSERT, SQLiteStore

T = TypeVar("T")


class RecordedTarget:
    """A target whose deploy history is recorded: reads it at the virtual now, sends
    nothing. ``deploys=None`` means deploys are ignored (correlation is off): a live
    version and a previous one always exist."""

    def __init__(
        self, name: str, kind: str, deploys: Sequence[Deploy] | None, clock: FakeClock
    ) -> None:
        self.name = name
        self.kind = kind
        self.deploys = list(deploys) if deploys is not None else None
        self._times = [d.created_at for d in self.deploys or ()]
        self.clock = clock

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        now = self.clock.now()
        if self.deploys is None:
            live = Deploy("live", "live", now)
            return TargetState(self.name, self.kind, live, Deploy("previous", "previous", now), "")
        if self.kind == "github-workflow":
            previous = Deploy("previous", "previous", now)
            return TargetState(self.name, self.kind, None, previous, "the workflow picks it")
        past = self.deploys[: bisect_right(self._times, now)]
        if not past:
            return TargetState(
                self.name,
                self.kind,
                None,
                None,
                f"no deploy of {self.name} recorded at or before {rfc3339(now)}",
            )
        live = past[-1]
        earlier = [d for d in past[:-1] if d.version != live.version]
        preferred = [d for d in earlier if d.version in healthy]
        choices = preferred or earlier
        choice = choices[-1] if choices else None
        why = "" if choice is not None else f"{live.version} is the only deploy recorded"
        return TargetState(self.name, self.kind, live, choice, why)

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        detail = f"{plan.from_version} → {plan.to_version} (backtest: nothing was sent)"
        return ActionResult("rollback", plan.target, ok=True, detail=detail, would=dry_run)


class RecordedPurge:
    def __init__(self, name: str) -> None:
        self.name = name

    async def purge(self, dry_run: bool = False) -> ActionResult:
        return ActionResult(
            "purge", self.name, ok=True, detail="backtest: nothing sent", would=True
        )


class RecordedNotifier:
    """Sends nothing; hands each event to ``sink`` so the timeline can say who would
    have been told what."""

    def __init__(self, name: str, sink: Callable[[str, IncidentEvent], None]) -> None:
        self.name = name
        self._sink = sink

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        self._sink(self.name, event)
        return ActionResult(
            "notify", self.name, ok=True, detail=f"would send {event.kind.value}", would=True
        )


class ReplayStore(SQLiteStore):
    """The live SQLite store, in memory, run on the replay's own thread. A replay has
    nothing for the event loop to do while a write runs, and the hop to the store's
    worker thread costs more than the write (thousands of times in a month of
    incidents). Same transactions and errors as ``SQLiteStore._run``.

    The incident and event writes (nine in ten of a replay's statements, read back
    only when a clock step is looked up or an incident id is checked) wait in a
    batch, written in order with ``executemany`` in one transaction before any other
    call reaches the database and at ``close``: every read sees what it would have."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self._incidents: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._incidents or self._events:
            self._flush()
        return self._transaction(fn)  # here, on the event loop: no thread hop per call

    def _writable(self) -> None:
        """The errors ``_run`` gives a write on a closed or unopened store."""
        if self._closed:
            raise StoreError(f"state store {self.path} is closed")
        if self._conn is None:
            raise StoreError("store is not open")

    async def save_incident(self, incident: IncidentRecord) -> None:
        self._writable()
        self._incidents.append(incident_params(incident))

    async def add_event(self, event: EventRecord) -> None:
        self._writable()
        self._events.append(event_params(event))

    def _flush(self) -> None:
        incidents, events = self._incidents, self._events
        self._incidents, self._events = [], []

        def write(c: sqlite3.Connection) -> None:
            c.executemany(INCIDENT_UPSERT, incidents)
            c.executemany(EVENT_INSERT, events)

        self._transaction(write)

    async def close(self) -> None:
        try:
            if not self._closed and (self._incidents or self._events):
                self._flush()
        finally:  # a failed last batch still closes the connection and its thread
            await super().close()
