"""Carry out an incident's actions: journal first, then act, then journal the outcome.

Independent work runs concurrently: the Worker and Pages rollbacks together, each
followed by its own purges, with notifications alongside, so a playbook takes about
as long as its slowest chain. A journal key is unique per incident, action and target:
a replay (after a crash, or a second decision) finds the row and never acts twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from watchdog.actions.base import Purge, Target
from watchdog.actions.notify.base import Notifier
from watchdog.actions.notify.event import IncidentEvent
from watchdog.clock import Clock
from watchdog.errors import ActionError, StoreError
from watchdog.metrics import Metrics
from watchdog.model import ActionResult, RollbackPlan, TargetState
from watchdog.store.base import ActionRecord, Store

log = structlog.get_logger("watchdog.actions.playbook")


@dataclass
class PlaybookOutcome:
    results: list[ActionResult] = field(default_factory=list)
    rolled_back: list[tuple[str, str, str]] = field(default_factory=list)  # target, from, to

    @property
    def any_rolled_back(self) -> bool:
        return bool(self.rolled_back)


def action_key(incident_id: str, kind: str, target: str) -> str:
    return f"{incident_id}/{kind}/{target}"


class Playbook:
    """The actions of one rule set, bound to their remote APIs."""

    def __init__(
        self,
        targets: Mapping[str, Target],
        purges: Mapping[str, Purge],
        notifiers: Mapping[str, Notifier],
        store: Store,
        clock: Clock,
        target_purges: Mapping[str, Sequence[str]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.targets = targets
        self.purges = purges
        self.notifiers = notifiers
        self.store = store
        self.clock = clock
        self.target_purges = target_purges or {}

    # --- reading -------------------------------------------------------------------

    async def inspect(
        self, names: Iterable[str], healthy: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, TargetState | ActionError]:
        """Every target's live deploy and rollback choice, read concurrently."""
        names = list(names)

        async def one(name: str) -> TargetState | ActionError:
            try:
                return await self.targets[name].state((healthy or {}).get(name, ()))
            except ActionError as exc:
                return exc

        found = await asyncio.gather(*(one(name) for name in names))
        return dict(zip(names, found, strict=True))

    # --- the journal ---------------------------------------------------------------

    async def journaled(
        self,
        incident_id: str,
        kind: str,
        target: str,
        intent: dict[str, Any],
        run: Callable[[], Awaitable[ActionResult]],
    ) -> ActionResult:
        """Write the intent, act, write the outcome. A row already done is not redone;
        if the intent cannot be written, nothing is done (raises ``StoreError``)."""
        key = action_key(incident_id, kind, target)
        record = await self.store.journal_intent(
            ActionRecord(
                key=key,
                incident_id=incident_id,
                kind=kind,
                target=target,
                intent=intent,
                state="intent",
                created_at=self.clock.now(),
            )
        )
        if record.state != "intent":
            detail = record.outcome.get("detail", record.state)
            return self._counted(
                ActionResult(
                    kind,
                    target,
                    ok=record.state == "done",
                    detail=f"already {record.state} (journal): {detail}",
                    data={"replayed": True, **record.outcome.get("data", {})},
                )
            )
        try:
            result = await run()
        except ActionError as exc:
            result = ActionResult(kind, target, ok=False, detail=str(exc))
        outcome = {
            "ok": result.ok,
            "detail": result.detail,
            "would": result.would,
            "data": result.data,
            "request": result.request,
        }
        try:
            await self.store.journal_outcome(
                key, "done" if result.ok else "failed", outcome, self.clock.now()
            )
        except StoreError:
            log.exception(
                "could not journal an outcome; it stays 'intent' and will be reconciled on restart",
                key=key,
            )
        return self._counted(result)

    def _counted(self, result: ActionResult) -> ActionResult:
        if self.metrics is not None:
            self.metrics.count_action(result)
        return result

    # --- acting --------------------------------------------------------------------

    async def rollback_target(
        self, incident_id: str, plan: RollbackPlan, dry_run: bool
    ) -> ActionResult:
        kind = "would-rollback" if dry_run else "rollback"
        intent = {"from": plan.from_version, "to": plan.to_version, "reason": plan.reason}
        target = self.targets[plan.target]
        return await self.journaled(
            incident_id, kind, plan.target, intent, lambda: target.rollback(plan, dry_run)
        )

    async def purge(self, incident_id: str, name: str, dry_run: bool) -> ActionResult:
        kind = "would-purge" if dry_run else "purge"
        purge = self.purges[name]
        return await self.journaled(incident_id, kind, name, {}, lambda: purge.purge(dry_run))

    async def execute(
        self,
        incident_id: str,
        plans: Sequence[RollbackPlan],
        after_purges: Sequence[str],
        dry_run: bool,
        notify: Awaitable[list[ActionResult]] | None = None,
    ) -> PlaybookOutcome:
        """Roll back every planned target (each chain: rollback, then its own purges),
        then the shared purges; ``notify`` runs alongside."""

        async def chain(plan: RollbackPlan) -> list[ActionResult]:
            result = await self.rollback_target(incident_id, plan, dry_run)
            results = [result]
            if result.ok:
                own = self.target_purges.get(plan.target, ())
                results += await asyncio.gather(
                    *(self.purge(incident_id, name, dry_run) for name in own)
                )
            return results

        async def rollbacks() -> list[list[ActionResult]]:
            return list(await asyncio.gather(*(chain(plan) for plan in plans)))

        notifying = asyncio.ensure_future(notify) if notify is not None else None
        chains = await rollbacks()
        outcome = PlaybookOutcome()
        for plan, results in zip(plans, chains, strict=True):
            outcome.results.extend(results)
            if results[0].ok and not results[0].would:
                outcome.rolled_back.append((plan.target, plan.from_version, plan.to_version))
        if any(results[0].ok for results in chains):
            shared = [
                name
                for name in after_purges
                if not any(name in self.target_purges.get(p.target, ()) for p in plans)
            ]
            outcome.results += await asyncio.gather(
                *(self.purge(incident_id, name, dry_run) for name in shared)
            )
        if notifying is not None:
            outcome.results += await notifying
        return outcome

    async def notify(
        self, event: IncidentEvent, names: Sequence[str], dry_run: bool
    ) -> list[ActionResult]:
        """Send ``event`` to every named notifier concurrently; failures are results."""
        chosen = [self.notifiers[name] for name in names if name in self.notifiers]
        results = await asyncio.gather(*(n.send(event, dry_run) for n in chosen))
        return [self._counted(result) for result in results]
