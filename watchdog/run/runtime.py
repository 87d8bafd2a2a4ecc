"""Everything a running watchdog is made of, wired once: store, silences, actions,
playbook, incident manager and the sampling daemon. The service, the demo and the
scenario tests build the same ``Runtime``; only the clock and the sources differ."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from watchdog.actions.playbook import Playbook
from watchdog.actions.registry import Actions, build_actions
from watchdog.clock import Clock
from watchdog.errors import ConfigError, RuleError
from watchdog.incidents.manager import IncidentManager
from watchdog.incidents.matchers import known_names
from watchdog.incidents.model import Phase
from watchdog.incidents.silence import Silences
from watchdog.metrics import Metrics
from watchdog.rules.load import RuleSet, load_rules
from watchdog.rules.watch import watch_rules
from watchdog.run.burn_history import BurnHistory
from watchdog.run.coalesce import Coalesced
from watchdog.run.daemon import Watchdog
from watchdog.run.deadline import VERIFY
from watchdog.run.deploys import DeployWatch
from watchdog.run.ha import LeaderGate
from watchdog.run.leader import leadership_for
from watchdog.run.preflight import secret_problems
from watchdog.run.ramp import Ramps
from watchdog.run.ramp_steps import canary_gate
from watchdog.settings import Settings
from watchdog.sources.base import SourceDeps
from watchdog.store import open_store
from watchdog.store.base import Store

log = structlog.get_logger("watchdog.run.runtime")


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    http: httpx.AsyncClient
    store: Store
    silences: Silences
    watchdog: Watchdog
    manager: IncidentManager  # holds the playbook: a reload swaps that one reference
    gate: LeaderGate  # replicas on PostgreSQL: only the leader's manager acts
    tick_s: float = 1.0
    watch_rules_files: bool = False  # poll the rules files (ConfigMap swaps) and reload
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _coalesced_reload: Coalesced = field(init=False)
    burn_history: BurnHistory = field(init=False)

    def __post_init__(self) -> None:
        self._coalesced_reload = Coalesced(self._reload)
        # Burn-rate windows (up to days) kept in the store across restarts.
        self.burn_history = BurnHistory(self.store, lambda: self.watchdog.engine)
        self.watchdog.observers.append(self.burn_history.observed)

    @property
    def playbook(self) -> Playbook:
        return self.manager.playbook

    @property
    def ramps(self) -> Ramps | None:
        return self.gate.ramps

    @classmethod
    async def build(
        cls,
        settings: Settings,
        clock: Clock,
        http: httpx.AsyncClient,
        ruleset: RuleSet | None = None,
        store: Store | None = None,
        metrics: Metrics | None = None,
    ) -> Runtime:
        """Load rules (unless given), open the store, build actions; ``RuleError`` or
        ``ConfigError`` when something is wrong, before anything runs."""
        from_files = ruleset is None
        if ruleset is None:
            ruleset = await asyncio.to_thread(load_rules, settings.rules_paths)
        store = store or open_store(settings.state)
        await store.open()
        try:
            silences = Silences(
                store,
                clock,
                settings.silence_file,
                settings.silenced,
                max_duration_s=settings.silence_max_duration,
            )
            silences.set_known(known_names((r.name for r in ruleset.rules), ruleset.targets))
            await silences.load()
            actions = build_actions(ruleset, settings, http, clock)
            deps = SourceDeps(
                http=http,
                clock=clock,
                cloudflare_api_url=settings.cloudflare_api_url,
                cloudflare_api_token=settings.cloudflare_api_token,
                cloudflare_account_id=settings.cloudflare_account_id,
            )
            watchdog = Watchdog(ruleset, deps, metrics or Metrics(), settings.rules_paths)
            playbook = build_playbook(actions, store, clock, watchdog.metrics)
            manager = IncidentManager(
                lambda: watchdog.ruleset,
                watchdog.engine,
                playbook,
                store,
                silences,
                clock,
                dry_run=settings.dry_run,
                postmortem_dir=settings.postmortem_dir,
            )
            leadership = leadership_for(
                settings.state, clock, settings.leader_name, settings.leader_retry
            )
            gate = LeaderGate(leadership, manager, watchdog)
            gate.ramps = build_ramps(store, clock, manager, watchdog, settings.ramp_tick)
            watchdog.on_decision = gate.on_decision
            watchdog.on_clock_jump = manager.clock_jumped
        except BaseException:
            await store.close()
            raise
        runtime = cls(settings, clock, http, store, silences, watchdog, manager, gate)
        # A rule set handed in (tests, backtest) must not be replaced by WATCHDOG_RULES.
        runtime.watch_rules_files = from_files and settings.rules_watch_interval > 0
        return runtime

    async def start(self) -> None:
        await self.gate.leadership.start()  # elected: restore, then act (SQLite: at once)
        await self.burn_history.restore(self.clock.now())
        await self.watchdog.start()
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="incident-ticks"))
        self._tasks.append(asyncio.create_task(self._deploy_loop(), name="deploy-watch"))
        if self.watch_rules_files:
            watcher = watch_rules(
                self.settings.rules_paths,
                self.clock,
                self.reload,
                interval_s=self.settings.rules_watch_interval,
            )
            self._tasks.append(asyncio.create_task(watcher, name="rules-watch"))

    async def _tick_loop(self) -> None:
        while True:
            try:
                await self.gate.tick()
                self.verify_deadlines()
            except asyncio.CancelledError:
                raise
            except Exception:  # boundary: the ticker must outlive one bad tick
                log.exception("incident tick failed")
            await self.clock.sleep(self.tick_s)

    def verify_deadlines(self) -> None:
        """One sample of each verification check's signal at the end of its window, so
        that the verdict does not wait for the next scheduled sample."""
        checks = self.watchdog.ruleset.after_rollback.verify
        for incident in self.manager.open.values():
            started = incident.state.verify_started
            if incident.record.phase != Phase.VERIFYING or started is None:
                continue
            for check in checks:
                key = f"{VERIFY}{incident.id}:{check.signal}"
                self.watchdog.deadlines.verify_until(key, check.signal, started + check.within)

    async def _deploy_loop(self) -> None:
        """Deploy-regression rules learn of deploys here (idle without such rules)."""
        watch = DeployWatch(lambda: self.playbook.targets, self.store, lambda: self.watchdog.engine)
        while True:
            try:
                if watch.watched():
                    await watch.poll(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:  # boundary: the watch must outlive one bad read
                log.exception("deploy watch failed")
            splits = self.watchdog.engine.canaries.splits
            settings = self.settings
            await self.clock.sleep(settings.split_poll if splits else settings.deploy_poll)

    async def reload(self) -> bool:
        """Rules and actions together: if either is bad, keep the old ones. Coalesced
        (at most one in flight, the last one wins); unchanged rules change nothing."""
        return await self._coalesced_reload()

    async def _reload(self) -> bool:
        try:
            ruleset = await asyncio.to_thread(load_rules, self.settings.rules_paths)
            missing = secret_problems(self.settings, ruleset)
            if missing:  # all at once, not one per attempt
                raise RuleError(missing)
            if ruleset == self.watchdog.ruleset:
                self.watchdog.reloaded(ruleset)  # counted and logged; nothing rebuilt
                return True
            actions = build_actions(ruleset, self.settings, self.http, self.clock)
        except (RuleError, ConfigError) as exc:
            self.watchdog.reload_failed(exc.problems if isinstance(exc, RuleError) else [str(exc)])
            return False
        # A new playbook, not fields copied into the old one (a field added later would
        # be forgotten there); an action in flight finishes on the one it started with.
        self.manager.replace_playbook(
            build_playbook(actions, self.store, self.clock, self.watchdog.metrics)
        )
        self.watchdog.reloaded(ruleset)
        self.silences.set_known(known_names((r.name for r in ruleset.rules), ruleset.targets))
        await self.silences.judge_all()
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.gate.ramps is not None:
            await self.gate.ramps.stop()
        await self.watchdog.stop(timeout_s)
        try:
            await asyncio.wait_for(self.manager.drain(), timeout=timeout_s)
        except TimeoutError:
            log.warning("shutdown: in-flight actions did not finish; the journal has them")
        await self.gate.stop()
        await self.burn_history.drain()
        await self.store.close()

    def status_extra(self) -> dict[str, Any]:
        return {
            "leadership": self.gate.describe(),
            "incidents": [
                {
                    "id": i.id,
                    "rule": i.record.rule,
                    "severity": i.record.severity,
                    "phase": i.record.phase,
                    "targets": i.record.targets,
                    "opened_at": i.record.opened_at,
                }
                for i in self.manager.open.values()
            ],
        }


def build_playbook(actions: Actions, store: Store, clock: Clock, metrics: Metrics) -> Playbook:
    """The playbook of a rule set's actions."""
    return Playbook(
        actions.targets,
        actions.purges,
        actions.notifiers,
        store,
        clock,
        actions.target_purges,
        metrics=metrics,
    )


def build_ramps(
    store: Store, clock: Clock, manager: IncidentManager, watchdog: Watchdog, tick_s: float
) -> Ramps:
    """The daemon's ramps: the playbook's targets, gated by the engine's canary rules
    (both read at each use: a reload swaps them)."""
    return Ramps(
        store,
        clock,
        lambda: manager.playbook.targets,
        lambda target, new: canary_gate(watchdog.engine, target, new),
        tick_s,
    )
