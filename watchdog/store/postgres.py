"""The state store in PostgreSQL, for replicas that share one state (``WATCHDOG_STATE`` =
``postgresql://…``). Same ``Store`` protocol and semantics as ``SQLiteStore``.

- One ``psycopg.AsyncConnection``, one operation at a time (an ``asyncio.Lock``), each
  in its own transaction, committed before the call returns: the event loop never
  blocks and the journal-first rule holds across processes.
- Versioned migrations, serialised between replicas that start together by a
  transaction-level advisory lock.
- JSON lives in TEXT columns, exactly as SQLite keeps it: an incident's state is kept
  as the text written, and one stored before its format 1 may hold NaN (a manual
  rollback has no observed value), which PostgreSQL's json types refuse.
- ``seq`` columns break ties in ``ORDER BY`` by insertion order, as SQLite's rowid does.
- A broken or timed-out connection is dropped and the next call reconnects (a
  database restart or failover costs the calls made during it, not the process).

psycopg is imported here only: SQLite users need not install it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from watchdog.errors import StoreError
from watchdog.redact import redact_url
from watchdog.store import base as sql  # the signal_minutes statements
from watchdog.store.base import (
    LEDGER_COLUMNS,
    ActionRecord,
    EventRecord,
    IncidentRecord,
    LedgerEntry,
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
    ramps_query,
    silences_from_rows,
)
from watchdog.store.postgres_migrate import MIGRATIONS, migrate

if TYPE_CHECKING:
    Conn = psycopg.AsyncConnection[tuple[Any, ...]]

T = TypeVar("T")

# The URL without its password, for log lines and errors (the one shared helper).
redact = redact_url


class PostgresStore:
    """The ``Store`` protocol on one PostgreSQL connection."""

    def __init__(self, url: str, timeout_s: float = 30.0, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._conn: Conn | None = None
        self._open = False
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return redact(self.url)

    # --- connection ------------------------------------------------------------------

    async def _connect(self) -> Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s + 1.0):
                return await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,  # each operation opens its own transaction
                    connect_timeout=max(1, int(self.connect_timeout_s)),
                    application_name="rollback-watchdog",
                )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            raise StoreError(f"cannot connect to state store {self.where}: {exc}") from exc

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction; a connection left in doubt is dropped."""
        async with self._lock:
            if not self._open:
                raise StoreError("store is not open")
            if self._conn is None or self._conn.closed:
                self._conn = await self._connect()
            conn = self._conn
            finished = False
            try:
                async with asyncio.timeout(self.timeout_s):
                    async with conn.transaction():
                        result = await fn(conn)
                finished = True
                return result
            except TimeoutError as exc:
                raise StoreError(
                    f"state store {self.where}: no answer within {self.timeout_s:g}s"
                ) from exc
            except psycopg.Error as exc:
                raise StoreError(f"state store {self.where}: {exc}") from exc
            finally:
                if not finished and (
                    conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
                ):
                    await self._discard()

    async def open(self) -> None:
        self._open = True
        try:
            await self._run(lambda conn: migrate(conn, MIGRATIONS))
        except StoreError as exc:
            self._open = False
            await self._discard()
            raise StoreError(f"cannot open state store: {exc}") from exc

    async def close(self) -> None:
        async with self._lock:
            self._open = False
            await self._discard()

    # --- incidents ---------------------------------------------------------------------

    async def save_incident(self, incident: IncidentRecord) -> None:
        params = incident_params(incident)
        await self._run(
            lambda c: c.execute(
                "INSERT INTO incidents (id, opened_at, closed_at, rule, severity, phase, targets, "
                "data) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (id) DO UPDATE SET closed_at = excluded.closed_at, "
                "phase = excluded.phase, targets = excluded.targets, data = excluded.data",
                params,
            )
        )

    async def open_incidents(self) -> list[IncidentRecord]:
        rows = await self._rows(
            "SELECT id, opened_at, closed_at, rule, severity, phase, targets, data FROM incidents "
            "WHERE closed_at IS NULL ORDER BY opened_at, seq"
        )
        return [incident_from_row(row) for row in rows]

    async def get_incident(self, incident_id: str) -> IncidentRecord | None:
        # ILIKE: SQLite's LIKE ignores ASCII case, and the prefix match must behave alike.
        rows = await self._rows(
            "SELECT id, opened_at, closed_at, rule, severity, phase, targets, data FROM incidents "
            "WHERE id = %s OR id ILIKE %s "
            "ORDER BY opened_at, seq",
            (incident_id, f"{incident_id}%"),
        )
        return pick_incident(rows, incident_id)

    async def has_incident(self, incident_id: str) -> bool:
        rows = await self._rows("SELECT 1 FROM incidents WHERE id = %s", (incident_id,))
        return bool(rows)

    async def recent_incidents(self, limit: int = 20) -> list[IncidentRecord]:
        rows = await self._rows(
            "SELECT id, opened_at, closed_at, rule, severity, phase, targets, data FROM incidents "
            "ORDER BY opened_at DESC, seq DESC LIMIT %s",
            (limit,),
        )
        return [incident_from_row(row) for row in rows]

    # --- events ------------------------------------------------------------------------

    async def add_event(self, event: EventRecord) -> None:
        params = event_params(event)
        await self._run(
            lambda c: c.execute(
                "INSERT INTO events (incident_id, at, kind, data) VALUES (%s,%s,%s,%s)", params
            )
        )

    async def events(self, incident_id: str) -> list[EventRecord]:
        rows = await self._rows(
            "SELECT id, incident_id, at, kind, data FROM events WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        )
        return [EventRecord(r[1], r[2], r[3], json.loads(r[4]), r[0]) for r in rows]

    # --- journal -----------------------------------------------------------------------

    async def journal_intent(self, action: ActionRecord) -> ActionRecord:
        params = (
            action.key,
            action.incident_id,
            action.kind,
            action.target,
            json.dumps(action.intent),
            action.state,
            action.created_at,
            json.dumps(action.outcome),
            action.finished_at,
        )

        async def write(c: Conn) -> ActionRecord:
            # Race-free between replicas: the key's unique index decides who inserted.
            cursor = await c.execute(
                "INSERT INTO actions (key, incident_id, kind, target, intent, state, created_at, "
                "outcome, finished_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (key) DO NOTHING RETURNING key",
                params,
            )
            if await cursor.fetchone() is not None:
                return action
            cursor = await c.execute(
                "SELECT key, incident_id, kind, target, intent, state, created_at, outcome, "
                "finished_at FROM actions WHERE key = %s",
                (action.key,),
            )
            row = await cursor.fetchone()
            if row is None:  # unreachable: the conflict proves the row exists
                raise StoreError(f"journal lost action {action.key!r}")
            return action_from_row(row)

        return await self._run(write)

    async def journal_outcome(
        self, key: str, state: str, outcome: dict[str, Any], at: float
    ) -> None:
        params = (state, json.dumps(outcome, default=str), at, key)

        async def write(c: Conn) -> None:
            cursor = await c.execute(
                "UPDATE actions SET state = %s, outcome = %s, finished_at = %s WHERE key = %s",
                params,
            )
            if cursor.rowcount != 1:
                raise StoreError(f"journal has no intent for action {key!r}")

        await self._run(write)

    async def unfinished_actions(self) -> list[ActionRecord]:
        rows = await self._rows(
            "SELECT key, incident_id, kind, target, intent, state, created_at, outcome, "
            "finished_at FROM actions WHERE state = 'intent' ORDER BY created_at, seq"
        )
        return [action_from_row(row) for row in rows]

    async def actions(self, incident_id: str) -> list[ActionRecord]:
        rows = await self._rows(
            "SELECT key, incident_id, kind, target, intent, state, created_at, outcome, "
            "finished_at FROM actions WHERE incident_id = %s ORDER BY created_at, seq",
            (incident_id,),
        )
        return [action_from_row(row) for row in rows]

    async def rollbacks_since(self, since: float, target: str | None = None) -> list[ActionRecord]:
        rows = await self._rows(
            "SELECT key, incident_id, kind, target, intent, state, created_at, outcome, "
            "finished_at FROM actions WHERE kind = 'rollback' "
            "AND state IN ('done', 'intent') AND created_at >= %s "
            "AND (%s::text IS NULL OR target = %s) ORDER BY created_at, seq",
            (since, target, target),
        )
        return [action_from_row(row) for row in rows]

    # --- silences ----------------------------------------------------------------------

    async def save_silence(self, silence: SilenceRecord) -> None:
        params = (
            silence.id,
            json.dumps(silence.matchers),
            silence.starts_at,
            silence.ends_at,
            silence.created_by,
            silence.comment,
            silence.origin,
            silence.expired_at,
        )
        await self._run(
            lambda c: c.execute(
                "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, "
                "origin, expired_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at, "
                "expired_at = excluded.expired_at, comment = excluded.comment",
                params,
            )
        )

    async def silences(
        self, include_expired: bool = False, now: float = 0.0
    ) -> list[SilenceRecord]:
        rows = await self._rows(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment, origin, expired_at "
            "FROM silences ORDER BY starts_at, seq"
        )
        return silences_from_rows(rows, include_expired, now)

    # --- the version ledger ------------------------------------------------------------

    async def ledger(self, target: str) -> list[LedgerEntry]:
        rows = await self._rows(
            f"SELECT {LEDGER_COLUMNS} FROM version_ledger WHERE target = %s "  # noqa: S608
            "ORDER BY went_live_at ASC NULLS LAST, seq",
            (target,),
        )
        return [ledger_from_row(row) for row in rows]

    async def save_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        query = ledger_upsert("version_ledger", "%s", "LEAST")
        params = [ledger_params(entry) for entry in entries]

        async def write(c: Conn) -> None:
            async with c.cursor() as cursor:
                await cursor.executemany(query, params)

        if params:
            await self._run(write)

    async def save_minutes(
        self, signal: str, rows: Sequence[sql.MinuteRow], forget_before: float
    ) -> None:
        async def write(c: Conn) -> None:  # one transaction (``_run``)
            async with c.cursor() as cursor:
                params = [(signal, *row) for row in rows]
                await cursor.executemany(sql.MINUTES_UPSERT.format(p="%s"), params)
                await cursor.execute(sql.MINUTES_FORGET.format(p="%s"), (signal, forget_before))

        await self._run(write)

    async def minutes(self, signal: str, since: float) -> list[sql.MinuteRow]:
        rows = await self._rows(sql.MINUTES_SELECT.format(p="%s"), (signal, since))
        return [(float(m), float(e), float(n)) for m, e, n in rows]

    async def save_ramp(self, ramp: RampRecord) -> None:
        async def write(c: Conn) -> None:
            await c.execute(ramp_upsert("%s"), ramp_params(ramp))

        await self._run(write)

    async def ramps(self, active_only: bool = False) -> list[RampRecord]:
        return [ramp_from_row(row) for row in await self._rows(ramps_query(active_only))]

    # --- helpers -----------------------------------------------------------------------

    async def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def read(c: Conn) -> list[tuple[Any, ...]]:
            cursor = await c.execute(query, params)
            return await cursor.fetchall()

        return await self._run(read)
