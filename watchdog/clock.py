"""Injected time: the live daemon uses the system clock, tests and backtests a virtual one."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Iterator
from typing import Protocol


class Clock(Protocol):
    """What the logic may know about time."""

    def now(self) -> float:
        """Wall-clock time as Unix seconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A virtual clock: time moves only when ``advance`` is called.

    ``sleep`` parks the caller until virtual time reaches its deadline, so a test
    can run hours of daemon loop in milliseconds with ``await clock.advance(3600)``.
    As with the real clocks, sleeps run on monotonic time and ``set`` moves only the
    wall clock (an NTP step, a resumed VM): a jump wakes no sleeper and delays none.
    """

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []  # monotonic
        self._seq = 0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: float) -> None:
        """Jump the wall clock (forwards or backwards); monotonic time and sleepers
        are not affected."""
        self._now = when

    def _tick(self, seconds: float) -> None:
        """Let ``seconds`` pass on both clocks."""
        if seconds > 0:
            self._mono += seconds
            self._now += seconds

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._mono + max(0.0, seconds), self._seq, fut))
        await fut

    async def advance(self, seconds: float, step: float | None = None) -> None:
        """Move time forward, waking each sleeper at its deadline in order."""
        target = self._mono + seconds
        while True:
            await _settle()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._tick(deadline - self._mono)
            fut.set_result(None)
            if step is not None:
                await asyncio.sleep(0)
        self._tick(target - self._mono)
        await _settle()


class AutoClock(FakeClock):
    """Virtual time that runs itself: whenever the program has been waiting for a
    moment of real time, jump to the earliest virtual deadline and wake everyone due.

    Real I/O (loopback HTTP) still takes its real milliseconds; only the waits between
    things are skipped. ``rollback-watchdog demo --virtual-time`` and the demo's tests
    run minutes of the real daemon in seconds this way."""

    def __init__(
        self, start: float | None = None, idle_s: float = 0.002, max_busy_s: float = 2.0
    ) -> None:
        super().__init__(time.time() if start is None else start)
        self.idle_s = idle_s
        self.max_busy_s = max_busy_s
        self._busy = 0

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold virtual time still while real work (an HTTP exchange) is in flight."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    async def run(self) -> None:
        """Drive time forever (run it as a task; cancel it to stop)."""
        busy_since: float | None = None
        while True:
            await asyncio.sleep(self.idle_s)
            if self._busy:
                # Real work in flight: wait for it, but not forever (a hung request
                # must meet its own timeout, which may be on this clock).
                busy_since = busy_since or time.monotonic()
                if time.monotonic() - busy_since < self.max_busy_s:
                    continue
            busy_since = None
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                continue
            deadline = self._sleepers[0][0]
            self._tick(deadline - self._mono)
            while self._sleepers and self._sleepers[0][0] <= deadline:
                _, _, fut = heapq.heappop(self._sleepers)
                if not fut.done():
                    fut.set_result(None)


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run until they block again (on I/O or a virtual sleep)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
