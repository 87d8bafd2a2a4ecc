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


def incident_params(incident: IncidentRecord) -> tuple[Any, ...]:
    """An incident as the row both stores write (SQLite and PostgreSQL, same columns)."""
    return (
        incident.id,
        incident.opened_at,
        incident.closed_at,
        incident.rule,
        incident.severity,
        incident.phase,
        json.dumps(incident.targets),
        incident.state_json,
    )


def event_params(event: EventRecord) -> tuple[Any, ...]:
    return (event.incident_id, event.at, event.kind, json.dumps(event.data, default=str))


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


@dataclass
class RampRecord:
    """A ramp the watchdog owns (watchdog/run/ramp.py): ``new`` moved through ``steps``
    (percentages) on ``target``, each held ``soak_s`` while the canary rules pass.
    ``step`` is the index of the split live now (-1: none yet); the soak so far is
    ``soaked_s`` plus the time since ``soak_from`` (None while held). ``phase`` is
    ``ramping`` or ``held`` while active; ``done``, ``aborted``, ``rolled-back``,
    ``superseded``, ``reverted`` or ``failed`` once ended, ``why`` saying why."""

    id: str
    target: str
    old: str
    new: str
    steps: list[float]
    soak_s: float
    created_by: str
    created_at: float
    phase: str = "ramping"
    step: int = -1
    soaked_s: float = 0.0
    soak_from: float | None = None
    deployment: str = ""  # the deployment this ramp last made live
    why: str = ""
    updated_at: float = 0.0
    # The canary's verdict when it judged ``new`` a regression (a sequential test: it
    # stands for this split); kept so a restarted daemon, whose engine starts afresh,
    # still refuses to promote it.
    regressed: str = ""

    @property
    def active(self) -> bool:
        return self.phase in ("ramping", "held")


RAMP_COLUMNS = (
    "id, target, old, new, steps, soak_s, created_by, created_at, phase, step, soaked_s, "
    "soak_from, deployment, why, updated_at, regressed"
)


def ramp_params(ramp: RampRecord) -> tuple[Any, ...]:
    values = [getattr(ramp, name.strip()) for name in RAMP_COLUMNS.split(",")]
    values[4] = json.dumps(ramp.steps)
    return tuple(values)


def ramp_from_row(row: Sequence[Any]) -> RampRecord:
    values = list(row)
    values[4] = [float(v) for v in json.loads(values[4])]
    return RampRecord(*values)


def ramps_query(active_only: bool) -> str:
    where = "WHERE phase IN ('ramping', 'held') " if active_only else ""
    return f"SELECT {RAMP_COLUMNS} FROM ramps {where}ORDER BY created_at, id"  # noqa: S608


def ramp_upsert(placeholder: str) -> str:
    """Insert or replace a ramp by id (one writer: the leader's ramp task)."""
    names = [n.strip() for n in RAMP_COLUMNS.split(",")]
    marks = ",".join([placeholder] * len(names))
    sets = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    return (
        f"INSERT INTO ramps ({RAMP_COLUMNS}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {sets}"  # noqa: S608
    )


RAMPS_REGRESSED = "ALTER TABLE ramps ADD COLUMN regressed TEXT NOT NULL DEFAULT ''"


def ramps_ddl(real: str) -> str:
    """Migration step "ramps" (both backends): the ramps the watchdog owns; each split
    a ramp makes is journalled in the actions table like any other action."""
    return (
        "CREATE TABLE ramps (id TEXT PRIMARY KEY, target TEXT NOT NULL, old TEXT NOT NULL, "
        f"new TEXT NOT NULL, steps TEXT NOT NULL, soak_s {real} NOT NULL, "
        f"created_by TEXT NOT NULL, created_at {real} NOT NULL, phase TEXT NOT NULL, "
        f"step INTEGER NOT NULL, soaked_s {real} NOT NULL, soak_from {real}, "
        f"deployment TEXT NOT NULL, why TEXT NOT NULL, updated_at {real} NOT NULL)"
    )


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


MinuteRow = tuple[float, float, float]  # (minute start, errors, requests)
# Per-minute counts of the signals burn-rate rules watch: their windows of days survive
# a restart. A migration step of each store ({real}: its float type); each write prunes.
MINUTES_TABLE = """
    CREATE TABLE signal_minutes (
        signal TEXT NOT NULL, minute {real} NOT NULL, errors {real} NOT NULL,
        requests {real} NOT NULL, PRIMARY KEY (signal, minute)
    );
"""
MINUTES_UPSERT = (
    "INSERT INTO signal_minutes (signal, minute, errors, requests) VALUES ({p}, {p}, {p}, {p}) "
    "ON CONFLICT (signal, minute) DO UPDATE SET errors = excluded.errors, "
    "requests = excluded.requests"
)
MINUTES_FORGET = "DELETE FROM signal_minutes WHERE signal = {p} AND minute < {p}"
MINUTES_SELECT = (
    "SELECT minute, errors, requests FROM signal_minutes "
    "WHERE signal = {p} AND minute >= {p} ORDER BY minute"
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

    async def save_minutes(
        self, signal: str, rows: Sequence[MinuteRow], forget_before: float
    ) -> None:
        """Set these per-minute counts of ``signal`` (burn-rate windows across restarts)
        and forget its minutes that start before ``forget_before``."""
        ...

    async def minutes(self, signal: str, since: float) -> list[MinuteRow]:
        """``signal``'s per-minute counts from ``since`` on, oldest first."""
        ...

    async def save_ramp(self, ramp: RampRecord) -> None: ...
    async def ramps(self, active_only: bool = False) -> list[RampRecord]:
        """Ramps, oldest first; ``active_only``: those still ramping or held."""
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
