"""Before a rollback: may this target be rolled back now?

Deploy correlation: the live deploy must have gone live before the breach began and
be younger than ``max_deploy_age``, or a rollback would not help. Guards: a cooldown
per target and a global cap per hour (one rollback per target per incident is the
journal's key). A person's manual rollback skips correlation and guards. A resumed
rollback (a restart, an HA takeover) is judged again for every target without a
journal row: the process may have stopped before it judged them (the incident is
saved as rolling back before the first Cloudflare read)."""

from __future__ import annotations

from watchdog.actions.base import TargetState
from watchdog.clock import iso
from watchdog.errors import ActionError
from watchdog.incidents.model import Incident
from watchdog.rules import RuleSet
from watchdog.store import Store
from watchdog.units import format_duration


async def blocker(
    ruleset: RuleSet,
    store: Store,
    incident: Incident,
    name: str,
    state: TargetState | ActionError,
    now: float,
) -> str | None:
    """Why this target must not be rolled back now, or None."""
    if isinstance(state, ActionError):
        return f"cannot read the target: {state}"
    if state.rollback_to is None:
        return f"no version to roll back to ({state.why})"
    if state.live is None and state.kind != "github-workflow":
        return "nothing is live"
    decision = incident.decision
    if decision.extra.get("manual"):
        return None
    correlation = ruleset.correlation
    # A CI-dispatch target cannot see deploys: it cannot be correlated, only guarded.
    if correlation.enabled and state.live is not None:
        breach = decision.first_breach_at or decision.decided_at
        if state.live.created_at > breach:
            return (
                f"the live deploy went live at {iso(state.live.created_at)}, after the "
                f"breach began ({iso(breach)}): it cannot have caused it (a fix or a "
                "rollback by someone else may already be live); not rolling it back"
            )
        age = now - state.live.created_at
        if age > correlation.max_deploy_age:
            return (
                f"no recent deploy explains the breach: the live deploy is "
                f"{format_duration(age)} old (max_deploy_age "
                f"{format_duration(correlation.max_deploy_age)})"
            )
    guards = ruleset.guards
    recent = await store.rollbacks_since(now - guards.cooldown, name)
    others = [r for r in recent if r.incident_id != incident.id]
    if others:
        return (
            f"cooldown: {name} was rolled back at {iso(others[-1].created_at)} "
            f"(cooldown {format_duration(guards.cooldown)})"
        )
    hour = [r for r in await store.rollbacks_since(now - 3600) if r.incident_id != incident.id]
    if len(hour) >= guards.max_rollbacks_per_hour:
        return (
            f"global cap: {len(hour)} rollbacks in the last hour "
            f"(max_rollbacks_per_hour {guards.max_rollbacks_per_hour})"
        )
    return None
