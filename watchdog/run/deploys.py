"""Deploys the live daemon sees: each Cloudflare target's live deployment, read every
``interval``, told to the engine when it changes, so that deploy-regression rules
start their test (``Engine.deployed``). The backtest and ``test rules`` tell the
engine from ``deployments`` instead; the engine's verdicts are the same.

A Worker some canary rule judges is also read for its split (``split_of``): which
version is new, at what percentage, since when and by whom, told to the engine on
every read (``Engine.split``), so a restart mid-split resumes judging it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from watchdog.actions.cloudflare_worker import WorkerDeployment, WorkerTarget
from watchdog.actions.ledger import LedgerTarget
from watchdog.core.engine import Engine
from watchdog.errors import ActionError, StoreError
from watchdog.model import Split
from watchdog.store.base import Store

log = structlog.get_logger("watchdog.run.deploys")


class DeployWatch:
    """Remembers the live deployment id of each target; a new one is a deploy."""

    def __init__(
        self,
        targets: Callable[[], Mapping[str, object]],
        store: Store,
        engine: Callable[[], Engine],
    ) -> None:
        self._targets = targets
        self._store = store
        self._engine = engine
        self._seen: dict[str, str] = {}

    def watched(self) -> set[str]:
        """The targets some regression rule watches (all of them for a rule naming none)."""
        engine = self._engine()
        names: set[str] = set()
        for rule in engine.ruleset.rules:
            if rule.regression is not None:
                names |= set(rule.rollback) or set(engine.ruleset.targets)
        return names | self.canaried()

    def canaried(self) -> set[str]:
        """The Workers some canary rule judges."""
        return {r.canary_target for r in self._engine().ruleset.rules if r.canary is not None}

    async def poll(self, now: float) -> list[tuple[str, float]]:
        """Read each watched target once; the deploys told to the engine, as
        ``(target, went live at)``. A deploy already live at the first read counts
        when it is younger than the longest ``watch`` (a restart mid-test)."""
        engine = self._engine()
        watches = [r.regression.watch for r in engine.ruleset.rules if r.regression is not None]
        told: list[tuple[str, float]] = []
        targets = self._targets()
        for name in sorted(self.watched()):
            target = targets.get(name)
            if not isinstance(target, LedgerTarget):
                continue
            try:
                if name in self.canaried() and isinstance(target, WorkerTarget):
                    split = split_of(name, await target.deployments())
                    engine.split(name, split)
                    self._log_split(name, split)
                known = {e.version: e for e in await self._store.ledger(name)}
                observed = await target.observe(known)
            except (ActionError, StoreError) as exc:
                log.warning("deploy watch: cannot read the target", target=name, error=str(exc))
                continue
            live = observed.live
            if live is None:
                continue
            seen = self._seen.get(name)
            self._seen[name] = live.id
            at = observed.live_since if observed.live_since is not None else live.created_at
            if seen == live.id or (seen is None and now - at >= max(watches, default=0.0)):
                continue
            engine.deployed(name, min(at, now))
            told.append((name, at))
            log.info(
                "deploy seen",
                target=name,
                deployment=live.id,
                version=live.version,
                author=live.author,
                what=live.description,
            )
        return told

    def _log_split(self, name: str, split: Split | None) -> None:
        key = f"{name}:split"
        shown = "" if split is None else f"{split.deployment}:{split.new_percentage:g}"
        if self._seen.get(key, "") != shown:
            self._seen[key] = shown
            if split is not None:
                log.info(
                    "split seen",
                    target=name,
                    new=split.new,
                    old=split.old,
                    percentage=split.new_percentage,
                    author=split.author,
                )


def split_of(target: str, deployments: list[WorkerDeployment]) -> Split | None:
    """The live gradual deployment (``deployments`` newest first) as new vs old: old is
    the version that served 100 % before the split; None when one version serves, or
    when no earlier 100 % deployment tells which of the two is old."""
    if not deployments or len(deployments[0].versions) != 2:
        return None
    live = deployments[0]
    pair = live.version_ids
    stable = next((d.sole_version for d in deployments[1:] if d.sole_version), None)
    if stable is None or stable not in pair:
        return None
    new = next(iter(pair - {stable}))
    since = live.created_at
    for earlier in deployments[1:]:  # a ramp moves the percentage: same pair, same test
        if earlier.version_ids != pair:
            break
        since = earlier.created_at
    pct = dict(live.versions)[new]
    return Split(target, live.id, new, stable, pct, since, live.author or live.source)
