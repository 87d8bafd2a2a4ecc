"""Durable state behind one ``Store`` protocol: incidents and their timeline, the
action journal, silences and the version ledger. SQLite is the embedded default,
PostgreSQL serves replicas; ``open_store`` picks one from ``WATCHDOG_STATE``.

- ``base``: Durable state: incidents and their timeline, the action journal, silences, and the
  version ledger per target (watchdog/ledger.py).
- ``lock``: One daemon per SQLite state file: ``run`` holds an exclusive ``flock`` on a lock
  file beside the database for as long as it lives.
- ``postgres``: The state store in PostgreSQL, for replicas that share one state
  (``WATCHDOG_STATE`` = ``postgresql://…``).
- ``postgres_migrate``: PostgreSQL advisory lock keys; the migrations, run once under one.
- ``sqlite``: The state store in SQLite: the embedded default (WAL, one worker thread so the
  event loop never blocks, versioned migrations).
"""

from __future__ import annotations

from watchdog.errors import ConfigError
from watchdog.store.base import Store
from watchdog.store.sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


def open_store(location: str) -> Store:
    """``WATCHDOG_STATE``: a SQLite file path, or a ``postgresql://`` URL (replicas)."""
    if is_postgres(location):
        try:
            from watchdog.store.postgres import PostgresStore
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
