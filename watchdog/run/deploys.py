"""Deploys the live daemon sees: each Cloudflare target's live deployment, read every
``interval``, told to the engine when it changes, so that deploy-regression rules
start their test (``Engine.deployed``). The backtest and ``test rules`` tell the
engine from ``deployments`` instead; the engine's verdicts are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from watchdog.actions.ledger import LedgerTarget
from watchdog.core.engine import Engine
from watchdog.errors import ActionError, StoreError
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
        return names

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
            log.info("deploy seen", target=name, deployment=live.id, version=live.version)
        return told
