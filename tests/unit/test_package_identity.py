"""The import name ``watchdog`` is also a popular PyPI package: make sure ours is the one."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import watchdog

ROOT = Path(__file__).resolve().parents[2]


def test_watchdog_is_this_repository() -> None:
    """``import watchdog`` resolves to this repo's package, not PyPI's filesystem watcher."""
    assert watchdog.__file__ is not None
    assert Path(watchdog.__file__).resolve().parent == ROOT / "watchdog"


def test_pypi_watchdog_is_not_installed() -> None:
    """Nothing pulled in PyPI's ``watchdog`` distribution (it would overwrite our files)."""
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("watchdog")


def test_our_distribution_is_rollback_watchdog() -> None:
    """The installed distribution is rollback-watchdog with its console script."""
    dist = importlib.metadata.distribution("rollback-watchdog")
    scripts = {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
    assert "rollback-watchdog" in scripts
