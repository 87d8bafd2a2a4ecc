"""The version ledger: per target (Worker, Pages), every version's history, kept in
the store and rebuilt from the remote history and the journal before every choice
(every rollback, every ``targets``): what happened while the watchdog was away is
read then, never assumed.

For each version: when and how it first went live (a person, CI, the watchdog: from
the deployment's source, trigger and ``workers/message``, and the journal), whether
it was ever rolled away from (by anyone: a version that was live and was replaced by
an older one, or that a rollback moved away from), and whether it was verified
healthy: only after a passed verification, or after serving ``guards.healthy_after``
with every rule inactive on evidence (no silence in the samples longer than the rules'
``blind_after``). Never after a dry run, and never for merely being live.

The rollback choice (``choice``): never the live version, never a version rolled
away from; among the rest, a verified-healthy one first (newest), else the newest;
none left: no choice, with the reason, and the incident escalates.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, cast, runtime_checkable

import structlog

from watchdog.actions.base import Target
from watchdog.actions.choice import HOW_TEXT, choose, verified_from
from watchdog.clock import Clock
from watchdog.core.evaluator import RuleState, State
from watchdog.errors import ActionError, StoreError
from watchdog.model import LiveStep, Observed, TargetState
from watchdog.store.base import ActionRecord, LedgerEntry, Store
from watchdog.units import format_duration

log = structlog.get_logger("watchdog.actions.ledger")


@runtime_checkable
class LedgerTarget(Protocol):
    """A target whose remote history the ledger can read (Cloudflare Worker, Pages)."""

    name: str
    kind: str

    async def observe(self, ledger: Mapping[str, LedgerEntry]) -> Observed:
        """Read what is live, the steps that led there and the candidates;
        ``ledger`` lets a paginated walk stop once the answer is certain."""
        ...


_LEDGER_CLASSES: dict[type, bool] = {}


def reads_history(target: Target) -> bool:
    """``isinstance(target, LedgerTarget)``, once per class: the protocol check walks
    its members (~100 µs), and the healthy run asks for every target at every tick."""
    kind = type(target)
    found = _LEDGER_CLASSES.get(kind)
    if found is None:
        found = _LEDGER_CLASSES[kind] = isinstance(target, LedgerTarget)
    return found


# --- building the ledger (pure) ------------------------------------------------------------


def rebuild(
    target: str,
    known: Mapping[str, LedgerEntry],
    observed: Observed,
    journal: Sequence[ActionRecord],
) -> dict[str, LedgerEntry]:
    """The ledger after merging the remote history and the journal into ``known``:
    only the entries that are new or changed."""
    merge = _Merge(target, known)
    previous: tuple[str, ...] = ()
    for step in observed.steps:
        merge.step(step, previous)
        previous = step.versions
    for row in journal:
        if row.kind == "rollback" and row.state == "done":
            at = row.finished_at or row.created_at
            for version in str(row.intent.get("from", "")).split(","):
                if version and version != row.intent.get("to"):
                    why = f"rolled back by the watchdog in incident {row.incident_id}"
                    merge.away(version, at, why)
    return {v: merge.entries[v] for v in merge.changed}


class _Merge:
    """The entries being rebuilt, and which of them changed."""

    def __init__(self, target: str, known: Mapping[str, LedgerEntry]) -> None:
        self.target = target
        self.entries = {v: replace(e) for v, e in known.items()}
        self.changed: set[str] = set()

    def entry(self, version: str) -> LedgerEntry:
        if version not in self.entries:
            self.entries[version] = LedgerEntry(self.target, version)
        return self.entries[version]

    def went_live(self, version: str, step: LiveStep) -> None:
        e = self.entry(version)
        if e.went_live_at is None or step.at < e.went_live_at:
            e.went_live_at = step.at
            e.how, e.live_detail = step.how, step.detail
            self.changed.add(version)
        elif e.how == "unknown" and step.how != "unknown" and e.went_live_at == step.at:
            e.how, e.live_detail = step.how, step.detail
            self.changed.add(version)

    def away(self, version: str, at: float, why: str) -> None:
        e = self.entry(version)
        if e.rolled_away_at is None:
            e.rolled_away_at, e.rolled_away_why = at, why
            self.changed.add(version)

    def step(self, step: LiveStep, previous: tuple[str, ...]) -> None:
        """One step of the remote history: what went live, and what it replaced by
        going back (an older version, or an explicit rollback)."""
        for version in step.versions:
            self.went_live(version, step)
        newest_now = max((self.entry(v).went_live_at or step.at) for v in step.versions)
        by = f"by {HOW_TEXT.get(step.how, step.how)}" + (f" ({step.detail})" if step.detail else "")
        for version in previous:
            if version in step.versions:
                continue
            first = self.entry(version).went_live_at or step.at
            if step.rollback or first > newest_now:
                why = f"replaced by older {', '.join(step.versions)} in {step.id} {by}"
                self.away(version, step.at, why)
        for version in step.away:
            self.away(version, step.at, f"production moved back to older {step.id} {by}")


# --- the service ---------------------------------------------------------------------------


class Ledgers:
    """The ledger of every target, kept in the store. ``inspect`` brings each target's
    ledger up to date from its remote history and the journal, then chooses."""

    def __init__(
        self, store: Store, clock: Clock, targets: Callable[[], Mapping[str, Target]]
    ) -> None:
        self.store = store
        self.clock = clock
        self._targets = targets  # the playbook's, which a reload replaces
        self._runs: dict[str, float] = {}  # target -> start of its healthy run
        self._last_tick: float | None = None
        self._checking: dict[str, asyncio.Task[None]] = {}

    async def inspect(self, names: Iterable[str]) -> dict[str, TargetState | ActionError]:
        """Every target's live deploy and ledger-based rollback choice, read concurrently."""
        names = list(names)
        found = await asyncio.gather(*(self._one(name) for name in names))
        return dict(zip(names, found, strict=True))

    @property
    def targets(self) -> Mapping[str, Target]:
        return self._targets()

    async def _one(self, name: str) -> TargetState | ActionError:
        target = self.targets[name]
        try:
            if not isinstance(target, LedgerTarget):
                return await target.state()
            known = {e.version: e for e in await self.store.ledger(name)}
            observed = await target.observe(known)
            journal = await self.store.rollbacks_since(0.0, name)
            changed = rebuild(name, known, observed, journal)
            if changed:
                await self.store.save_ledger(list(changed.values()))
            return choose(name, target.kind, observed, {**known, **changed})
        except ActionError as exc:
            return exc

    async def verified(self, target: str, version: str, why: str) -> None:
        """``version`` passed a verification (or a healthy run): evidence, recorded."""
        now = self.clock.now()
        await self.store.save_ledger(
            [LedgerEntry(target, version, verified_at=now, verified_why=why)]
        )
        log.info("version verified healthy", target=target, version=version, why=why)

    async def rolled_back(self, incident_id: str, rolled_back: Sequence[Sequence[str]]) -> None:
        """The watchdog just rolled each ``(target, from, to)`` back: ``from`` is rolled
        away from as of now (the next read of the history would find it in the
        journal too; recording it at once keeps the ledger right in between)."""
        now = self.clock.now()
        entries = [
            LedgerEntry(
                target,
                version,
                rolled_away_at=now,
                rolled_away_why=f"rolled back by the watchdog in incident {incident_id}",
            )
            for target, frm, to in rolled_back
            for version in frm.split(",")
            if version and version != to and isinstance(self.targets.get(target), LedgerTarget)
        ]
        if entries:
            await self.store.save_ledger(entries)

    async def verified_rollback(
        self, incident_id: str, rolled_back: Sequence[Sequence[str]], checks: Mapping[str, str]
    ) -> None:
        """A verification after incident ``incident_id``'s rollback passed: each
        ``(target, from, to)`` rolled back to is verified healthy. With no check
        configured nothing was measured: no evidence, no mark."""
        if not checks:
            return
        for target, _from, to in rolled_back:
            if target in self.targets and isinstance(self.targets[target], LedgerTarget):
                await self.verified(
                    target, to, f"verification passed after the rollback in incident {incident_id}"
                )

    # --- healthy runs ------------------------------------------------------------------

    def healthy_tick(
        self,
        now: float,
        states: Mapping[str, RuleState],
        healthy_after: float,
        gap: float,
        unsettled_at: float | None = None,
    ) -> None:
        """Called every tick: with every rule inactive on evidence (not blind, not
        before its first sample) a run goes on; any other state ends it, and so does
        one between two ticks (``unsettled_at``: the engine's latest return to
        inactive, from inconclusive, blind, pending or firing). A run is made of
        evidence: a rule whose latest sample, or a previous tick, more than ``gap`` ago
        (a silent source, a paused daemon: nothing was measured) ends it too. Once a
        run is ``healthy_after`` long, one read checks that the live deployment served
        the whole run; then its version is verified healthy. The read runs in a
        background task (one per target at a time), so a slow remote never holds
        the tick."""
        last_tick, self._last_tick = self._last_tick, now
        calm = (
            bool(states)
            and all(
                s.state is State.INACTIVE and s.at is not None and now - s.at <= gap
                for s in states.values()
            )
            and (last_tick is None or now - last_tick <= gap)
        )
        for name, target in self.targets.items():
            if not reads_history(target):
                continue
            if not calm:
                self._runs.pop(name, None)
                continue
            since = self._runs.setdefault(name, now)
            if unsettled_at is not None and unsettled_at > since:
                since = self._runs[name] = unsettled_at
            if now >= since + healthy_after and name not in self._checking:
                ledger_target = cast(LedgerTarget, target)  # its class is one (reads_history)
                task = asyncio.create_task(self._check_run(name, ledger_target, since, now))
                self._checking[name] = task
                task.add_done_callback(functools.partial(self._checked, name))

    def next_healthy_check(self, healthy_after: float) -> float:
        """When ``healthy_tick`` next checks a run, if none changes state before
        (``inf``: no run going on)."""
        due = [s + healthy_after for n, s in self._runs.items() if n not in self._checking]
        return min(due, default=math.inf)

    def _checked(self, name: str, _task: asyncio.Task[None]) -> None:
        self._checking.pop(name, None)

    async def _check_run(self, name: str, target: LedgerTarget, since: float, now: float) -> None:
        try:
            known = {e.version: e for e in await self.store.ledger(name)}
            observed = await target.observe(known)
        except (ActionError, StoreError) as exc:
            log.warning("healthy run: cannot read the target", target=name, error=str(exc))
            return
        if name not in self._runs:
            return  # a breach ended the run while the target was read
        live_since = observed.live_since
        if observed.live is None or len(observed.bad) != 1 or live_since is None:
            self._runs[name] = now  # nothing single and provably steady to credit
            return
        if live_since > since:
            self._runs[name] = live_since  # a deploy in the run: its own run starts then
            return
        self._runs[name] = now  # checked: the next look is a whole period away
        version = observed.bad[0]
        entry = known.get(version)
        if entry is not None and (entry.verified or entry.rolled_away):
            return
        try:
            await self.verified(
                name,
                version,
                f"served {format_duration(now - since)} with every rule inactive "
                "(guards.healthy_after)",
            )
        except StoreError as exc:
            log.warning("healthy run: cannot record it", target=name, error=str(exc))

    async def drain(self) -> None:
        while self._checking:
            await asyncio.gather(*self._checking.values(), return_exceptions=True)


def describe_step_how(source: str, trigger: str, message: str) -> str:
    """``person``, ``ci``, ``watchdog`` or ``unknown`` from a deployment's source, its
    trigger and its message (the watchdog signs its own ``workers/message``)."""
    if message.startswith(("rollback-watchdog manual", "rollback-watchdog ramp")):
        # A person's `rollback`, or a step of a person's `ramp`, carried out by the
        # watchdog: a ramp's bad step is a deploy to blame, not the watchdog's rollback.
        return "person"
    if message.startswith("rollback-watchdog"):
        return "watchdog"
    if source in ("workersci", "integration", "terraform") or trigger in (
        "github:push",
        "deploy_hook",
        "push",
    ):
        return "ci"
    if source in ("wrangler", "dash", "dash_template", "quick_editor", "playground") or (
        trigger == "ad_hoc"
    ):
        return "person"
    return "unknown"


__all__ = ["LedgerTarget", "Ledgers", "choose", "describe_step_how", "rebuild", "verified_from"]
