"""The model behind the history tests: a whole world on loopback (tests/world.py: the
local Cloudflare API, the receivers, the real Runtime with its Engine, IncidentManager
and Playbook on a virtual clock), the moves a history is made of, and the invariants
checked after every move from what the world recorded (the fake Cloudflare's requests,
the store's journal, events and healthy marks), never from the code's own opinion.

Moves: a person deploys (Worker full or gradual, Pages), traffic (errors and p95,
healthy, mild or breaching, flapping), the operator's manual rollback through the
CLI's path (a second Runtime on the same state file, as ``watchdog rollback`` builds),
with or without ``--dry-run``, or stopped by Ctrl-C at a journal step; Cloudflare
answering rollback requests with failures (503, 429, a refusal); silences; the
daemon restarting (optionally switching dry run, optionally after a downtime) or
killed at a store write (the N-th from now, or the next of a named journal step;
before or after it lands), back at once or only at the next restart while the world
goes on; and virtual time jumps.

``KNOWN_OPEN`` names invariants that fail because of defects already reported in
issue 10, ``FOUND_OPEN`` those failing because of defects this model found (pinned in
test_found_defects.py): still computed, but only reported (``Model.waived``) while
listed. Both are empty: every invariant is asserted. The manual path mirrors
``cli_ops._rollback`` (which builds its own clock and client, so it cannot run on the
virtual clock) up to the rollback; the CLI's own verification loop is not modelled
(the model closes a manual incident once its rollback is done).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.world import PD_KEY, SLACK_TOKEN, SP_KEY, T0, TOKEN, BusyStore, World, seed_history
from tests.world import RULES as WORLD_RULES
from watchdog.clock import AutoClock
from watchdog.demo.fakes.cloudflare import FakeCloudflare, Fault, compile_path
from watchdog.demo.fakes.receivers import Receivers
from watchdog.demo.transport import BusyTransport
from watchdog.http.server import Receive, Scope, Send, serve
from watchdog.incidents.matchers import Matcher, make_matcher
from watchdog.incidents.state import load_state
from watchdog.model import Sample
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.store.base import IncidentRecord, LedgerEntry, SilenceRecord
from watchdog.store.sqlite import SQLiteStore

R = TypeVar("R")
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Invariant name -> the issue 10 defects that break it today. Each listed invariant is
# still checked; its violations are collected in ``Model.waived`` instead of failing.
KNOWN_OPEN: dict[str, str] = {}

# Invariant name -> a defect this model found (not in issue 10), pinned by a failing
# test in tests/model/test_found_defects.py. Waived the same way until fixed.
FOUND_OPEN: dict[str, str] = {}

INVARIANTS = (
    "no_redeploy",  # never deploy the live version, nor one rolled away from (by anyone)
    "healthy_only_verified",  # a healthy mark only after a passed verification
    "one_per_incident",  # at most one rollback per target per incident
    "baseline_clean",  # no verification baseline holds a breaching sample
    "inert_when_silenced",  # nothing mutating while silenced (automatic path)
    "inert_when_dry",  # nothing mutating in dry run (daemon or --dry-run)
    "compare_and_swap",  # a rollback posts only while its plan's 'from' is live
    "guards",  # cooldown per target and the hourly cap, between incidents
    "manual_honest",  # a manual rollback that exits 0 changed something
    "consistent",  # the model's view of what is live agrees with Cloudflare
    "verdict_honest",  # a verification's verdict agrees with the samples fed
    "manual_in_person",  # a manual rollback acts only while its CLI runs
    "journal_honest",  # a rollback row recorded done owns a request Cloudflare saw
)

WORKER_POST = "/accounts/acct/workers/scripts/api/deployments"
PAGES_ROLLBACK = "/accounts/acct/pages/projects/site/deployments/"
SCRIPT, PROJECT = "api", "site"
TARGET_OF = {"worker": SCRIPT, "frontend": PROJECT}

SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None  # state files: no fsync cost
HEALTHY_P95 = 0.4  # seconds; every healthy p95 sample is exactly this
SLOW_P95 = 7.5  # seconds: over the 5 s rule
ERRORS = {"good": 0.001, "mild": 0.01, "bad": 0.08}  # good passes the 0.5 % check
# The ledger's "stated healthy run" (issue 10): a version live alone this long with
# every rule inactive may be marked healthy without a verification: the ledger's
# guards.healthy_after (its default, 2h; the world's rules leave it so).
HEALTHY_RUN_S: float | None = 7200.0
# No sample for longer than this ends a healthy run: the world's defaults.blind_after
# (5m), which the daemon uses as the gap (its signals' 2 x 15s interval is shorter).
EVIDENCE_GAP_S = 300.0
COOLDOWN_S = 1800.0
CAP_PER_HOUR = 3

# Both rules roll back; error-rate's severity is the history's choice.
RULES = """
- {{name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: {severity},
   min_requests: 100, rollback: [worker, frontend]}}
- {{name: slow-p95, signal: p95, above: 5s, for: 5m, severity: critical, rollback: [worker]}}
"""


class Killed(BaseException):
    """The daemon died here, as kill -9 would: nothing after this point runs. A
    BaseException so that no ``except Exception`` boundary in the product swallows it."""


class KillableStore(BusyStore):
    """The world's store, which can be told to die at its N-th write from now, before
    or after that write lands. Dead, it answers nothing (but can be closed)."""

    def __init__(self, path: str | Path, clock: AutoClock) -> None:
        super().__init__(path, clock)
        self.countdown: int | None = None
        self.match = ""  # only writes whose description holds this count
        self.after_write = False
        self.dead = False
        self.died_at = ""

    def arm(self, writes: int, after_write: bool, match: str = "") -> None:
        self.countdown, self.after_write, self.match = writes, after_write, match

    async def _run(self, fn: Callable[[Any], R]) -> R:
        if self.dead:
            raise Killed(self.died_at)
        return await super()._run(fn)

    async def _write(self, what: str, write: Callable[[], Awaitable[R]]) -> R:
        if self.countdown is not None and self.match in what:
            self.countdown -= 1
            if self.countdown <= 0:
                self.countdown = None
                if not self.after_write:
                    self.dead, self.died_at = True, f"killed before {what}"
                    raise Killed(self.died_at)
                await write()
                self.dead, self.died_at = True, f"killed after {what}"
                raise Killed(self.died_at)
        return await write()

    async def save_incident(self, incident: IncidentRecord) -> None:
        await self._write(
            f"save_incident({incident.phase})", lambda: SQLiteStore.save_incident(self, incident)
        )

    async def add_event(self, event: Any) -> None:
        await self._write(f"add_event({event.kind})", lambda: SQLiteStore.add_event(self, event))

    async def journal_intent(self, action: Any) -> Any:
        return await self._write(
            f"journal_intent({action.key})", lambda: SQLiteStore.journal_intent(self, action)
        )

    async def journal_outcome(self, key: str, state: str, outcome: Any, at: float) -> None:
        await self._write(
            f"journal_outcome({key})",
            lambda: SQLiteStore.journal_outcome(self, key, state, outcome, at),
        )

    async def save_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        await self._write("save_ledger", lambda: SQLiteStore.save_ledger(self, entries))

    async def save_silence(self, silence: SilenceRecord) -> None:
        await self._write("save_silence", lambda: SQLiteStore.save_silence(self, silence))

    async def close(self) -> None:
        self.dead = False  # a dead process's file is closed by the OS
        await super().close()


@dataclass
class Post:
    """One mutating request the fake Cloudflare received, as the model judges it."""

    at: float
    target: str  # worker, frontend, or zone (a purge)
    to: str  # the version (Worker) or deployment id (Pages) made live; "" for a purge
    step: str  # the move during which it came
    manual: bool  # came while the CLI ran (the daemon may have sent it meanwhile)
    live_before: tuple[str, ...] = ()  # what served the target when it came


@dataclass
class SilenceWindow:
    record: SilenceRecord
    scope: str  # "all" or a target name

    def covers(self, target: str, at: float) -> bool:
        r = self.record
        live = r.starts_at <= at < r.ends_at and (r.expired_at is None or at < r.expired_at)
        return live and (self.scope == "all" or self.scope == target)


@dataclass
class Violation:
    invariant: str
    detail: str
    step: int

    def __str__(self) -> str:
        return f"[{self.invariant}] after move {self.step}: {self.detail}"


class InvariantError(AssertionError):
    pass


@dataclass
class Model:
    """The world plus what the model knows independently of the watchdog."""

    w: World
    known_open: frozenset[str] = frozenset(KNOWN_OPEN)
    log: list[str] = field(default_factory=list)
    waived: list[Violation] = field(default_factory=list)
    # What serves each target now, and what was ever rolled away from.
    worker_live: list[tuple[str, float]] = field(default_factory=list)
    pages_live: str = ""
    rolled_away: dict[str, set[str]] = field(
        default_factory=lambda: {"worker": set(), "frontend": set()}
    )
    posts: list[Post] = field(default_factory=list)
    silences: list[SilenceWindow] = field(default_factory=list)
    p95_healthy: set[float] = field(default_factory=lambda: {HEALTHY_P95})
    cli_exits: list[tuple[bool, int, bool]] = field(default_factory=list)  # dry, exit, changed
    # Every sample fed: at, errors, p95, and the daemon (its start time) that saw it.
    fed: list[tuple[float, float, float, float]] = field(default_factory=list)
    started_at: list[float] = field(default_factory=lambda: [0.0])  # each daemon's start
    # When each target's sole live version changed: at, target, version ("" = a split).
    lived: list[tuple[float, str, str]] = field(default_factory=list)
    _seen_calls: int = 0
    _step: int = 0
    _checked_cli: int = 0
    versions: int = 3

    # --- the world -------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        return self.w.runtime

    @property
    def store(self) -> KillableStore:
        store = self.w.runtime.store
        assert isinstance(store, KillableStore)
        return store

    @property
    def dry_run(self) -> bool:
        return self.w.runtime.settings.dry_run

    async def settle(self) -> None:
        """Let the daemon work; a kill surfaces here or leaves the store dead."""
        if self.down:
            return
        with contextlib.suppress(Killed):
            await self.w.settle()
        if self.store.dead:
            await self._revive()

    # --- moves -----------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self._step += 1
        self.log.append(f"{self._step}. {text}")

    async def deploy_worker(self, gradual: float | None = None) -> None:
        """A person deploys a new Worker version: at 100 %, or a gradual split with
        the version now at 100 % (the split needs one)."""
        cf = self.w.cloudflare
        self.versions += 1
        name = f"v{self.versions}"
        version = cf.upload_version(SCRIPT, f"release {name}")
        stable = [v for v, p in self.worker_live if p == 100.0]
        if gradual is not None and stable:
            split = [(version, gradual), (stable[0], 100.0 - gradual)]
        else:
            split = [(version, 100.0)]
        cf.deploy(SCRIPT, split, f"deploy {name}")
        self.w.versions[name] = version
        self.worker_live = split
        self.lived.append((self.w.clock.now(), "worker", version if len(split) == 1 else ""))
        self._note(self.named(f"person deploys worker {split}"))

    async def deploy_pages(self) -> None:
        self.versions += 1
        dep = self.w.cloudflare.add_pages_deployment(PROJECT, commit_message=f"p{self.versions}")
        self.w.pages[f"p{self.versions}"] = dep
        self.pages_live = dep
        self.lived.append((self.w.clock.now(), "frontend", dep))
        self._note(f"person deploys pages p{self.versions}")

    async def traffic(self, errors: str, p95: float, minutes: int, interval: float = 30.0) -> None:
        """``minutes`` of samples: error ratio ``errors`` (good, mild, bad), p95 in s."""
        self._note(f"traffic errors={errors} p95={p95} for {minutes}m")
        await self._feed([(ERRORS[errors], p95)] * int(minutes * 60 / interval), interval)

    async def flap(self, signal: str) -> None:
        """A breach that does not last: 2 minutes over, 1 minute under, twice."""
        self._note(f"{signal} flaps")
        bad = (ERRORS["bad"], HEALTHY_P95) if signal == "error_rate" else (0.001, SLOW_P95 + 1)
        calm = (ERRORS["mild"], HEALTHY_P95)
        await self._feed(([bad] * 4 + [calm] * 2) * 2, 30.0)

    async def _feed(self, points: list[tuple[float, float]], interval: float) -> None:
        for errors, p95 in points:
            self.w.clock.set(self.w.clock.now() + interval)
            at = self.w.clock.now()
            if self.down:
                continue  # nobody samples
            watchdog = self.runtime.watchdog
            watchdog.observe("error_rate", Sample.of(at, errors, 1000.0), "prom")
            watchdog.observe("p95", Sample.of(at, p95, 1000.0), "prom")
            self.fed.append((at, errors, p95, self.started_at[-1]))
            await self.settle()

    async def advance(self, seconds: float) -> None:
        """Time passes with no samples (the source is down, or the jump of a sleep)."""
        self._note(f"time jumps {seconds:g}s")
        self.w.clock.set(self.w.clock.now() + seconds)
        await self.settle()

    async def cloudflare_fails(self, target: str, kind: str, times: int) -> None:
        """Cloudflare answers the next ``times`` rollback requests for ``target`` with a
        failure and changes nothing: ``status`` (503), ``rate_limit`` (429 with a
        Retry-After) or ``refuse`` (a 400 with an API error)."""
        cf = self.w.cloudflare
        path = WORKER_POST if target == "worker" else PAGES_ROLLBACK + "{id}/rollback"
        if kind == "status":
            fault = cf.fail("POST", path, 503, times=times)
        elif kind == "rate_limit":
            fault = cf.rate_limit("POST", path, retry_after="20", times=times)
        else:
            fault = cf.refuse("POST", path, 10021, "refused by the model", times=times)
        self.faults.append(fault)
        self._note(f"cloudflare answers the next {times} {target} rollback(s) with {kind}")

    def _faulted(self, path: str) -> bool:
        """Was this (absorbed, in order) request answered by an injected fault, so
        that nothing changed? Faults take the first matching requests after them."""
        for n, fault in enumerate(self.faults):
            seen = self._fault_seen.get(n, 0)
            if fault.hits > seen and compile_path(fault.path).match(path):
                self._fault_seen[n] = seen + 1
                return True
        return False

    async def silence(self, scope: str, minutes: float = 120.0) -> None:
        if self.down:
            self._note(f"silence {scope}: the daemon's API is down")
            return
        matchers: list[Matcher] = [] if scope == "all" else [make_matcher("target", "=", scope)]
        try:
            record = await self.runtime.silences.add(
                matchers, duration_s=minutes * 60, created_by="oncall", comment="maintenance"
            )
        except Killed:
            await self._revive()
            self._note(f"silence {scope} (the daemon died writing it)")
            return
        self.silences.append(SilenceWindow(record, scope))
        self._note(f"silence {scope} for {minutes:g}m")

    async def unsilence(self) -> None:
        if self.down:
            return
        now = self.w.clock.now()
        active = [s for s in self.silences if s.covers(s.scope, now)]
        if not active:
            return
        window = active[0]
        try:
            expired = await self.runtime.silences.expire(window.record.id)
        except Killed:
            await self._revive()
            self._note("silence expire (the daemon died writing it)")
            return
        window.record = expired
        self._note(f"silence {window.scope} expired")

    async def restart(self, dry_run: bool | None = None, down_s: float = 0.0) -> None:
        """A clean restart (SIGTERM): stop, ``down_s`` later a new Runtime on the same
        state file."""
        dry = self.dry_run if dry_run is None else dry_run
        self._note(f"daemon restarts (dry_run={dry}, down {down_s:g}s)")
        old = self.w.runtime
        if self.down:  # killed earlier: only now does it come back
            self.w.clock.set(self.w.clock.now() + down_s)
            await self._build(old, dry)
            return
        with contextlib.suppress(Killed):
            await old.stop()
        if self.store.dead:
            await self._revive(dry)
            return
        self.w.clock.set(self.w.clock.now() + down_s)
        await self._build(old, dry)

    def arm_kill(
        self,
        writes: int,
        after_write: bool,
        down_s: float = 0.0,
        match: str = "",
        stay_down: bool = False,
    ) -> None:
        """kill -9 at the N-th store write from now (only writes whose description
        holds ``match``, like ``journal_intent`` or ``save_incident(rolling_back)``);
        the new process starts ``down_s`` later, or (``stay_down``) at the next
        ``restart`` move, the world going on meanwhile."""
        self.store.arm(writes, after_write, match)
        self._down_s = down_s
        self._stay_down = stay_down
        when = "after" if after_write else "before"
        back = "until restarted" if stay_down else f"down {down_s:g}s"
        self._note(
            f"the daemon will be killed {when} its next {match or 'store write'} #{writes} ({back})"
        )

    async def _revive(self, dry_run: bool | None = None) -> None:
        """The process died (its store says where): a new one on the same state file."""
        old = self.w.runtime
        self.log.append(f"   ... {self.store.died_at}; a new daemon starts")
        await old.manager.stand_down()  # what was in flight dies with the process
        with contextlib.suppress(Killed):
            await old.watchdog.stop(0.0)
        await old.store.close()
        if self._stay_down:
            # Built, not started: the checks read its store; nothing samples or acts.
            self.log[-1] = self.log[-1].replace("a new daemon starts", "the daemon is down")
            self.down = True
            self.w.runtime = await self._runtime(old, self.dry_run)
            return
        self.w.clock.set(self.w.clock.now() + self._down_s)
        await self._build(old, self.dry_run if dry_run is None else dry_run)

    async def _runtime(self, old: Runtime, dry: bool) -> Runtime:
        settings = old.settings.model_copy(update={"dry_run": dry})
        store = KillableStore(settings.state, self.w.clock)
        return await Runtime.build(settings, self.w.clock, old.http, store=store)

    async def _build(self, old: Runtime, dry: bool) -> None:
        if self.down:
            await old.store.close()
            self.down = False
        self.w.runtime = await self._runtime(old, dry)
        self.started_at.append(self.w.clock.now())
        clock = asyncio.create_task(self.w.clock.run())
        try:
            await self.w.runtime.manager.restore()
        except Killed:  # cannot happen: the new store is not armed
            raise
        finally:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
        await self.settle()

    async def manual_rollback(self, targets: list[str], dry: bool, interrupt: str = "") -> int:
        """``watchdog rollback TARGET... --reason ... [--dry-run]``, as cli_ops._rollback
        does it (a Runtime of its own on the daemon's settings and state file), on the
        world's clock and client. Returns the CLI's exit code (130: ``interrupt`` named
        a store write at which the operator's Ctrl-C stopped it, after that write)."""
        self._note(f"operator runs rollback {' '.join(targets)}{' --dry-run' if dry else ''}")
        before = (list(self.worker_live), self.pages_live)
        settings = self.runtime.settings
        if dry:
            settings = settings.model_copy(update={"dry_run": True})
        clock = asyncio.create_task(self.w.clock.run())
        tasks_before = asyncio.all_tasks()
        interrupted, ok, would = False, False, False
        self._manual = True
        try:
            store = KillableStore(settings.state, self.w.clock)
            if interrupt:
                store.arm(1, True, interrupt)
            cli = await Runtime.build(settings, self.w.clock, self.runtime.http, store=store)
            try:
                incident = await cli.manager.manual_rollback(targets, "bad deploy", "oncall")
                await cli.manager.drain()
                events = await cli.store.events(incident.id)
                ok = any(e.kind == "rollback_finished" for e in events)
                would = any(e.kind == "would_rollback" for e in events)
                await cli.manager.close(
                    incident,
                    "manual rollback finished; verification is the operator's"
                    if ok
                    else "manual rollback did not go through",
                )
            except Killed:
                # Ctrl-C (or a lost SSH session) at that journal step: the CLI is gone,
                # with every task it had (a concurrent chain too).
                await cli.manager.stand_down()
                orphans = asyncio.all_tasks() - tasks_before
                for task in orphans:
                    task.cancel()
                await asyncio.gather(*orphans, return_exceptions=True)
                self.log.append(f"   ... interrupted: {store.died_at}")
                interrupted = True
            finally:
                await cli.store.close()
        finally:
            self._manual = False
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
            await self._absorb_calls("manual rollback", manual=True)
        if interrupted:
            return 130
        code = 0 if ok or would else 1
        changed = before != (self.worker_live, self.pages_live)
        self.cli_exits.append((settings.dry_run, code, changed))
        self.log.append(f"   ... exit {code}, changed={changed}")
        return code

    _manual: bool = False
    _down_s: float = 0.0
    _stay_down: bool = False
    _cas_checked: int = 0
    faults: list[Fault] = field(default_factory=list)
    _fault_seen: dict[int, int] = field(default_factory=dict)
    down: bool = False  # killed, not restarted yet

    # --- what Cloudflare saw ---------------------------------------------------------

    async def _absorb_calls(self, step: str, manual: bool = False) -> None:
        """Walk the requests since the last look: each mutating one moves the model's
        view of what is live, and is judged (live version, rolled away from)."""
        calls = self.w.cloudflare.calls
        for call in calls[self._seen_calls :]:
            if call.method == "GET":
                continue
            if self._faulted(call.path):
                continue
            if call.path == WORKER_POST:
                versions = (call.json or {}).get("versions") or [{}]
                to = str(versions[0].get("version_id", ""))
                self._judge_deploy("worker", to, call.at, step, manual, self.worker_live)
                self.worker_live = [(to, 100.0)]
                self.lived.append((call.at, "worker", to))
            elif call.path.startswith(PAGES_ROLLBACK) and call.path.endswith("/rollback"):
                to = call.path[len(PAGES_ROLLBACK) : -len("/rollback")]
                self._judge_deploy(
                    "frontend", to, call.at, step, manual, [(self.pages_live, 100.0)]
                )
                self.pages_live = to
                self.lived.append((call.at, "frontend", to))
            else:
                self.posts.append(Post(call.at, "zone", "", step, manual))
        self._seen_calls = len(calls)

    def _judge_deploy(
        self,
        target: str,
        to: str,
        at: float,
        step: str,
        manual: bool,
        live: list[tuple[str, float]],
    ) -> None:
        self.posts.append(Post(at, target, to, step, manual, tuple(v for v, _ in live)))
        sole = live[0][0] if len(live) == 1 else None
        if to == sole:
            self._violate("no_redeploy", f"{target}: deployed {to}, which was already live")
        if to in self.rolled_away[target]:
            self._violate(
                "no_redeploy",
                f"{target}: deployed {to}, a version rolled away from earlier (live was {live})",
            )
        self.rolled_away[target] |= {v for v, _ in live if v != to}

    # --- invariants ------------------------------------------------------------------

    def named(self, text: str) -> str:
        """Version and deployment ids as the history names them (v3, p2, ...)."""
        for name, ident in [*self.w.versions.items(), *self.w.pages.items()]:
            text = text.replace(ident, name)
        return text

    def _violate(self, invariant: str, detail: str) -> None:
        violation = Violation(invariant, self.named(detail), self._step)
        if invariant in self.known_open:
            self.waived.append(violation)
            return
        raise InvariantError(f"{violation}\nhistory:\n" + "\n".join(self.log))

    async def check(self, step: str) -> None:
        """Every invariant, after every move."""
        new_from = len(self.posts)
        await self._absorb_calls(step)
        new = self.posts[new_from:]
        self._check_consistent()
        incidents = await self.runtime.store.recent_incidents(10_000)
        rows = {i.id: await self.runtime.store.actions(i.id) for i in incidents}
        owners = self._owners(incidents, rows)
        rules = {i.id: i.rule for i in incidents}
        by_person = {id(p) for p, i in owners if rules[i] == "manual"}
        self._check_inert(new, step, by_person)
        self._check_manual()
        self._check_one_per_incident(owners)
        self._check_guards(owners, {i.id: i for i in incidents})
        self._check_baselines(incidents)
        await self._check_healthy(incidents)

    def _check_consistent(self) -> None:
        cf = self.w.cloudflare
        live = cf.live_versions(SCRIPT)
        if live != self.worker_live:
            self._violate("consistent", f"worker serves {live}, the model says {self.worker_live}")
        canonical = cf.canonical(PROJECT)
        if canonical != self.pages_live:
            self._violate(
                "consistent", f"pages serves {canonical}, the model says {self.pages_live}"
            )

    def _check_inert(self, new: list[Post], step: str, by_person: set[int]) -> None:
        """Nothing automatic mutates in dry run or under a silence. A request during
        the CLI's run is the person's only if a manual incident's row asked for it (the
        daemon runs meanwhile); a purge has no row: one then is taken as the person's."""
        for post in new:
            if post.manual and (post.target == "zone" or id(post) in by_person):
                continue
            if self.dry_run:
                self._violate("inert_when_dry", f"{post.target} changed in dry run ({step})")
            hold = next((s for s in self.silences if s.covers(post.target, post.at)), None)
            if hold is not None:
                self._violate(
                    "inert_when_silenced",
                    f"{post.target} changed at {post.at:.0f} under silence {hold.scope}",
                )
        for dry, _code, changed in self.cli_exits[self._checked_cli :]:
            if dry and changed:
                self._violate("inert_when_dry", "rollback --dry-run changed what is live")

    def _check_manual(self) -> None:
        for dry, code, changed in self.cli_exits[self._checked_cli :]:
            if not dry and code == 0 and not changed:
                self._violate(
                    "manual_honest", "rollback exited 0 (success) but nothing was rolled back"
                )
        self._checked_cli = len(self.cli_exits)

    def _owners(
        self, incidents: list[IncidentRecord], rows: dict[str, list[Any]]
    ) -> list[tuple[Post, str]]:
        """Each rollback request with the incident whose journal row asked for it: a
        row written before the request, for that target and version, not taken yet;
        a row whose outcome records the request it sent first (an intent row whose
        writer died before its request, say a person's Ctrl-C, asked for nothing, though
        another incident may later send the same request), then the earliest."""
        journal = [
            (
                a.created_at,
                a.incident_id,
                a.target,
                str(a.intent.get("to", "")),
                str(a.intent.get("from", "")),
                a.state == "done" and "request" in a.outcome and not a.outcome.get("would"),
                a.state == "done" and not a.outcome.get("would"),
            )
            for i in incidents
            for a in rows[i.id]
            if a.kind == "rollback"
        ]
        journal.sort()
        used: set[int] = set()
        out = []
        for index, post in enumerate(self.posts):
            if post.target == "zone":
                continue
            # Requests come in order: each takes a row not yet taken, one that sent a
            # request first, else the earliest.
            row = min(
                (
                    n
                    for n, (at, _incident, target, to, _from, _sent, _done) in enumerate(journal)
                    if n not in used
                    and target == post.target
                    and to == post.to
                    and at <= post.at + 1e-6
                ),
                key=lambda n: (not journal[n][5], n),
                default=None,
            )
            if row is None:
                self._violate(
                    "one_per_incident",
                    f"{post.target} -> {post.to} at {post.at:.0f}: no journal row left that "
                    "asked for it (a second request for one row)",
                )
                continue
            used.add(row)
            out.append((post, journal[row][1]))
            if index >= self._cas_checked:
                self._check_cas(post, journal[row][4])
        self._cas_checked = len(self.posts)
        for n, (_at, incident, target, to, _from, _sent, done) in enumerate(journal):
            if done and n not in used:
                self._violate(
                    "journal_honest",
                    f"{incident}: its {target} rollback to {to} is recorded done, but no "
                    "request of its own sent it",
                )
        return out

    def _check_cas(self, post: Post, planned_from: str) -> None:
        """A rollback is a compare-and-swap: it posts only while what serves is what
        its plan (journalled) rolls back from; otherwise someone deployed meanwhile."""
        if not set(planned_from.split(",")) <= set(post.live_before):
            self._violate(
                "compare_and_swap",
                f"{post.target}: rolled back to {post.to} from {planned_from} (the plan), "
                f"but {', '.join(post.live_before)} was live: a newer deploy was overwritten",
            )

    def _check_one_per_incident(self, owners: list[tuple[Post, str]]) -> None:
        seen: dict[tuple[str, str], int] = {}
        for post, incident in owners:
            key = (incident, post.target)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                self._violate(
                    "one_per_incident", f"incident {incident} rolled {post.target} back twice"
                )

    def _check_guards(
        self, owners: list[tuple[Post, str]], incidents: dict[str, IncidentRecord]
    ) -> None:
        for index, (post, incident) in enumerate(owners):
            if incidents[incident].rule == "manual":
                if not post.manual:
                    self._violate(
                        "manual_in_person",
                        f"{incident}: the daemon rolled {post.target} back to {post.to} at "
                        f"{post.at:.0f} for a person's rollback whose command had ended",
                    )
                continue  # a person decided: no cooldown, no cap
            # Requests before this one (in the order Cloudflare saw them: two in one
            # instant, the later is not "before" the earlier).
            others = [
                (p, i)
                for p, i in owners[:index]
                if i != incident and post.at - 3600 < p.at <= post.at
            ]
            cool = [p for p, _ in others if p.target == post.target and post.at - p.at < COOLDOWN_S]
            if cool:
                self._violate(
                    "guards",
                    f"{incident} rolled {post.target} back at {post.at:.0f}, "
                    f"{post.at - cool[-1].at:.0f}s after another rollback (cooldown 30m)",
                )
            if len(others) >= CAP_PER_HOUR:
                self._violate(
                    "guards",
                    f"{incident} rolled {post.target} back with {len(others)} other "
                    "rollbacks in the hour (cap 3)",
                )

    def _check_baselines(self, incidents: list[IncidentRecord]) -> None:
        for incident in incidents:
            for signal, value in load_state(incident).baselines.items():
                if value is None or signal != "p95":
                    continue
                if not min(self.p95_healthy) <= value <= max(self.p95_healthy):
                    self._violate(
                        "baseline_clean",
                        f"{incident.id}: p95 baseline {value:g}s is no healthy value "
                        f"(healthy p95 is {HEALTHY_P95}s; the rule fires above 5s)",
                    )

    def _ran_healthy(self, target: str, version: str, marked_at: float) -> bool:
        """Was ``version`` live alone on ``target`` for HEALTHY_RUN_S up to ``marked_at``
        (its mark) with every sample healthy and none missing (no gap over
        EVIDENCE_GAP_S between samples, nor from the last one to the mark)?"""
        if HEALTHY_RUN_S is None:
            return False
        changes = [*self.lived, (self.w.clock.now() + 1, target, "")]
        for n, (at, name, live) in enumerate(changes[:-1]):
            if name != target or live != version:
                continue
            end = next((a for a, t, _ in changes[n + 1 :] if t == target), changes[-1][0])
            if not at <= marked_at < end:
                continue
            run_start = at
            last = at
            for f_at, errors, p95, _daemon in self.fed:
                if not at <= f_at <= marked_at:
                    continue
                if errors > 0.05 or p95 > 5.0 or f_at - last > EVIDENCE_GAP_S:
                    run_start = f_at
                last = f_at
            if marked_at - last > EVIDENCE_GAP_S:
                return False
            return marked_at - run_start >= HEALTHY_RUN_S
        return False

    def _check_verdicts(self, incident: IncidentRecord, events: list[Any]) -> None:
        """A check failed although a sample fed in its time met its goal, or passed
        although none did up to the verdict: the verdict is not the evidence's."""
        state = load_state(incident)
        started = state.verify_started
        if started is None:
            return
        baselines = state.baselines
        columns = {"error_rate": 1, "p95": 2}  # where ``fed`` keeps each signal
        goals: dict[str, tuple[int, float | None, float]] = {}
        for c in self.runtime.watchdog.ruleset.after_rollback.verify:
            if c.below is not None:
                goals[f"{c.signal}:below"] = (columns[c.signal], c.below.value, c.within)
            else:
                base = baselines.get(c.signal)
                goal = None if base is None else base * (1 + c.tolerance)
                goals[f"{c.signal}:baseline"] = (columns[c.signal], goal, c.within)
        for event in (e for e in events if e.kind == "verification"):
            # The samples the daemon that judged saw (a killed one's die with it),
            # taken after the rollback (one at its very instant was taken before it).
            judge = max(t for t in self.started_at if t <= event.at)
            seen = [f for f in self.fed if f[3] == judge]
            for key, verdict in event.data.get("results", {}).items():
                if key not in goals:
                    continue
                column, goal, within = goals[key]
                if goal is None:
                    continue
                met = [f for f in seen if started < f[0] <= started + within + 1e-6]
                met = [f for f in met if f[column] < goal]
                if str(verdict).startswith("failed") and met:
                    self._violate(
                        "verdict_honest",
                        f"{incident.id}: {key} {verdict!r}, but {met[0][column]:g} was fed "
                        f"{met[0][0] - started:.0f}s after the verification began",
                    )
                passing = [f for f in self.fed if started <= f[0] <= event.at]
                if str(verdict).startswith("passed") and not [
                    f for f in passing if f[column] < goal
                ]:
                    self._violate(
                        "verdict_honest", f"{incident.id}: {key} {verdict!r} with no such sample"
                    )

    async def _check_healthy(self, incidents: list[IncidentRecord]) -> None:
        verified: dict[str, set[str]] = {"worker": set(), "frontend": set()}
        for incident in incidents:
            events = await self.runtime.store.events(incident.id)
            self._check_verdicts(incident, events)
            passed = any(
                e.kind == "verification"
                and all(str(r).startswith("passed") for r in e.data.get("results", {}).values())
                for e in events
            )
            if passed:
                for target, _from, to in load_state(incident).rolled_back:
                    verified[target].add(to)
        for target in verified:
            marked = [e for e in await self.runtime.store.ledger(target) if e.verified]
            for entry in marked:
                version, at = entry.version, entry.verified_at or 0.0
                if version not in verified[target] and not self._ran_healthy(target, version, at):
                    self._violate(
                        "healthy_only_verified",
                        f"{target} {version} is marked healthy with no passed verification "
                        "of a rollback to it",
                    )


class Dispatch:
    """An ASGI app that forwards to the current example's app, so one pair of loopback
    servers serves every example (a server's graceful stop costs 0.1 s or more)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no example is running"
        await self.app(scope, receive, send)


class SharedTransport(BusyTransport):
    """tests/world.py's transport (virtual time stands still during loopback I/O) over
    one connection pool for every example: a new pool loads the CA bundle (40 ms)."""

    def __init__(self, clock: AutoClock, inner: httpx.AsyncHTTPTransport) -> None:
        self.clock = clock
        self.inner = inner

    async def aclose(self) -> None:
        """The pool outlives the example."""


@dataclass
class Servers:
    cloudflare: Dispatch
    receivers: Dispatch
    cloudflare_url: str
    receivers_url: str
    pool: httpx.AsyncHTTPTransport


@contextlib.asynccontextmanager
async def servers() -> AsyncIterator[Servers]:
    cf, rx = Dispatch(), Dispatch()
    async with (
        serve(cf) as cf_srv,
        serve(rx) as rx_srv,
        httpx.AsyncHTTPTransport() as pool,
    ):
        yield Servers(cf, rx, cf_srv.url, rx_srv.url, pool)


@contextlib.asynccontextmanager
async def model(
    srv: Servers, severity: str = "critical", known_open: frozenset[str] | None = None
) -> AsyncIterator[Model]:
    """A fresh world (v1, v2, v3 on the Worker, p1, p2, p3 on Pages; v3 and p3 went
    live ten minutes ago; tests/world.py's, on the shared servers) and the model of it.
    State lives on /dev/shm when it can (SQLite's fsync per commit is most of a
    step's cost on a disk)."""
    tmp = Path(tempfile.mkdtemp(prefix="histories-", dir=SCRATCH))
    clock = AutoClock(T0)
    cf = FakeCloudflare(token=TOKEN, account_id="acct", clock=clock)
    versions, pages = seed_history(cf, T0)
    receivers = Receivers(statuspage_api_key=SP_KEY, now=clock.now)
    receivers.statuspage.add_component("comp1")
    srv.cloudflare.app, srv.receivers.app = cf.router, receivers
    rules_path = tmp / "rules.yaml"
    rules_path.write_text(
        textwrap.dedent(WORLD_RULES).format(
            rules=textwrap.indent(
                textwrap.dedent(RULES.format(severity=severity)).strip("\n"), "  "
            ),
            pd_url=Receivers.pagerduty_url(srv.receivers_url),
            sp_url=Receivers.statuspage_url(srv.receivers_url),
        )
    )
    environ = {
        "WATCHDOG_RULES": str(rules_path),
        "WATCHDOG_STATE": str(tmp / "state.db"),
        "WATCHDOG_CLOUDFLARE_API_URL": f"{srv.cloudflare_url}/client/v4",
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": "acct",
        "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(
            srv.receivers_url, SLACK_TOKEN
        ),
        "WATCHDOG_SECRETS__PAGERDUTY_ROUTING_KEY": PD_KEY,
        "WATCHDOG_SECRETS__STATUSPAGE_API_KEY": SP_KEY,
        "WATCHDOG_SECRETS_DIR": str(tmp / "no-secrets"),
    }
    settings = load_settings(environ)
    try:
        async with httpx.AsyncClient(
            timeout=5.0, transport=SharedTransport(clock, srv.pool)
        ) as http:
            store = KillableStore(settings.state, clock)
            runtime = await Runtime.build(settings, clock, http, store=store)
            await runtime.manager.restore()
            w = World(clock, cf, receivers, runtime, tmp, versions, pages, KillableStore)
            known = frozenset(KNOWN_OPEN) | frozenset(FOUND_OPEN)
            m = Model(w, known if known_open is None else known_open)
            m.worker_live = w.worker_live()
            m.pages_live = cf.canonical(PROJECT) or ""
            m._seen_calls = len(cf.calls)
            try:
                yield m
            finally:
                with contextlib.suppress(Killed):
                    await w.settle()
                await w.runtime.store.close()
    finally:
        srv.cloudflare.app = srv.receivers.app = None
        shutil.rmtree(tmp, ignore_errors=True)
