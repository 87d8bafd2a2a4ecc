"""The shapes every action shares: what a target looks like, a plan, a result."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from watchdog.model import ActionResult, RollbackPlan, TargetState


def deployed_meanwhile(
    target: str, plan: RollbackPlan, live: str, dry_run: bool = False
) -> ActionResult:
    """The compare-and-swap failed: what is live is neither the plan's ``from`` nor its
    ``to``. Nothing is sent; people decide (the newer deploy may be the fix)."""
    return ActionResult(
        "rollback",
        target,
        False,
        f"someone deployed meanwhile: live is {live}, neither {plan.from_version} (what the "
        f"rollback was to replace) nor {plan.to_version} (its target); nothing sent",
        would=dry_run,
        data={"deployed_meanwhile": True, "live": live},
    )


class Target(Protocol):
    """A thing that can be rolled back (a Worker, a Pages project, a CI workflow)."""

    name: str
    kind: str

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        """Read what is live and choose the rollback version, preferring ``healthy`` ones
        (the incident manager chooses through the version ledger instead, for targets
        that have one: watchdog/ledger.py)."""
        ...

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        """Carry out ``plan``. Idempotent: re-reads what is live first and does not
        roll back twice if an earlier attempt already went through."""
        ...


class Purge(Protocol):
    name: str

    async def purge(self, dry_run: bool = False) -> ActionResult: ...
