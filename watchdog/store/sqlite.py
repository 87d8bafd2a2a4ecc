"""The state store in SQLite: the embedded default (WAL, one worker thread so the
event loop never blocks, versioned migrations)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from watchdog.errors import StoreError
from watchdog.store.base import (
    LEDGER_COLUMNS,
    MINUTES_FORGET,
    MINUTES_SELECT,
    MINUTES_TABLE,
    MINUTES_UPSERT,
    RAMPS_REGRESSED,
    ActionRecord,
    EventRecord,
    IncidentRecord,
    LedgerEntry,
    MinuteRow,
    RampRecord,
    SilenceRecord,
    action_from_row,
    event_params,
    incident_from_row,
    incident_params,
    ledger_from_row,
    ledger_params,
    ledger_upsert,
    pick_incident,
    ramp_from_row,
    ramp_params,
    ramp_upsert,
    ramps_ddl,
    ramps_query,
    silences_from_rows,
)

T = TypeVar("T")


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
    # 3: per-minute counts for burn-rate windows across restarts
    MINUTES_TABLE.format(real="REAL"),
    ramps_ddl("REAL"),  # 4: "ramps"
    RAMPS_REGRESSED,  # 5: a ramp's regression verdict survives a restart
)


INCIDENT_UPSERT = (
    "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
    "closed_at=excluded.closed_at, phase=excluded.phase, targets=excluded.targets, "
    "data=excluded.data"
)
EVENT_INSERT = "INSERT INTO events (incident_id, at, kind, data) VALUES (?,?,?,?)"


class SQLiteStore:
    """SQLite in WAL mode on one worker thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:  # its worker thread is gone: say so as a StoreError
            raise StoreError(f"state store {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._transaction, fn
        )

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one transaction, committed on success; a database error is a
        ``StoreError``."""
        with self._lock:
            if self._conn is None:
                raise StoreError("store is not open")
            try:
                with self._conn:
                    result = fn(self._conn)
                if isinstance(result, sqlite3.Cursor):
                    # Freed on the event loop, a cursor would reset its cached
                    # statement while this thread runs it again: SQLITE_MISUSE.
                    result.close()
                return result
            except sqlite3.Error as exc:
                raise StoreError(f"state store {self.path}: {exc}") from exc

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
        await self._run(lambda c: c.execute(INCIDENT_UPSERT, incident_params(incident)))

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

    async def has_incident(self, incident_id: str) -> bool:
        row = await self._run(
            lambda c: c.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        )
        return row is not None

    async def recent_incidents(self, limit: int = 20) -> list[IncidentRecord]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM incidents ORDER BY opened_at DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [incident_from_row(row) for row in rows]

    # events

    async def add_event(self, event: EventRecord) -> None:
        await self._run(lambda c: c.execute(EVENT_INSERT, event_params(event)))

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

    # burn-rate history

    async def save_minutes(
        self, signal: str, rows: Sequence[MinuteRow], forget_before: float
    ) -> None:
        def write(c: sqlite3.Connection) -> None:
            with c:
                c.executemany(MINUTES_UPSERT.format(p="?"), [(signal, *row) for row in rows])
                c.execute(MINUTES_FORGET.format(p="?"), (signal, forget_before))

        await self._run(write)

    async def minutes(self, signal: str, since: float) -> list[MinuteRow]:
        query = MINUTES_SELECT.format(p="?")
        rows = await self._run(lambda c: c.execute(query, (signal, since)).fetchall())
        return [(float(m), float(e), float(n)) for m, e, n in rows]

    async def save_ramp(self, ramp: RampRecord) -> None:
        await self._run(lambda c: c.execute(ramp_upsert("?"), ramp_params(ramp)))

    async def ramps(self, active_only: bool = False) -> list[RampRecord]:
        rows = await self._run(lambda c: c.execute(ramps_query(active_only)).fetchall())
        return [ramp_from_row(row) for row in rows]


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
