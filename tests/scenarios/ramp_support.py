"""A ramp's world on virtual time: the local Cloudflare API on a real loopback socket,
a canary rule in a real engine fed per-version counts of whatever the fake serves
(the deploy watch tells the engine the split, as in the daemon), the SQLite store, and
the daemon's ``Ramps``. A "restart" drops the ramps and the engine (the process's
memory) and keeps the store's file and Cloudflare (the outside world)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from tests.factories import ruleset
from tests.helpers import T0, CloudflareStack, InstantClock, cloudflare_stack, until
from tests.world import BusyStore
from watchdog.actions.cloudflare_api import CloudflareClient
from watchdog.actions.cloudflare_worker import WorkerDeployment, WorkerTarget
from watchdog.clock import AutoClock
from watchdog.core.engine import Engine
from watchdog.demo.fakes.cloudflare import API_PREFIX, FakeCloudflare
from watchdog.http.server import serve
from watchdog.model import ActionResult, Sample, SampleKind, VersionCounts
from watchdog.rules.load import RuleSet
from watchdog.rules.response import WorkerTargetSpec
from watchdog.run.deploys import split_of
from watchdog.run.ramp import Ramps
from watchdog.run.ramp_restore import restore
from watchdog.run.ramp_steps import canary_gate
from watchdog.store.base import RampRecord

CANARY = """
version: 1
sources:
  cf: {type: cloudflare, script: api, mode: versions}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: canary, signal: cf.versions, canary: {min_effect: 3x, confidence: 99%},
     severity: critical, rollback: [worker]}
"""
TRAFFIC_EVERY_S = 10.0  # one window of per-version counts (the analytics' minute, faster)
REQUESTS = 600.0  # per window, split by the live percentages


class BusyWorker(WorkerTarget):
    """The Worker target holding virtual time still while it talks to Cloudflare (a
    real loopback exchange takes real milliseconds, in which no virtual second may
    pass: a ramp's tick is instant in virtual time, as it is nearly so in real time)."""

    clock: AutoClock

    async def deployments(self, retry: bool = True) -> list[WorkerDeployment]:
        with self.clock.busy():
            return await super().deployments(retry)

    async def set_split(
        self, expect: str, versions: Sequence[tuple[str, float]], message: str
    ) -> ActionResult:
        with self.clock.busy():
            return await super().set_split(expect, versions, message)


@dataclass
class RampWorld:
    clock: AutoClock
    stack: CloudflareStack
    rules: RuleSet
    path: Path
    old: str
    new: str
    store: BusyStore
    engine: Engine
    ramps: Ramps
    error_rates: dict[str, float] = field(default_factory=dict)  # by version; else 0.5 %
    traffic_every_s: float = TRAFFIC_EVERY_S
    delay_s: float = 0.0  # the analytics' delay: each window is complete up to now - delay
    store_type: Callable[[Path, AutoClock], BusyStore] = BusyStore

    @property
    def fake(self) -> FakeCloudflare:
        return self.stack.fake

    def live(self) -> list[tuple[str, float]]:
        return self.fake.live_versions("api")

    def target(self) -> BusyWorker:
        spec = WorkerTargetSpec(type="cloudflare-worker", script="api")
        target = BusyWorker("worker", spec, self.fake.account_id, self.stack.client)
        target.clock = self.clock
        return target

    def new_ramps(self) -> Ramps:
        target = self.target()
        ramps = Ramps(
            self.store,
            self.clock,
            lambda: {"worker": target},
            lambda name, new: canary_gate(self.engine, name, new),
            tick_s=5.0,
        )
        ramps.leading = True
        return ramps

    async def traffic(self) -> None:
        """The outside world: every window, counts per live version into the current
        engine, after the deploy watch's read of the split."""
        target = self.target()
        while True:
            await self.clock.sleep(self.traffic_every_s)
            deployments = await target.deployments()
            self.engine.split("worker", split_of("worker", deployments))
            now = self.clock.now()
            counts = tuple(
                VersionCounts(
                    v, REQUESTS * p / 100 * self.error_rates.get(v, 0.005), REQUESTS * p / 100
                )
                for v, p in deployments[0].versions
            )
            fresh = now - self.delay_s
            self.engine.observe(
                "cf.versions", Sample(now, SampleKind.VALUE, versions=counts, fresh_to=fresh)
            )

    async def restart(self, arm: Callable[[BusyStore], None] | None = None) -> None:
        """The process died: its ramps' tasks and memory are gone; a new one starts on
        the same store file and reconciles."""
        tasks = list(self.ramps._tasks.values())
        for task in tasks:  # dead with the process, whatever they were doing
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.close()
        self.store = self.store_type(self.path, self.clock)
        await self.store.open()
        if arm is not None:
            arm(self.store)
        self.engine = Engine(self.rules)
        self.ramps = self.new_ramps()
        await restore(self.ramps)

    async def ramp(self, ramp_id: str) -> RampRecord:
        (found,) = [r for r in await self.store.ramps() if r.id == ramp_id]
        return found

    async def until_phase(self, ramp_id: str, *phases: str, polls: int = 2000) -> RampRecord:
        async def reached() -> bool:
            return (await self.ramp(ramp_id)).phase in phases

        await until(reached, f"ramp {ramp_id} {phases}", polls=polls, every_s=0.005)
        return await self.ramp(ramp_id)

    async def until_step(self, ramp_id: str, step: int) -> RampRecord:
        async def reached() -> bool:
            return (await self.ramp(ramp_id)).step >= step

        await until(reached, f"ramp {ramp_id} at step {step}", polls=2000, every_s=0.005)
        return await self.ramp(ramp_id)

    async def until_live(self, wanted: list[tuple[str, float]], polls: int = 2000) -> None:
        await until(
            lambda: sorted(self.live()) == sorted(wanted),
            f"live {wanted}",
            polls=polls,
            every_s=0.005,
        )


@contextlib.asynccontextmanager
async def ramp_world(
    tmp_path: Path,
    store_type: Callable[[Path, AutoClock], BusyStore] = BusyStore,
    idle_s: float = 0.002,
    traffic_every_s: float = TRAFFIC_EVERY_S,
    http: httpx.AsyncClient | None = None,
    delay_s: float = 0.0,
) -> AsyncIterator[RampWorld]:
    """``http``: a client to share between worlds (a new one loads the CA bundle: a
    tenth of a second, which a hundred kill runs need not pay a hundred times)."""
    clock = AutoClock(T0, idle_s=idle_s)
    fake = FakeCloudflare(clock=clock)
    old = fake.publish("api", "v1", created_on=T0 - 86400)
    new = fake.upload_version("api", "v2", created_on=T0 - 60)
    rules = ruleset(tmp_path, "", base=CANARY)
    path = tmp_path / "state.db"
    store = store_type(path, clock)
    await store.open()
    async with _stack(fake, http) as stack:
        world = RampWorld(clock, stack, rules, path, old, new, store, Engine(rules), None)  # type: ignore[arg-type]
        world.store_type, world.traffic_every_s = store_type, traffic_every_s
        world.delay_s = delay_s
        world.ramps = world.new_ramps()
        tasks = [asyncio.create_task(clock.run()), asyncio.create_task(world.traffic())]
        try:
            yield world
        finally:
            await world.ramps.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await world.store.close()


@contextlib.asynccontextmanager
async def _stack(
    fake: FakeCloudflare, http: httpx.AsyncClient | None
) -> AsyncIterator[CloudflareStack]:
    if http is None:
        async with cloudflare_stack(fake) as stack:
            yield stack
        return
    clock = InstantClock()
    async with serve(fake.router) as server:
        url = server.url + API_PREFIX
        client = CloudflareClient(http, url, SecretStr(fake.token), clock)
        yield CloudflareStack(fake, server, http, client, clock)
