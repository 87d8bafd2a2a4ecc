"""Durable state: incidents and their timeline, the action journal, silences, and the
version ledger per target (watchdog/ledger.py).

One interface (``Store``); SQLite is the default (WAL, one worker thread so the event
loop never blocks, versioned migrations). Every write is committed before the call
returns: the journal is written *before* an action's first API call and again after.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from watchdog.errors import ConfigError, StoreError

T = TypeVar("T")


@dataclass
class IncidentRecord:
    id: str
    opened_at: float
    rule: str
    severity: str
    phase: str
    targets: list[str]
    closed_at: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


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

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY, opened_at REAL NOT NULL, closed_at REAL, rule TEXT NOT NULL,
        severity TEXT NOT NULL, phase TEXT NOT NULL, targets TEXT NOT NULL, data TEXT NOT NULL
    );
    CREATE INDEX incidents_open ON incidents (closed_at);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL, at REAL NOT NULL,
        kind TEXT NOT NULL, data TEXT NOT NULL
    );
    CREATE INDEX events_incident ON events (incident_id, id);
    CREATE TABLE actions (
        key TEXT PRIMARY KEY, incident_id TEXT NOT NULL, kind TEXT NOT NULL,
        target TEXT NOT NULL, intent TEXT NOT NULL, state TEXT NOT NULL,
        created_at REAL NOT NULL, outcome TEXT NOT NULL, finished_at REAL
    );
    CREATE INDEX actions_state ON actions (state);
    CREATE TABLE silences (
        id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL,
        ends_at REAL NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL,
        origin TEXT NOT NULL, expired_at REAL
    );
    CREATE TABLE healthy_versions (
        target TEXT NOT NULL, version TEXT NOT NULL, seen_at REAL NOT NULL,
        PRIMARY KEY (target, version)
    );
    """,
    # 2: the version ledger replaces "healthy versions". An old mark only says a version
    # was live when an incident closed (even after a dry run): kept as legacy_seen_at,
    # shown by `targets`, never counted as verified.
    """
    CREATE TABLE version_ledger (
        target TEXT NOT NULL, version TEXT NOT NULL, went_live_at REAL,
        how TEXT NOT NULL DEFAULT 'unknown', live_detail TEXT NOT NULL DEFAULT '',
        rolled_away_at REAL, rolled_away_why TEXT NOT NULL DEFAULT '',
        verified_at REAL, verified_why TEXT NOT NULL DEFAULT '', legacy_seen_at REAL,
        PRIMARY KEY (target, version)
    );
    INSERT INTO version_ledger (target, version, legacy_seen_at)
        SELECT target, version, seen_at FROM healthy_versions;
    DROP TABLE healthy_versions;
    """,
)


class SQLiteStore:
    """SQLite in WAL mode on one worker thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._conn is None:
                    raise StoreError("store is not open")
                try:
                    with self._conn:  # one transaction, committed on success
                        return fn(self._conn)
                except sqlite3.Error as exc:
                    raise StoreError(f"state store {self.path}: {exc}") from exc

        if self._closed:  # its worker thread is gone: say so as a StoreError
            raise StoreError(f"state store {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        def connect() -> None:
            try:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, check_same_thread=False)
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"cannot open state store {self.path}: {exc}") from exc
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # an intent must survive power loss
                conn.execute("PRAGMA busy_timeout=5000")
                _migrate(conn)
            except (sqlite3.Error, OSError) as exc:
                conn.close()
                raise StoreError(f"cannot open state store {self.path}: {exc}") from exc
            except StoreError:
                conn.close()
                raise
            self._conn = conn

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        """Close the connection and the worker thread; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    # incidents

    async def save_incident(self, incident: IncidentRecord) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "closed_at=excluded.closed_at, phase=excluded.phase, targets=excluded.targets, "
                "data=excluded.data",
                (
                    incident.id,
                    incident.opened_at,
                    incident.closed_at,
                    incident.rule,
                    incident.severity,
                    incident.phase,
                    json.dumps(incident.targets),
                    json.dumps(incident.data),
                ),
            )
        )

    async def open_incidents(self) -> list[IncidentRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM incidents WHERE closed_at IS NULL ORDER BY opened_at"
            ).fetchall()
        )
        return [incident_from_row(row) for row in rows]

    async def get_incident(self, incident_id: str) -> IncidentRecord | None:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM incidents WHERE id = ? OR id LIKE ? ORDER BY opened_at",
                (incident_id, f"{incident_id}%"),
            ).fetchall()
        )
        return pick_incident(rows, incident_id)

    async def recent_incidents(self, limit: int = 20) -> list[IncidentRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM incidents ORDER BY opened_at DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [incident_from_row(row) for row in rows]

    # events

    async def add_event(self, event: EventRecord) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO events (incident_id, at, kind, data) VALUES (?,?,?,?)",
                (event.incident_id, event.at, event.kind, json.dumps(event.data, default=str)),
            )
        )

    async def events(self, incident_id: str) -> list[EventRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT id, incident_id, at, kind, data FROM events WHERE incident_id = ? "
                "ORDER BY id",
                (incident_id,),
            ).fetchall()
        )
        return [EventRecord(r[1], r[2], r[3], json.loads(r[4]), r[0]) for r in rows]

    # journal

    async def journal_intent(self, action: ActionRecord) -> ActionRecord:
        def write(c: sqlite3.Connection) -> ActionRecord:
            row = c.execute("SELECT * FROM actions WHERE key = ?", (action.key,)).fetchone()
            if row is not None:
                return action_from_row(row)
            c.execute(
                "INSERT INTO actions VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    action.key,
                    action.incident_id,
                    action.kind,
                    action.target,
                    json.dumps(action.intent),
                    action.state,
                    action.created_at,
                    json.dumps(action.outcome),
                    action.finished_at,
                ),
            )
            return action

        return await self._run(write)

    async def journal_outcome(
        self, key: str, state: str, outcome: dict[str, Any], at: float
    ) -> None:
        def write(c: sqlite3.Connection) -> None:
            cursor = c.execute(
                "UPDATE actions SET state = ?, outcome = ?, finished_at = ? WHERE key = ?",
                (state, json.dumps(outcome, default=str), at, key),
            )
            if cursor.rowcount != 1:
                raise StoreError(f"journal has no intent for action {key!r}")

        await self._run(write)

    async def unfinished_actions(self) -> list[ActionRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM actions WHERE state = 'intent' ORDER BY created_at"
            ).fetchall()
        )
        return [action_from_row(row) for row in rows]

    async def actions(self, incident_id: str) -> list[ActionRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM actions WHERE incident_id = ? ORDER BY created_at", (incident_id,)
            ).fetchall()
        )
        return [action_from_row(row) for row in rows]

    async def rollbacks_since(self, since: float, target: str | None = None) -> list[ActionRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM actions WHERE kind = 'rollback' AND state IN ('done', 'intent') "
                "AND created_at >= ? AND (? IS NULL OR target = ?) ORDER BY created_at",
                (since, target, target),
            ).fetchall()
        )
        return [action_from_row(row) for row in rows]

    # silences

    async def save_silence(self, silence: SilenceRecord) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO silences VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "ends_at=excluded.ends_at, expired_at=excluded.expired_at, "
                "comment=excluded.comment",
                (
                    silence.id,
                    json.dumps(silence.matchers),
                    silence.starts_at,
                    silence.ends_at,
                    silence.created_by,
                    silence.comment,
                    silence.origin,
                    silence.expired_at,
                ),
            )
        )

    async def silences(
        self, include_expired: bool = False, now: float = 0.0
    ) -> list[SilenceRecord]:
        rows = await self._run(
            lambda c: c.execute("SELECT * FROM silences ORDER BY starts_at").fetchall()
        )
        return silences_from_rows(rows, include_expired, now)

    # the version ledger

    async def ledger(self, target: str) -> list[LedgerEntry]:
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT {LEDGER_COLUMNS} FROM version_ledger WHERE target = ? "  # noqa: S608
                "ORDER BY went_live_at IS NULL, went_live_at, rowid",
                (target,),
            ).fetchall()
        )
        return [ledger_from_row(row) for row in rows]

    async def save_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        query = ledger_upsert("version_ledger", "?", "MIN")
        params = [ledger_params(entry) for entry in entries]
        await self._run(lambda c: c.executemany(query, params))


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    current = row[0] or 0
    if current > len(MIGRATIONS):
        raise StoreError(
            f"state store schema version {current} is newer than this watchdog knows "
            f"({len(MIGRATIONS)}); upgrade the watchdog"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        with conn:
            # The version is our own integer, not input.
            script = f"BEGIN;{MIGRATIONS[version - 1]};INSERT INTO schema_version VALUES ({version});COMMIT;"  # noqa: S608, E501
            conn.executescript(script)


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
        data=json.loads(row[7]),
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


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


def open_store(location: str) -> Store:
    """``WATCHDOG_STATE``: a SQLite file path, or a ``postgresql://`` URL (replicas)."""
    if is_postgres(location):
        try:
            from watchdog.store_postgres import PostgresStore
        except ImportError as exc:
            raise ConfigError(
                "WATCHDOG_STATE is a PostgreSQL URL but psycopg is not installed "
                "(pip install 'rollback-watchdog[postgres]')"
            ) from exc
        return PostgresStore(location)
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ConfigError(
            f"WATCHDOG_STATE: unsupported scheme {scheme!r} "
            "(expected a file path or a postgresql:// URL)"
        )
    return SQLiteStore(location)
