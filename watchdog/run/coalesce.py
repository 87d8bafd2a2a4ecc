"""At most one run of a job at a time, later calls sharing the next run: how reloads are
coalesced, so a storm of them costs two loads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Coalesced:
    """Runs ``job`` at most once at a time. Calls that arrive while it runs share the
    next run, which starts when it ends and reads the files as they are then (the
    last one wins): a storm of reloads costs two loads, not one per request."""

    def __init__(self, job: Callable[[], Awaitable[bool]]) -> None:
        self._job = job
        self._lock = asyncio.Lock()
        self._asked = 0
        self._done = 0
        self._result = False

    async def __call__(self) -> bool:
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._done >= ticket:  # a run that started after this call covered it
                return self._result
            covered = self._asked
            self._result = await self._job()
            self._done = covered
            return self._result
