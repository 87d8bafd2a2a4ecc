"""PostgreSQL's advisory lock keys, the schema's versioned migrations, and their run under
one lock so that replicas starting together migrate once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watchdog.errors import StoreError
from watchdog.store import base as sql  # the signal_minutes statements

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.AsyncConnection[tuple[Any, ...]]


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` (PostgreSQL's bigint)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_LOCK = advisory_key("rollback-watchdog/migrate")

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema (the SQLite one, in PostgreSQL's types)
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY, opened_at DOUBLE PRECISION NOT NULL, closed_at DOUBLE PRECISION,
        rule TEXT NOT NULL, severity TEXT NOT NULL, phase TEXT NOT NULL, targets TEXT NOT NULL,
        data TEXT NOT NULL, seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX incidents_open ON incidents (closed_at);
    CREATE TABLE events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, incident_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL
    );
    CREATE INDEX events_incident ON events (incident_id, id);
    CREATE TABLE actions (
        key TEXT PRIMARY KEY, incident_id TEXT NOT NULL, kind TEXT NOT NULL,
        target TEXT NOT NULL, intent TEXT NOT NULL, state TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, outcome TEXT NOT NULL,
        finished_at DOUBLE PRECISION, seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX actions_state ON actions (state);
    CREATE INDEX actions_incident ON actions (incident_id);
    CREATE INDEX actions_kind_created ON actions (kind, created_at);
    CREATE TABLE silences (
        id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at DOUBLE PRECISION NOT NULL,
        ends_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL,
        origin TEXT NOT NULL, expired_at DOUBLE PRECISION, seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE TABLE healthy_versions (
        target TEXT NOT NULL, version TEXT NOT NULL, seen_at DOUBLE PRECISION NOT NULL,
        seq BIGINT GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (target, version)
    );
    """,
    # 2: the version ledger replaces "healthy versions" (see watchdog/store.py)
    """
    CREATE TABLE version_ledger (
        target TEXT NOT NULL, version TEXT NOT NULL, went_live_at DOUBLE PRECISION,
        how TEXT NOT NULL DEFAULT 'unknown', live_detail TEXT NOT NULL DEFAULT '',
        rolled_away_at DOUBLE PRECISION, rolled_away_why TEXT NOT NULL DEFAULT '',
        verified_at DOUBLE PRECISION, verified_why TEXT NOT NULL DEFAULT '',
        legacy_seen_at DOUBLE PRECISION, seq BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (target, version)
    );
    INSERT INTO version_ledger (target, version, legacy_seen_at)
        SELECT target, version, seen_at FROM healthy_versions ORDER BY seq;
    DROP TABLE healthy_versions;
    """,
    # 3: per-minute counts for burn-rate windows across restarts
    sql.MINUTES_TABLE.format(real="DOUBLE PRECISION"),
    sql.ramps_ddl("DOUBLE PRECISION"),  # 4: "ramps"
    sql.RAMPS_REGRESSED,  # 5: a ramp's regression verdict survives a restart
)


async def migrate(conn: Conn, migrations: Sequence[str]) -> None:
    """Bring the schema to ``len(migrations)``, one version per step, under the lock."""
    # Replicas starting together: the first migrates, the others wait, then see it done.
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    cursor = await conn.execute("SELECT MAX(version) FROM schema_version")
    row = await cursor.fetchone()
    current = (row[0] if row is not None else None) or 0
    if current > len(migrations):
        raise StoreError(
            f"state store schema version {current} is newer than this watchdog knows "
            f"({len(migrations)}); upgrade the watchdog"
        )
    for version in range(current + 1, len(migrations) + 1):
        # Our own constant DDL, no parameters: the simple protocol runs it as one script.
        await conn.execute(migrations[version - 1])
        await conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
