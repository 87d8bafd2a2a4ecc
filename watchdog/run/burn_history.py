"""Burn-rate history across restarts: each closed minute of the signals burn-rate rules
watch goes to the store (``signal_minutes``, pruned past the longest window), and a
start gives the engine back what the store holds, so windows of hours and days do
not start empty (and inconclusive) after every deploy of the watchdog itself.

The minute still open when the process stops is lost (at most one minute of counts);
minutes while it was down are missing, as no sample saw them.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable

import structlog

from watchdog.core.burn import BUCKET_S
from watchdog.core.engine import Engine, Observation
from watchdog.errors import StoreError
from watchdog.store.base import Store

log = structlog.get_logger("watchdog.run.burn_history")


class BurnHistory:
    """Writes closed minutes as samples arrive; restores them on start."""

    def __init__(self, store: Store, engine: Callable[[], Engine]) -> None:
        self._store = store
        self._engine = engine
        self._written: dict[str, float] = {}  # signal -> start of its last minute written
        self._writes: set[asyncio.Task[None]] = set()
        self._horizons: tuple[object, dict[str, float]] = (None, {})  # (rule set, horizons)

    def _horizons_of(self, engine: Engine) -> dict[str, float]:
        """``engine.burn_horizons()``, once per rule set (this runs on every sample)."""
        ruleset, horizons = self._horizons
        if ruleset is not engine.ruleset:
            horizons = engine.burn_horizons()
            self._horizons = (engine.ruleset, horizons)
        return horizons

    async def restore(self, now: float) -> None:
        """Seed every burn-rate rule with its signal's kept minutes (before sampling)."""
        engine = self._engine()
        for signal, longest in engine.burn_horizons().items():
            try:
                rows = await self._store.minutes(signal, now - longest - BUCKET_S)
            except StoreError as exc:
                log.warning("burn history: cannot read it", signal=signal, error=str(exc))
                continue
            engine.restore_minutes(signal, rows)
            if rows:
                self._written[signal] = rows[-1][0]
                log.info("burn history restored", signal=signal, minutes=len(rows))

    def observed(self, observation: Observation) -> None:
        """An observation hook: a minute that closed with this sample is written."""
        engine = self._engine()
        signal = observation.signal
        longest = self._horizons_of(engine).get(signal)
        if longest is None:
            return
        rule = next(r for r in engine.rules_for(signal) if r.burn_rate is not None)
        starts, errors, requests = engine.states[rule.name].minutes
        written = self._written.get(signal, float("-inf"))
        if len(starts) < 2 or starts[-2] <= written:
            return  # no minute closed since the last write (the last one is still open)
        first = bisect_right(starts, written)
        closed = list(zip(starts[first:-1], errors[first:-1], requests[first:-1], strict=True))
        self._written[signal] = closed[-1][0]
        forget = observation.sample.at - longest - BUCKET_S
        task = asyncio.get_running_loop().create_task(self._write(signal, closed, forget))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(
        self, signal: str, rows: list[tuple[float, float, float]], forget: float
    ) -> None:
        try:
            await self._store.save_minutes(signal, rows, forget)
        except StoreError as exc:  # the counts stay in memory; only a restart loses them
            log.warning("burn history: cannot write it", signal=signal, error=str(exc))

    async def drain(self) -> None:
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
