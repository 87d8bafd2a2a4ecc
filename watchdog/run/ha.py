"""Only the leader acts; every replica samples.

``LeaderGate`` sits between the daemon's decisions (and the incident ticker) and the
``IncidentManager``. A follower keeps sampling, evaluating and recording decisions
(they stay visible in /api/v1/status), stays ready, and hands nothing to its manager.
On election it restores open incidents and unfinished journal actions from the shared
store, then catches up on what it saw while following: a breach that began while the
old leader was dying, which no incident covers yet, is acted on now (the engine
decides once per transition, so it would not decide again). On losing the lead it
stops acting at once.

Silences live in the shared store, and any replica's API may add one: with an
election, each tick (and each decision the leader acts on) reads them again, so a
silence set through a follower holds on the leader within a tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from watchdog.core.decision import Decision, DecisionKind
from watchdog.core.evaluator import State
from watchdog.errors import StoreError
from watchdog.incidents.manager import IncidentManager
from watchdog.run.daemon import Watchdog
from watchdog.run.leader import AlwaysLeader, Leadership
from watchdog.run.ramp import Ramps
from watchdog.run.ramp_restore import restore as restore_ramps

log = structlog.get_logger("watchdog.run.ha")

# How far back the catch-up looks for an incident that already covers a breach.
CATCH_UP_HISTORY = 200


class LeaderGate:
    """Lets decisions and ticks through to the manager while this replica leads."""

    def __init__(
        self, leadership: Leadership, manager: IncidentManager, watchdog: Watchdog
    ) -> None:
        self.leadership = leadership
        self.manager = manager
        self.watchdog = watchdog
        # A single replica (SQLite) acts from the start, as before there were replicas.
        self.acting = leadership.is_leader
        # Replicas share the store; a lone process is the only writer of its silences.
        self.shared = not isinstance(leadership, AlwaysLeader)
        self._tasks: set[asyncio.Task[None]] = set()
        self.ramps: Ramps | None = None  # the daemon's ramps: run by the leader only
        leadership.on_elected = self.elected
        leadership.on_deposed = self.deposed
        watchdog.metrics.leader.set(1 if self.acting else 0)

    # --- the gate ----------------------------------------------------------------------

    async def on_decision(self, decision: Decision) -> None:
        if not self.acting:
            log.info(
                "following: the leader acts on this decision",
                rule=decision.rule,
                kind=decision.kind.value,
            )
            return
        await self._refresh_silences()
        await self._act(self.manager.on_decision(decision))

    async def tick(self) -> None:
        await self._refresh_silences()
        if self.acting:
            await self._act(self.manager.tick())

    async def _refresh_silences(self) -> None:
        if not self.shared:
            return
        try:
            await self.manager.silences.load()
        except StoreError as exc:
            log.warning("could not re-read silences; using the last known", error=str(exc))

    async def _act(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` where ``deposed`` can cancel it, without cancelling the caller."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.cancelled():
            task.result()  # its error, if any, is the caller's

    # --- leadership changes --------------------------------------------------------------

    async def elected(self) -> None:
        """Take over: the store's open incidents and unfinished actions, then act."""
        self.manager.open.clear()
        await self.manager.restore()
        if self.ramps is not None:
            self.ramps.leading = True
            await restore_ramps(self.ramps)
        # From here decisions go through live; everything recorded before is caught up.
        self.acting = True
        self.watchdog.metrics.leader.set(1)
        await self._catch_up(list(self.watchdog.decisions))

    async def deposed(self) -> None:
        """Stop acting at once: nothing new starts, what is in flight is cancelled."""
        self.acting = False
        self.watchdog.metrics.leader.set(0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.manager.stand_down()
        if self.ramps is not None:
            self.ramps.leading = False
            await self.ramps.stop()  # the store keeps them: the next leader resumes them
        log.warning("no longer leading: sampling only")

    async def stop(self) -> None:
        """Shutdown, after the manager drained: release the lead for another replica."""
        self.acting = False
        await self.leadership.stop()
        self.watchdog.metrics.leader.set(0)

    def describe(self) -> dict[str, Any]:
        return {**self.leadership.describe(), "acting": self.acting}

    async def _catch_up(self, seen: list[Decision]) -> None:
        """Act on each rule's last decision seen while following, if nobody has."""
        latest: dict[str, Decision] = {}
        for decision in seen:
            if decision.kind is not DecisionKind.BLIND:
                latest[decision.rule] = decision
        if not latest:
            return
        history = await self.manager.store.recent_incidents(CATCH_UP_HISTORY)
        for rule, decision in latest.items():
            state = self.watchdog.engine.states.get(rule)
            firing = state is not None and state.state is State.FIRING
            open_for_rule = any(i.record.rule == rule for i in self.manager.open.values())
            if decision.kind is DecisionKind.RESOLVED:
                # The old leader may have died before it saw the rule recover.
                if open_for_rule and not firing:
                    await self._replay(decision)
                continue
            since = decision.first_breach_at or decision.decided_at
            covered = any(
                record.rule == rule and (record.closed_at is None or record.closed_at >= since)
                for record in history
            )
            if firing and not covered:
                await self._replay(decision)

    async def _replay(self, decision: Decision) -> None:
        log.warning(
            "taking over: acting on a decision made while following",
            rule=decision.rule,
            kind=decision.kind.value,
        )
        await self.on_decision(decision)
