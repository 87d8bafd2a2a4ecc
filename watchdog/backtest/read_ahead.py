"""Recordings read ahead: big files parsed two at a time while the caller waits.

The array reader (``matrix_fast``) spends most of its time in numpy, which releases
the interpreter's lock, so a second thread nearly halves the wait on two cores.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

Points = Sequence[tuple[float, float]]  # recordings.Points (which imports this module)

_READ_AHEAD_BYTES = 8 << 20


def read_ahead(
    read: Callable[[Path], Points], paths: list[Path], careful: Callable[[Path], Points]
) -> Callable[[Path], Points]:
    """``read``, with ``paths`` read ahead on two threads when they are big and there
    are two cores; a file's error is raised when the caller reaches it, as before.
    ``careful`` (the pure-Python reader) holds the lock throughout: never ahead."""
    if (os.cpu_count() or 1) < 2 or len(paths) < 2 or read is careful:
        return read
    if sum(p.stat().st_size for p in paths) < _READ_AHEAD_BYTES:
        return read
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="recordings") as pool:
        futures = {path: pool.submit(read, path) for path in paths}
        done = {path: _outcome(future) for path, future in futures.items()}
    _release_freed_memory()

    def ahead(path: Path) -> Points:
        if path not in done:
            return read(path)
        points, error = done[path]
        if error is not None:
            raise error
        return points

    return ahead


def _release_freed_memory() -> None:
    """Give back what the reader threads freed: glibc keeps it in their own arenas,
    where the rest of the run cannot reuse it (some 60 MiB more peak RSS for a month
    of 20 signals)."""
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        pass


def _outcome(future: Future[Points]) -> tuple[Points, BaseException | None]:
    error = future.exception()
    return (future.result() if error is None else (), error)
