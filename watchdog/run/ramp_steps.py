"""A ramp's pure parts: its steps parsed, the split each step deploys, what the live
deployment says about a ramp, and whether the canary rules let it move."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.actions.cloudflare_worker import WorkerDeployment
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import WatchdogError
from watchdog.store.base import RampRecord

MAX_STEPS = 20


class RampError(WatchdogError):
    """A ramp verb refused: what is wrong and where (an API answer, a CLI line)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def parse_steps(text: str | Sequence[float | int | str]) -> list[float]:
    """``10%,50%,100%`` (or a list): increasing percentages in (0, 100], ending at 100."""
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    if not items or len(items) > MAX_STEPS:
        raise RampError(f"steps: give 1 to {MAX_STEPS} percentages, like 10%,50%,100%", 400)
    steps: list[float] = []
    for n, item in enumerate(items, 1):
        raw = item.removesuffix("%") if isinstance(item, str) else item
        try:
            pct = float(raw)
        except ValueError:
            raise RampError(f"steps: item {n} ({item!r}) is not a percentage", 400) from None
        if isinstance(raw, bool) or not 0 < pct <= 100:
            raise RampError(f"steps: item {n} ({item!r}) is not in (0, 100]", 400)
        if steps and pct <= steps[-1]:
            raise RampError(f"steps: item {n} ({item!r}) is not above {steps[-1]:g}%", 400)
        steps.append(pct)
    if steps[-1] != 100:
        raise RampError(f"steps: the last step must be 100%, not {steps[-1]:g}%", 400)
    return steps


def split_for(ramp: RampRecord, index: int) -> list[tuple[str, float]]:
    """What step ``index`` deploys: the new version at its percentage, the old one at
    the rest (the new version alone at 100 %)."""
    pct = ramp.steps[index]
    return [(ramp.new, 100.0)] if pct >= 100 else [(ramp.new, pct), (ramp.old, 100.0 - pct)]


def soaked(ramp: RampRecord, now: float) -> float:
    """Seconds the current step has soaked (a hold stops the count)."""
    running = now - ramp.soak_from if ramp.soak_from is not None else 0.0
    return ramp.soaked_s + max(0.0, running)


class Live(enum.Enum):
    """What the live deployment means for a ramp."""

    OURS = "ours"  # what the ramp last made live (or the old version before its first step)
    OLD = "old"  # 100 % of the old version, made by someone else: the canary's rollback
    NEW = "new"  # 100 % of the new version, made by someone else
    MOVED = "moved"  # the old and new versions at a split the ramp did not make
    FOREIGN = "foreign"  # a version that is neither old nor new: a person's deploy


def classify(ramp: RampRecord, live: WorkerDeployment) -> Live:
    if live.version_ids - {ramp.old, ramp.new}:
        return Live.FOREIGN
    if (ramp.step < 0 and live.sole_version == ramp.old) or live.id == ramp.deployment:
        return Live.OURS
    if live.sole_version == ramp.old:
        return Live.OLD
    if live.sole_version == ramp.new:
        return Live.NEW
    return Live.MOVED


def describe_live(live: WorkerDeployment) -> str:
    who = live.author or live.source or "someone"
    note = f" ({live.message!r})" if live.message else ""
    return f"deployment {live.id} by {who}: {live.split_text()}{note}"


@dataclass(frozen=True)
class Gate:
    """The canary rules' word on a target's split: ``passing`` lets a ramp move on;
    ``regression`` (a rule pending or firing) stops it; ``why`` says which rule.
    ``fresh_to``: their evidence is complete up to then (the analytics are late; None
    when no sample says)."""

    judged: bool
    passing: bool
    regression: bool
    why: str
    fresh_to: float | None = None


def canary_gate(engine: Engine, target: str, new: str = "") -> Gate:
    """Pass only when every canary rule judging ``target`` has tested the split of
    ``new``, seen traffic on it and found no regression; blind or no traffic is not a
    pass."""
    rules = [r for r in engine.ruleset.rules if r.canary is not None and r.canary_target == target]
    if not rules:
        return Gate(False, False, False, f"no canary rule judges target {target}")
    waiting: list[str] = []
    for rule in rules:
        state = engine.states[rule.name]
        if state.state in (State.PENDING, State.FIRING):
            why = f"canary rule {rule.name} is {state.state.value}: the new version regressed"
            return Gate(True, False, True, why)
        if state.state is State.BLIND:
            waiting.append(f"canary rule {rule.name} is blind ({state.blind_reason})")
            continue
        test = engine.canaries.tests.get(rule.name)
        if test is None or test.split.new != new:
            waiting.append(f"canary rule {rule.name} is not judging {new or 'a split'} yet")
        elif state.state is not State.INCONCLUSIVE or not (state.requests or 0.0) > 0:
            waiting.append(f"canary rule {rule.name} has no traffic on the new version yet")
    if waiting:
        return Gate(True, False, False, "; ".join(waiting))
    names = ", ".join(r.name for r in rules)
    latest = [
        engine.windows[r.signal].latest if r.signal in engine.windows else None for r in rules
    ]
    fresh = [s.fresh_to if s.fresh_to is not None else s.at for s in latest if s is not None]
    return Gate(
        True, True, False, f"canary rule(s) {names}: no regression", min(fresh, default=None)
    )
