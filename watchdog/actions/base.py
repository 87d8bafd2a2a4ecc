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
class LedgerLine:
    """One version as the target choice saw it: ``status`` is ``live``, ``chosen``,
    ``candidate`` or ``skipped``; ``reason`` says why, from the version ledger."""

    version: str
    status: str
    reason: str


@dataclass(frozen=True)
class TargetState:
    """What is live on a target and what a rollback would go to, and why."""

    target: str
    kind: str
    live: Deploy | None
    rollback_to: Deploy | None
    why: str
    ledger: tuple[LedgerLine, ...] = ()
    # How the live deployment went live (person, ci, watchdog, unknown): the watchdog's
    # own rollback is no fresh deploy to blame.
    live_how: str = ""


@dataclass(frozen=True)
class LiveStep:
    """One change of what serves a target, as the remote history shows it: the
    deployment ``id`` made ``versions`` live at ``at``. ``how`` is ``person``, ``ci``,
    ``watchdog`` or ``unknown``; ``rollback`` marks a step the remote calls a rollback;
    ``away`` names versions this step is known to have rolled away from beyond those
    it replaced (a Pages rollback moves production past several newer deployments)."""

    id: str
    at: float
    versions: tuple[str, ...]
    how: str = "unknown"
    detail: str = ""
    rollback: bool = False
    away: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """An earlier version a rollback could go to (newest first in ``Observed``), with
    why the remote itself rules it out (``blocked``: a failed build, not deployable)."""

    version: str
    deploy: Deploy
    blocked: str = ""


@dataclass(frozen=True)
class Observed:
    """A target's remote history, read once: what is live, the steps that led there
    (oldest first), and the candidates (newest first). ``bad`` holds the live versions
    a rollback moves away from; ``uncertain`` says why the history read is not enough
    to choose (then no choice is made)."""

    live: Deploy | None
    bad: tuple[str, ...]
    steps: tuple[LiveStep, ...]
    candidates: tuple[Candidate, ...]
    empty_why: str = ""
    uncertain: str = ""
    note: str = ""
    # Since when the live deployment has provably served without a break (None: the
    # remote cannot tell, as for a Pages project rolled back at an unknown time).
    live_since: float | None = None


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
