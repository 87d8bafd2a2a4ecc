"""Fixtures for the fault matrix (only fixtures live here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def uncached_structlog() -> Iterator[None]:
    """``capture_logs`` needs loggers that are not cached from an earlier test's
    production set-up; restore structlog's defaults around every row."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
