"""The console's reads of the store and the targets: incidents with their timelines,
and each target's live version, rollback candidate and recent deploys.

A target is read from its remote API (Cloudflare) through the version ledger, as the
``targets`` verb reads it: seconds on a bad day. So the console never waits for it on a
page load: the last reading is shown with its time, and a stale one is refreshed in the
background (one refresh at a time).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from watchdog.actions.base import Target
from watchdog.actions.choice import HOW_TEXT
from watchdog.actions.ledger import Ledgers, LedgerTarget
from watchdog.clock import Clock
from watchdog.errors import ActionError, StoreError
from watchdog.model import TargetState
from watchdog.store.base import EventRecord, IncidentRecord, Store
from watchdog.units import format_duration
from watchdog.units import iso as _iso

log = structlog.get_logger("watchdog.api.console")

TARGETS_FRESH_S = 30.0  # a reading younger than this is shown without a new one
RECENT_DEPLOYS = 5
RECENT_INCIDENTS = 20

# The timeline's steps (the runbook's: detected, rollback, purge, verification,
# escalation, resolved), in words.
STEPS = {
    "detected": "detected",
    "joined": "another rule joined",
    "grace": "grace period started",
    "grace_over": "grace period over",
    "rollback_started": "rollback started",
    "rollback_finished": "rollback finished",
    "rollback_blocked": "rollback not taken",
    "would_rollback": "rollback withheld (silenced or dry run)",
    "silence_overridden": "silence overridden",
    "action": "action",
    "verification": "verification",
    "escalated": "escalated",
    "escalation_level": "escalation level paged",
    "blind": "blind",
    "reconciled": "reconciled after a restart",
    "rule_resolved": "rule resolved",
    "fixed_within_grace": "fixed within the grace period",
    "resolved": "resolved",
    "closed_unresolved": "closed unresolved",
    "phase": "phase",
}


# The same moments come back on every refresh (each incident's steps, each rule's
# start): formatting them is a good part of a page's cost.
iso = functools.lru_cache(maxsize=8192)(_iso)


@dataclass(frozen=True)
class Step:
    at: str  # RFC 3339
    kind: str
    label: str
    detail: str
    ok: bool | None  # None: neither a success nor a failure


@dataclass(frozen=True)
class IncidentRow:
    id: str
    rule: str
    severity: str
    phase: str
    targets: tuple[str, ...]
    opened: str
    closed: str | None
    duration: str
    steps: tuple[Step, ...] = ()
    last_at: float = 0.0  # the latest event's time (a newer one: the targets changed)


@dataclass(frozen=True)
class Deployed:
    version: str
    went_live: str
    how: str
    status: str  # live, rolled away, verified, ""


@dataclass(frozen=True)
class TargetRow:
    name: str
    kind: str
    live: str
    live_when: str
    live_how: str
    rollback_to: str
    why: str
    lines: tuple[tuple[str, str, str], ...]  # version, status, reason
    deploys: tuple[Deployed, ...]
    error: str = ""


def step_of(event: EventRecord) -> Step:
    data = event.data
    detail, ok = "", None
    if event.kind == "detected":
        detail = str(data.get("decision", {}).get("why", ""))
    elif event.kind == "action":
        detail = f"{data.get('action')} {data.get('target')}: {data.get('detail', '')}"
        ok = None if data.get("would") else bool(data.get("ok"))
        if data.get("action") == "notify":
            return Step(iso(event.at), "notify", "notified", detail, ok)
    elif event.kind == "rollback_finished":
        detail = "; ".join(f"{t}: {a} → {b}" for t, a, b in data.get("rolled_back", []))
        ok = not data.get("failed")
    elif event.kind == "verification":
        results = data.get("results", {})
        detail = "; ".join(f"{k}: {v}" for k, v in results.items())
        ok = all(str(v).startswith("passed") for v in results.values())
    elif event.kind == "phase":
        detail = str(data.get("phase", ""))
    elif event.kind == "escalation_level":
        detail = f"level {data.get('level')} {data.get('name', '')}".strip()
    else:
        detail = str(data.get("why", data.get("target", "")))
    if event.kind in ("escalated", "rollback_blocked", "closed_unresolved"):
        ok = False
    return Step(iso(event.at), event.kind, STEPS.get(event.kind, event.kind), detail, ok)


def incident_row(record: IncidentRecord, now: float, events: list[EventRecord]) -> IncidentRow:
    end = record.closed_at if record.closed_at is not None else now
    return IncidentRow(
        id=record.id,
        rule=record.rule,
        severity=record.severity,
        phase=record.phase,
        targets=tuple(record.targets),
        opened=iso(record.opened_at),
        closed=iso(record.closed_at) if record.closed_at is not None else None,
        duration=format_duration(max(0.0, end - record.opened_at)),
        steps=tuple(step_of(e) for e in events if e.kind != "phase"),
        last_at=max((e.at for e in events), default=record.opened_at),
    )


async def incidents(store: Store, now: float) -> tuple[list[IncidentRow], list[IncidentRow]]:
    """Open incidents with their timelines, and the recent closed ones."""
    opened = await store.open_incidents()
    open_rows = [incident_row(r, now, await store.events(r.id)) for r in reversed(opened)]
    recent = await store.recent_incidents(RECENT_INCIDENTS + len(opened))
    closed = [incident_row(r, now, []) for r in recent if r.closed_at is not None]
    return open_rows, closed[:RECENT_INCIDENTS]


@dataclass
class TargetsCache:
    """The last reading of every target, refreshed in the background when stale."""

    store: Store
    clock: Clock
    targets: Callable[[], Mapping[str, Target]]
    rows: list[TargetRow] = field(default_factory=list)
    read_at: float | None = None
    _task: asyncio.Task[None] | None = None
    _closed: bool = False

    def current(self, changed_at: float = 0.0) -> tuple[list[TargetRow], float | None]:
        """The last reading and its time; starts a refresh when it is stale, or older
        than ``changed_at`` (an incident's latest step: a rollback moves what is live)."""
        read = self.read_at
        fresh = (
            read is not None and read >= changed_at and self.clock.now() - read < TARGETS_FRESH_S
        )
        if not fresh and not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self.refresh(), name="console-targets")
        return self.rows, self.read_at

    async def wait(self) -> None:
        """The refresh in flight, if any (tests, and a first page load)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        """At shutdown: the refresh in flight is cancelled (its HTTP client is closing)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> None:
        targets = self.targets()
        ledgers = Ledgers(self.store, self.clock, self.targets)
        try:
            states = await ledgers.inspect(list(targets))
            rows = [await self._row(name, state) for name, state in states.items()]
        except StoreError as exc:
            log.warning("console: cannot read the targets", error=str(exc))
            return
        except Exception:  # boundary: a background read must not die unseen
            log.exception("console: reading the targets failed")
            return
        self.rows, self.read_at = rows, self.clock.now()

    async def _row(self, name: str, state: TargetState | ActionError) -> TargetRow:
        kind = getattr(self.targets().get(name), "kind", "")
        if not isinstance(state, TargetState):
            return TargetRow(name, kind, "", "", "", "", "", (), (), error=str(state))
        deploys: tuple[Deployed, ...] = ()
        if isinstance(self.targets().get(name), LedgerTarget):
            deploys = await self._deploys(name, state)
        live = state.live
        return TargetRow(
            name=name,
            kind=state.kind,
            live=live.version if live is not None else "unknown",
            live_when=iso(live.created_at) if live is not None else "",
            live_how=HOW_TEXT.get(state.live_how, state.live_how) if state.live_how else "",
            rollback_to=state.rollback_to.version if state.rollback_to is not None else "none",
            why=state.why,
            lines=tuple((line.version, line.status, line.reason) for line in state.ledger[:12]),
            deploys=deploys,
        )

    async def _deploys(self, name: str, state: TargetState) -> tuple[Deployed, ...]:
        entries = [e for e in await self.store.ledger(name) if e.went_live_at is not None]
        entries.sort(key=lambda e: e.went_live_at or 0.0, reverse=True)
        live = state.live.version if state.live is not None else None
        out = []
        now = self.clock.now()
        for e in entries[:RECENT_DEPLOYS]:
            status = (
                "live"
                if e.version == live
                else "rolled away"
                if e.rolled_away
                else "verified"
                if e.verified
                else ""
            )
            when = e.went_live_at or 0.0
            ago = format_duration(max(0.0, now - when))
            out.append(
                Deployed(e.version, f"{iso(when)} ({ago} ago)", HOW_TEXT.get(e.how, e.how), status)
            )
        return tuple(out)
