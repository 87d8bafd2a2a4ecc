"""Reload the rules when their files change, without anyone sending SIGHUP.

Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and
swapping the ``..data`` symlink to it; the visible files are symlinks through
``..data``, so their own mtime never changes and an inotify watch on them sees
nothing. Polling sees it: every ``interval_s`` the watcher hashes what each rules
path resolves to (and notes where ``..data`` points) and calls ``on_change`` when
that differs from the last look. A file edited in place, added to or removed from a
rules directory is a change too; a ``touch`` that leaves the content alone is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

import structlog

from watchdog.clock import Clock
from watchdog.errors import ConfigError
from watchdog.rules.load import rule_files

log = structlog.get_logger("watchdog.rules.watch")

# name -> digest ("sha256:...", "missing", "unreadable: ...", "-> target" for ..data)
Fingerprint = dict[str, str]
Scanner = Callable[[Sequence[str | Path]], Awaitable[Fingerprint]]

DEFAULT_INTERVAL_S = 10.0
_CONFIGMAP_LINK = "..data"


def fingerprint(paths: Iterable[str | Path]) -> Fingerprint:
    """What the rules paths hold right now. Never raises: a missing or unreadable
    file is part of the fingerprint, so its return is a change as well."""
    paths = list(paths)
    out: Fingerprint = {}
    for raw in paths:
        link = Path(raw) / _CONFIGMAP_LINK
        if link.is_symlink():
            try:
                out[str(link)] = "-> " + os.readlink(link)
            except OSError as exc:
                out[str(link)] = f"unreadable: {exc.strerror}"
    for file in rule_files(paths):
        out[str(file)] = _digest(file)
    return out


def _digest(file: Path) -> str:
    # Whole-content hash: rules files are a few KB, and a hash cannot be fooled by
    # an mtime that did not move or moved without a change.
    try:
        if not file.is_file():  # a FIFO named as the rules file: never read it
            return "missing" if not file.exists() else "not a regular file"
        return "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


async def fingerprint_off_loop(paths: Sequence[str | Path]) -> Fingerprint:
    return await asyncio.to_thread(fingerprint, paths)


def changed_names(before: Fingerprint, after: Fingerprint) -> list[str]:
    """The paths whose digest differs, appeared or disappeared."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


async def watch_rules(
    paths: str | Path | Sequence[str | Path],
    clock: Clock,
    on_change: Callable[[], Awaitable[object]],
    interval_s: float = DEFAULT_INTERVAL_S,
    scan: Scanner | None = None,
) -> None:
    """Poll ``paths`` (files or directories, as ``WATCHDOG_RULES`` names them) every
    ``interval_s`` of ``clock`` and await ``on_change()`` after each change. Runs until
    cancelled. ``on_change`` decides what a bad file means (the runtime's reload keeps
    the last good rules); an exception from it is logged and the watch goes on.

    The scan runs in a worker thread (``scan``): a read that blocks (a hung mount)
    must not stop sampling. Virtual-time tests pass an on-loop scan to stay
    deterministic."""
    if interval_s <= 0:
        raise ConfigError(f"rules watch interval must be > 0 seconds, got {interval_s}")
    # A lone str is a Sequence too: one path, not one path per character.
    watched: list[str | Path] = [paths] if isinstance(paths, str | Path) else list(paths)
    look = scan or fingerprint_off_loop
    last = await look(watched)
    while True:
        await clock.sleep(interval_s)
        current = await look(watched)
        if current == last:
            continue
        names = changed_names(last, current)
        last = current
        log.info("rules files changed; reloading", changed=names)
        try:
            await on_change()
        except Exception:  # boundary: one failed reload must not end the watch
            log.exception("reload after a rules file change failed", changed=names)
