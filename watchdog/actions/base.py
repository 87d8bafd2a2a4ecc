"""The shapes every action shares: what a target looks like, a plan, a result."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Deploy:
    """One deployment of a target. ``version`` is what a rollback goes *to*
    (a Worker version id; for Pages the deployment id itself)."""

    id: str
    version: str
    created_at: float
    description: str = ""
    author: str = ""


@dataclass(frozen=True)
class TargetState:
    """What is live on a target and what a rollback would go to, and why."""

    target: str
    kind: str
    live: Deploy | None
    rollback_to: Deploy | None
    why: str


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback decided and journalled before any mutating call."""

    target: str
    from_version: str
    to_version: str
    reason: str


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action. ``would`` marks a dry run; ``request`` then holds
    the exact mutating request that was not sent (method, path, body)."""

    action: str
    target: str
    ok: bool
    detail: str
    would: bool = False
    request: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Target(Protocol):
    """A thing that can be rolled back (a Worker, a Pages project, a CI workflow)."""

    name: str
    kind: str

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        """Read what is live and choose the rollback version, preferring ``healthy`` ones."""
        ...

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        """Carry out ``plan``. Idempotent: re-reads what is live first and does not
        roll back twice if an earlier attempt already went through."""
        ...


class Purge(Protocol):
    name: str

    async def purge(self, dry_run: bool = False) -> ActionResult: ...
