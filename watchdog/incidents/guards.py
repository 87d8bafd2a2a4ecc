"""Before a rollback: may this target be rolled back now?

Deploy correlation: the live deploy must have gone live before the breach began and
be younger than ``max_deploy_age``, or a rollback would not help. Guards: a cooldown
per target and a global cap per hour (one rollback per target per incident is the
journal's key), both in real time: the journal's wall-clock times are corrected for the
wall-clock steps the watchdog noticed (kept in the store, so a restart knows them).
Correlation compares Cloudflare's own times with the wall clock: across a noticed
wall-clock step a deploy's age is uncertain, and one that may be older than
``max_deploy_age`` is not blamed. A person's manual rollback skips
correlation and guards. A resumed rollback (a restart, an HA takeover) is judged again
for every target without a journal row: the process may have stopped before it judged
them (the incident is saved as rolling back before the first Cloudflare read)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.errors import ActionError
from watchdog.incidents.model import Incident
from watchdog.model import TargetState
from watchdog.rules.load import RuleSet
from watchdog.store.base import EventRecord, Store
from watchdog.units import format_duration, iso

# The wall-clock steps the watchdog noticed are kept as events of this pseudo
# incident, so that a restarted process still knows them.
CLOCK_STEPS = "watchdog-clock"
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The wall clock jumped by ``seconds`` (+ forwards); ``at`` is the wall-clock time
    just after, when it was noticed."""

    at: float
    seconds: float


# Two records of one step (both HA replicas noticed it): about the same size, noticed
# within a few sampling intervals of each other.
SAME_STEP_S = (2.0, 300.0)
# A step is noticed up to a sampling interval after it happened: a journal row written
# in between belongs after it.
NOTICED_WITHIN_S = 60.0


async def record_clock_step(store: Store, step: ClockStep) -> None:
    await store.add_event(
        EventRecord(CLOCK_STEPS, step.at, "clock_step", {"seconds": step.seconds})
    )


async def clock_steps(store: Store) -> list[ClockStep]:
    """The steps noticed so far, in the order they happened, each once."""
    steps: list[ClockStep] = []
    for event in await store.events(CLOCK_STEPS):
        step = ClockStep(event.at, float(event.data["seconds"]))
        if steps and (
            abs(step.seconds - steps[-1].seconds) < SAME_STEP_S[0]
            and abs(step.at - steps[-1].at) < SAME_STEP_S[1]
        ):
            continue
        steps.append(step)
    return steps


def real_age(at: float, now: float, steps: Sequence[ClockStep]) -> float:
    """The seconds that really passed between the wall-clock time ``at`` (a journal
    row's) and ``now``, taking out the steps noticed since. After a step back the wall
    clock shows a stretch of times twice; a time it could have shown in more than one
    stretch gets the shortest age (a guard holds longer, never shorter), and so does
    one it could have shown in none (a step nobody noticed)."""
    ages: list[float] = []
    for j in range(len(steps) + 1):
        # Stretch j runs from just after step j-1 to just before step j.
        begin = steps[j - 1].at - NOTICED_WITHIN_S if j else -math.inf
        end = steps[j].at - steps[j].seconds if j < len(steps) else now
        later = sum(s.seconds for s in steps[j:])
        if begin <= at <= end:
            ages.append(now - at - later)
    if not ages:
        ages = [now - at - sum(s.seconds for s in steps[j:]) for j in range(len(steps) + 1)]
    return max(0.0, min(ages))


def deploy_age_bound(created_at: float, now: float, steps: Sequence[ClockStep]) -> float:
    """The oldest a deploy (a remote time, ``created_at``) may really be at ``now``
    (our wall clock): a step noticed after it went live may have put our clock off the
    remote's by its size, in either direction; uncertain means the older reading."""
    since = [s for s in steps if s.at >= created_at - NOTICED_WITHIN_S - abs(s.seconds)]
    return now - created_at + sum(abs(s.seconds) for s in since)


def uncorrelated(
    ruleset: RuleSet, breach: float, state: TargetState, now: float, steps: Sequence[ClockStep]
) -> str | None:
    """Why the live deploy cannot be blamed for a breach that began at ``breach``
    (deploy correlation), or None."""
    correlation = ruleset.correlation
    # A CI-dispatch target cannot see deploys: it cannot be correlated, only guarded.
    if correlation.enabled and state.live is not None:
        if state.live.created_at > breach:
            return (
                f"the live deploy went live at {iso(state.live.created_at)}, after the "
                f"breach began ({iso(breach)}): it cannot have caused it (a fix or a "
                "rollback by someone else may already be live); not rolling it back"
            )
        age = now - state.live.created_at
        oldest = deploy_age_bound(state.live.created_at, now, steps)
        if age > correlation.max_deploy_age:
            return (
                f"no recent deploy explains the breach: the live deploy is "
                f"{format_duration(age)} old (max_deploy_age "
                f"{format_duration(correlation.max_deploy_age)})"
            )
        if oldest > correlation.max_deploy_age:
            return (
                f"cannot tell the live deploy's age: the wall clock stepped since it went "
                f"live; it looks {format_duration(age)} old but may be "
                f"{format_duration(oldest)} (max_deploy_age "
                f"{format_duration(correlation.max_deploy_age)}); not blaming it"
            )
    return None


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
    steps = await clock_steps(store)
    why = uncorrelated(ruleset, decision.first_breach_at or decision.decided_at, state, now, steps)
    if why is not None:
        return why
    guards = ruleset.guards
    # Journal times are wall-clock times: reach back over every forward step, then
    # measure each row's real age.
    reach = max(guards.cooldown, HOUR_S) + sum(max(0.0, st.seconds) for st in steps)
    earlier = [
        (row, real_age(row.created_at, now, steps))
        for row in await store.rollbacks_since(now - reach)
        if row.incident_id != incident.id
    ]
    cooling = [row for row, age in earlier if row.target == name and age < guards.cooldown]
    if cooling:
        return (
            f"cooldown: {name} was rolled back at {iso(cooling[-1].created_at)} "
            f"(cooldown {format_duration(guards.cooldown)})"
        )
    hour = [row for row, age in earlier if age < HOUR_S]
    if len(hour) >= guards.max_rollbacks_per_hour:
        return (
            f"global cap: {len(hour)} rollbacks in the last hour "
            f"(max_rollbacks_per_hour {guards.max_rollbacks_per_hour})"
        )
    if state.live_how == "watchdog" and state.live is not None:
        # Invariant 7: its own rollback is no fresh deploy to blame, and going further
        # back is a second rollback for one problem; people decide.
        return (
            f"the live version {state.live.version} is the watchdog's own rollback "
            f"(live since {iso(state.live.created_at)}): no deploy to blame; not rolling "
            "back further"
        )
    return None
