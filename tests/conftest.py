"""Fixtures for every test directory (only fixtures live here)."""

from __future__ import annotations

# A real PostgreSQL on loopback: the store suite runs on it beside SQLite, and the
# leader election and HA tests need it.
from tests.integration.postgres_fixture import postgres_cluster, postgres_url

__all__ = ["postgres_cluster", "postgres_url"]
