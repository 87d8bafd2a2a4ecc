"""One daemon per SQLite state file: ``run`` holds an exclusive ``flock`` on a lock file
beside the database for as long as it lives.

Two daemons on one file would each keep their own silences in memory and ignore the
other's (a silence set through one, a rollback by the other). The lock file names its
holder (pid, start time) so the refused second start can say who holds it. The kernel
drops the lock when the holder dies, ``kill -9`` included: no stale lock to clean up.

Only ``run`` takes it: ``status``, ``silence``, ``postmortem``, ``targets`` and
``rollback`` open the store without it and keep working beside a running daemon.
PostgreSQL replicas share a store on purpose (leader election decides who acts).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from watchdog.errors import StoreError
from watchdog.store import is_postgres
from watchdog.units import iso


@dataclass
class StateLock:
    """A held lock; ``release`` (or the process's end) lets the next daemon start."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def lock_path(location: str) -> Path:
    return Path(f"{location}.lock")


def acquire(location: str, started_at: float) -> StateLock | None:
    """Lock the SQLite state at ``location`` for this process; ``StoreError`` naming
    the holder when another process has it. None for PostgreSQL and ``:memory:``."""
    if is_postgres(location) or location == ":memory:":
        return None
    path = lock_path(location)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the state lock {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise StoreError(
            f"another watchdog already runs on the state {location} ({holder}; it holds "
            f"{path}). Two daemons on one state ignore each other's silences: stop that one "
            "first, or give this one its own WATCHDOG_STATE"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock the state {path}: {exc}") from None
    record = json.dumps({"pid": os.getpid(), "started_at": started_at}).encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
    except OSError as exc:  # held but unlabelled: still one daemon; say why it is unnamed
        os.close(fd)
        raise StoreError(f"cannot write the state lock {path}: {exc}") from None
    return StateLock(path, fd)


def _holder(fd: int) -> str:
    """``pid 4242, started 2026-12-03T02:00:00Z`` from the lock file, as far as readable."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid = int(data["pid"])
        started = float(data["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return "a process whose pid the lock file does not say"
    return f"pid {pid}, started {iso(started)}"
