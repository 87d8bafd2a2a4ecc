"""PostgreSQL's advisory lock keys, and the versioned migrations run under one so that
replicas starting together migrate once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watchdog.errors import StoreError

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.AsyncConnection[tuple[Any, ...]]


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` (PostgreSQL's bigint)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_LOCK = advisory_key("rollback-watchdog/migrate")


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
