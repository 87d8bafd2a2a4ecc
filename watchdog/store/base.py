"""Durable state: incidents and their timeline, the action journal, silences, and the
version ledger per target (watchdog/ledger.py).

One interface (``Store``); SQLite is the default (WAL, one worker thread so the event
loop never blocks, versioned migrations). Every write is committed before the call
returns: the journal is written *before* an action's first API call and again after.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class IncidentRecord:
    id: str
    opened_at: float
    rule: str
    severity: str
    phase: str
    targets: list[str]
    closed_at: float | None = None
    # The incident's state (watchdog/incidents/state.py) as the JSON text it wrote: kept
    # and returned as it is, never read here.
    state_json: str = "{}"


@dataclass
class EventRecord:
    incident_id: str
    at: float
    kind: str
    data: dict[str, Any]
    id: int = 0


@dataclass
class ActionRecord:
    """One journalled action. ``state``: intent → done | failed."""

    key: str  # unique: incident/kind/target, so a replay finds the same row
    incident_id: str
    kind: str
    target: str
    intent: dict[str, Any]
    state: str
    created_at: float
    outcome: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None


@dataclass
class SilenceRecord:
    id: str
    matchers: list[dict[str, str]]  # [{name, op, value}]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    origin: str = "api"  # api | signal | file | flag
    expired_at: float | None = None

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at and (
            self.expired_at is None or self.expired_at > now
        )


@dataclass
class LedgerEntry:
    """One version of a target in the version ledger. Facts only grow: the earliest
    time it went live is kept, and once rolled away from or verified healthy, it stays
    so. ``how`` is ``person``, ``ci``, ``watchdog`` or ``unknown``. ``legacy_seen_at`` is
    a mark migrated from the old "healthy versions" table (live when an incident
    closed): shown, never evidence."""

    target: str
    version: str
    went_live_at: float | None = None
    how: str = "unknown"
    live_detail: str = ""
    rolled_away_at: float | None = None
    rolled_away_why: str = ""
    verified_at: float | None = None
    verified_why: str = ""
    legacy_seen_at: float | None = None

    @property
    def rolled_away(self) -> bool:
        return self.rolled_away_at is not None

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


LEDGER_COLUMNS = (
    "target, version, went_live_at, how, live_detail, rolled_away_at, rolled_away_why, "
    "verified_at, verified_why, legacy_seen_at"
)


def ledger_params(entry: LedgerEntry) -> tuple[Any, ...]:
    return (
        entry.target,
        entry.version,
        entry.went_live_at,
        entry.how,
        entry.live_detail,
        entry.rolled_away_at,
        entry.rolled_away_why,
        entry.verified_at,
        entry.verified_why,
        entry.legacy_seen_at,
    )


def ledger_from_row(row: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(*row)


def ledger_upsert(table: str, placeholder: str, least: str) -> str:
    """The merge both backends run: a fact already recorded is never lost or moved
    later (replicas writing the same version at once agree), and the first "how" and
    reasons known win over ``unknown`` and empty ones."""
    marks = ",".join([placeholder] * 10)
    return (
        f"INSERT INTO {table} ({LEDGER_COLUMNS}) VALUES ({marks}) "  # noqa: S608 (our constants)
        f"ON CONFLICT (target, version) DO UPDATE SET "
        f"went_live_at = COALESCE({least}({table}.went_live_at, excluded.went_live_at), "
        f"{table}.went_live_at, excluded.went_live_at), "
        f"how = CASE WHEN {table}.how = 'unknown' THEN excluded.how ELSE {table}.how END, "
        f"live_detail = CASE WHEN {table}.live_detail = '' THEN excluded.live_detail "
        f"ELSE {table}.live_detail END, "
        f"rolled_away_why = CASE WHEN {table}.rolled_away_at IS NULL "
        f"THEN excluded.rolled_away_why ELSE {table}.rolled_away_why END, "
        f"rolled_away_at = COALESCE({table}.rolled_away_at, excluded.rolled_away_at), "
        f"verified_why = CASE WHEN {table}.verified_at IS NULL "
        f"THEN excluded.verified_why ELSE {table}.verified_why END, "
        f"verified_at = COALESCE({table}.verified_at, excluded.verified_at), "
        f"legacy_seen_at = COALESCE({table}.legacy_seen_at, excluded.legacy_seen_at)"
    )


class Store(Protocol):
    """What the watchdog keeps across restarts."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def save_incident(self, incident: IncidentRecord) -> None: ...
    async def open_incidents(self) -> list[IncidentRecord]: ...
    async def get_incident(self, incident_id: str) -> IncidentRecord | None: ...
    async def recent_incidents(self, limit: int = 20) -> list[IncidentRecord]: ...
    async def has_incident(self, incident_id: str) -> bool:
        """Whether an incident has exactly this id (the primary key: no scan)."""
        ...

    async def add_event(self, event: EventRecord) -> None: ...
    async def events(self, incident_id: str) -> list[EventRecord]: ...

    async def journal_intent(self, action: ActionRecord) -> ActionRecord:
        """Record the intent; returns the existing row if ``key`` was journalled before."""
        ...

    async def journal_outcome(
        self, key: str, state: str, outcome: dict[str, Any], at: float
    ) -> None: ...
    async def unfinished_actions(self) -> list[ActionRecord]: ...
    async def actions(self, incident_id: str) -> list[ActionRecord]: ...
    async def rollbacks_since(
        self, since: float, target: str | None = None
    ) -> list[ActionRecord]: ...

    async def save_silence(self, silence: SilenceRecord) -> None: ...
    async def silences(
        self, include_expired: bool = False, now: float = 0.0
    ) -> list[SilenceRecord]: ...

    async def ledger(self, target: str) -> list[LedgerEntry]:
        """The target's version ledger, oldest went-live first."""
        ...

    async def save_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Merge ``entries`` in (see ``ledger_upsert``): facts are only ever added."""
        ...


# --- SQLite ----------------------------------------------------------------------------


def silences_from_rows(
    rows: Sequence[Sequence[Any]], include_expired: bool, now: float
) -> list[SilenceRecord]:
    """Every silence, or only those not expired or ended by ``now``."""
    found = [silence_from_row(row) for row in rows]
    if include_expired:
        return found
    return [s for s in found if s.expired_at is None and s.ends_at > now]


def pick_incident(rows: Sequence[Sequence[Any]], incident_id: str) -> IncidentRecord | None:
    """An exact id wins; otherwise a prefix must match exactly one incident."""
    exact = [row for row in rows if row[0] == incident_id]
    if exact:
        return incident_from_row(exact[0])
    return incident_from_row(rows[0]) if len(rows) == 1 else None


def incident_from_row(row: Sequence[Any]) -> IncidentRecord:
    return IncidentRecord(
        id=row[0],
        opened_at=row[1],
        closed_at=row[2],
        rule=row[3],
        severity=row[4],
        phase=row[5],
        targets=json.loads(row[6]),
        state_json=row[7],
    )


def action_from_row(row: Sequence[Any]) -> ActionRecord:
    return ActionRecord(
        key=row[0],
        incident_id=row[1],
        kind=row[2],
        target=row[3],
        intent=json.loads(row[4]),
        state=row[5],
        created_at=row[6],
        outcome=json.loads(row[7]),
        finished_at=row[8],
    )


def silence_from_row(row: Sequence[Any]) -> SilenceRecord:
    return SilenceRecord(
        id=row[0],
        matchers=json.loads(row[1]),
        starts_at=row[2],
        ends_at=row[3],
        created_by=row[4],
        comment=row[5],
        origin=row[6],
        expired_at=row[7],
    )
