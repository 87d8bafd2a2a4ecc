"""Fixtures for every test directory (only fixtures live here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

# A real PostgreSQL on loopback: the store suite runs on it beside SQLite, and the
# leader election and HA tests need it.
from tests.integration.postgres_fixture import postgres_cluster, postgres_url

__all__ = ["postgres_cluster", "postgres_url"]


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults: a test that configures
    logging (the CLI does) must not leave later tests writing to its closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level
