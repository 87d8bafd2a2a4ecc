"""A ramp run by the real daemon (``python -m watchdog run``, a subprocess) against the
local Cloudflare API on loopback, for the kill tests (tests/integration/
test_ramp_kill_proc.py) and the kill bench (bench/ramp_kill.py).

The world: a Worker ``api`` serving v1 at 100 %, v2 uploaded; the Worker's front door
(``WorkerEdge``) routes 100 requests a second by the live split into the local
telemetry; a canary rule judges v2 against v1 on those per-version counts. The daemon
polls fast (``WATCHDOG_RAMP_TICK``, ``WATCHDOG_DEPLOY_POLL``, ``WATCHDOG_SPLIT_POLL``)
so that a ramp of three steps soaks in seconds of real time.

``kill_once`` plays one seeded kill: it starts a ramp through the control API, SIGKILLs
the daemon at the kill point its phase names (a stalled request to the local API makes
the moment exact), restarts it on the same state, and reports what an operator sees:
the live deployment and the ramp as the API lists it, at the kill, once the restarted
daemon has reconciled, and at the end."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from tests.integration.daemon_proc import DaemonProc
from tests.integration.proc_world import STALL_S, Stalls
from watchdog.demo.fakes.cloudflare import FakeCloudflare, Fault
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour, Row, WorkerEdge
from watchdog.http.server import serve

TOKEN = "cf-ramp-proc-token"
DEPLOYMENTS = "/accounts/acct/workers/scripts/api/deployments"
STEPS = "10%,50%,100%"
SOAK_S = 2.0
VERB_SOAK_S = 8.0  # the verbs' and the canary's phases: long enough to act at 10 %
TICK_S = 0.25  # the ramp's tick and the deploy watch's reads, in the daemon under test
EDGE_RPS = 100
GOOD = Behaviour(error_ratio=0.002, wall_ms=30.0)
BAD = Behaviour(error_ratio=0.25, wall_ms=30.0)
RECONCILE_BOUND_S = 15.0  # after the restarted daemon serves: its ramp reconciled by then
END_BOUND_S = 60.0  # after the restart: every ramp ended by then
POLL_S = 0.05

Stall = Literal["delay", "apply_then_stall"]  # the POST at the kill: not applied, applied

RULES = """
version: 1
defaults: {interval: 1s, blind_after: 1m}
sources:
  cf: {type: cloudflare, script: api, mode: versions, delay: 1s, window: 3s}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: canary, signal: cf.versions, canary: {min_effect: 3x, confidence: 99%},
     severity: critical, rollback: [worker]}
correlation: {enabled: true, max_deploy_age: 1h}
guards: {cooldown: 30m, max_rollbacks_per_hour: 3}
"""

# Where each phase's kill lands (README "ramp_kill.py" has the table):
PHASES = (
    "before-first-split",  # the first step journalled, its POST stalled before applying
    "first-split-unanswered",  # the first step applied at Cloudflare, its answer stalled
    "mid-soak",  # at a random moment of the ramp, no request stalled
    "step-change",  # the 50 % or 100 % step's POST stalled, before or after applying
    "abort",  # an operator's abort at 10 %: its POST stalled, before or after applying
    "promote",  # an operator's promote at 10 %: its POST stalled, before or after applying
    "canary-rollback",  # a bad v2 at 10 %: the canary's rollback POST stalled
)


@dataclass
class Seen:
    """What an operator sees at one moment: the live split and the ramp (API)."""

    live: list[tuple[str, float]]
    live_message: str = ""  # the live deployment's (a ramp signs its own with its id)
    ramp: str = ""  # the ramp's id
    phase: str | None = None  # the ramp's, None when there is none
    why: str = ""
    active: bool = False

    @property
    def split(self) -> bool:
        return len(self.live) > 1

    @property
    def owned(self) -> bool:
        """A split an active ramp owns: it made this deployment (the message Cloudflare
        shows names the ramp) and goes on moving it."""
        return self.active and self.live_message.startswith(f"rollback-watchdog ramp {self.ramp}")


@dataclass
class KillRun:
    seed: int
    phase: str
    stall: Stall | None  # the stalled POST: "delay" (not applied), "apply_then_stall"
    soak_s: float  # each step's (VERB_SOAK_S in the verbs' and the canary's phases)
    at_kill: Seen | None = None
    reconciled: Seen | None = None
    end: Seen | None = None
    reconcile_s: float | None = None  # restarted daemon serving → ramp reconciled
    restart_s: float | None = None  # restart spawned → serving
    problems: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.end is None:
            return "no end"
        if self.end.split:
            return "SPLIT LEFT"
        return f"{self.end.phase} ({self.end.live[0][0]} 100%)"


@dataclass
class RampProc:
    cf: FakeCloudflare
    edge: WorkerEdge
    proc: DaemonProc
    stalls: Stalls
    old: str
    new: str

    def live(self) -> list[tuple[str, float]]:
        return self.cf.live_versions("api")

    def live_message(self) -> str:
        live = self.cf.live_deployment("api")
        return live.message if live else ""

    def posts(self) -> int:
        return self.cf.count("POST", DEPLOYMENTS)

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(base_url=self.proc.url, timeout=10.0) as http:
            response = await http.request(method, path, json=body)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def ramps(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.api("GET", "/api/v1/ramps"))["ramps"]
        return found

    async def seen(self, from_api: bool = True) -> Seen:
        ramps = await self.ramps() if from_api else []
        seen = Seen(sorted(self.live()), self.live_message())
        if ramps:
            (ramp,) = ramps
            seen.phase, seen.why, seen.active = ramp["phase"], ramp["why"], ramp["active"]
            seen.ramp = ramp["id"]
        return seen

    async def start_ramp(self, soak_s: float = SOAK_S) -> str:
        body = {"version": self.new, "steps": STEPS, "soak": soak_s, "created_by": "ana"}
        ramp = await self.api("POST", "/api/v1/ramps", body)
        return str(ramp["id"])

    async def wait_for(self, check: Any, what: str, bound_s: float) -> float:
        """Poll ``check`` (async) until true; seconds it took; AssertionError past the bound."""
        began = time.monotonic()
        while time.monotonic() - began < bound_s:
            with contextlib.suppress(httpx.TransportError):
                if await check():
                    return time.monotonic() - began
            await asyncio.sleep(POLL_S)
        raise AssertionError(f"not within {bound_s:g}s: {what}\n{self.proc.log_tail()}")

    async def stalled(self, bound_s: float = 30.0) -> None:
        """Until a request to the local API stalls (the kill point); bounded."""
        try:
            await asyncio.wait_for(self.stalls.began.wait(), bound_s)
        except TimeoutError:
            raise AssertionError(
                f"no request stalled within {bound_s:g}s: live {self.live()}\n"
                f"{self.proc.log_tail()}"
            ) from None


async def _edge_traffic(w: RampProc) -> None:
    while True:
        w.edge.simulate(w.cf.clock.now(), EDGE_RPS // 5)
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def ramp_proc(tmp_path: Path, bad: bool = False) -> AsyncIterator[RampProc]:
    """The world and a daemon, not started yet."""
    stalls = Stalls()
    cf = FakeCloudflare(token=TOKEN, account_id="acct", sleep=stalls)
    now = cf.clock.now()
    old = cf.publish("api", "v1", created_on=now - 86400)
    new = cf.upload_version("api", "v2", created_on=now - 60)
    cf.telemetry.record(Row(now - 3600, "api", old, "ok", 20.0))  # Workers Logs is on
    edge = cf.edge("api")
    edge.behaviours.update({old: GOOD, new: BAD if bad else GOOD})
    async with serve(cf.router) as cf_srv:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        env = {
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_STATE": str(tmp_path / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
            "WATCHDOG_RAMP_TICK": str(TICK_S),
            "WATCHDOG_DEPLOY_POLL": str(TICK_S),
            "WATCHDOG_SPLIT_POLL": str(TICK_S),
        }
        w = RampProc(cf, edge, DaemonProc(env, tmp_path), stalls, old, new)
        traffic = asyncio.create_task(_edge_traffic(w))
        try:
            yield w
        finally:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
            stalls.released.set()
            await w.proc.stop()


def _stall(w: RampProc, kind: Stall, after: int) -> None:
    """The POST after ``after`` others stalls, before (``delay``) or after
    (``apply_then_stall``) Cloudflare applies it."""
    w.cf.inject(Fault("POST", DEPLOYMENTS, kind, times=1, delay_s=STALL_S, after=after))


async def _at_ten(w: RampProc) -> bool:
    return sorted(w.live()) == sorted([(w.new, 10.0), (w.old, 90.0)])


async def _until_kill_point(w: RampProc, run: KillRun, rng: random.Random) -> None:
    """Start the ramp and return at the moment the run's phase names (the daemon runs)."""
    phase, stall = run.phase, run.stall or "delay"
    if phase in ("before-first-split", "first-split-unanswered"):
        run.stall = "delay" if phase == "before-first-split" else "apply_then_stall"
        w.cf.inject(Fault("POST", DEPLOYMENTS, run.stall, times=1, delay_s=STALL_S))
        await w.start_ramp(run.soak_s)
        await w.stalled()
    elif phase == "mid-soak":
        run.stall = None
        await w.start_ramp(run.soak_s)
        await asyncio.sleep(rng.uniform(0.0, 3 * (run.soak_s + 1.0)))
    elif phase == "step-change":
        _stall(w, stall, after=rng.choice((1, 2)))
        await w.start_ramp(run.soak_s)
        await w.stalled(30.0)
    elif phase in ("abort", "promote"):
        ramp = await w.start_ramp(VERB_SOAK_S)  # no step of its own before the verb
        await w.wait_for(lambda: _at_ten(w), "the first step live", 30.0)
        _stall(w, stall, after=0)
        verb = asyncio.create_task(w.api("POST", f"/api/v1/ramps/{ramp}/{phase}", {"by": "bo"}))
        await w.stalled()
        verb.cancel()
        with contextlib.suppress(asyncio.CancelledError, AssertionError, httpx.TransportError):
            await verb
    elif phase == "canary-rollback":
        _stall(w, stall, after=1)
        await w.start_ramp(VERB_SOAK_S)  # judged at 10 %, as under a real soak
        await w.stalled(30.0)
    else:
        raise ValueError(f"unknown kill phase {phase!r}")
    await asyncio.sleep(rng.uniform(0.0, 0.05))


async def kill_once(
    tmp_path: Path,
    seed: int,
    phase: str | None = None,
    stall: Stall | None = None,
    soak_s: float = SOAK_S,
) -> KillRun:
    """One seeded kill; ``phase`` defaults to the seed's (all phases in turn), the
    stalled request to one applied or not, as the seed draws."""
    rng = random.Random(seed)
    phase = phase or PHASES[seed % len(PHASES)]
    stalls: tuple[Stall, Stall] = ("delay", "apply_then_stall")
    run = KillRun(seed, phase, stall if stall is not None else rng.choice(stalls), soak_s)
    async with ramp_proc(tmp_path, bad=phase == "canary-rollback") as w:
        await w.proc.start()
        await _until_kill_point(w, run, rng)
        await w.proc.kill()
        run.at_kill = await w.seen(from_api=False)
        began, wall = time.monotonic(), time.time()
        await w.proc.start()
        run.restart_s = time.monotonic() - began

        async def reconciled() -> bool:
            # Reconciling saves every active ramp; an ended one needs nothing.
            (ramp,) = await w.ramps()
            return not ramp["active"] or float(ramp["updated_at"]) >= wall

        try:
            run.reconcile_s = await w.wait_for(reconciled, "the ramp reconciled", RECONCILE_BOUND_S)
            run.reconciled = await w.seen()
            await w.wait_for(_ended(w), "the ramp ended", END_BOUND_S)
            run.end = await w.seen()
        except AssertionError as exc:
            run.problems.append(str(exc).splitlines()[0])
        run.problems += judge(run, w.old, w.new)
    return run


def _ended(w: RampProc) -> Any:
    async def check() -> bool:
        return not any(r["active"] for r in await w.ramps())

    return check


WANTED = {"done": "new", "aborted": "old", "reverted": "old", "rolled-back": "old"}


def judge(run: KillRun, old: str, new: str) -> list[str]:
    """ "No split behind": once the restarted daemon has reconciled (within
    RECONCILE_BOUND_S of serving), the live deployment is one version at 100 % or the
    split an active ramp owns; once the ramp ends (within END_BOUND_S), one version at
    100 %, the one the ramp's end names. An operator's abort is never undone."""
    problems: list[str] = []
    rec, end = run.reconciled, run.end
    if rec is not None and rec.split and not rec.owned:
        problems.append(f"after reconciling, a split no ramp owns: {rec}")
    if end is None:
        return problems
    if end.split:
        problems.append(f"a split left behind: {end}")
    elif end.phase not in WANTED:
        problems.append(f"the ramp ended {end.phase}: {end.why}")
    elif end.live != [(new if WANTED[end.phase] == "new" else old, 100.0)]:
        problems.append(f"the ramp ended {end.phase} but {end.live} is live: {end.why}")
    if run.phase == "abort" and end.phase == "done":
        problems.append(f"the operator's abort was undone by the restart: {end.why}")
    if run.phase == "canary-rollback" and end.phase == "done":
        problems.append(f"a bad version promoted: {end.why}")
    return problems
