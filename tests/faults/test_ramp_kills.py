"""Issue 16's goal "a killed daemon during a ramp leaves no split behind", in 100
seeded kills.

Why in-process: a kill -9 can land between any two instructions, but what a restart
finds depends only on which of the ramp's durable writes landed (the store's commits)
and which of its Cloudflare calls were applied. So each run dies, as kill -9 would
(``Killed``, a BaseException no boundary catches, and nothing after it runs), just
before or just after its N-th store write, N drawn from the seed across the whole
ramp: a step journalled but never posted, posted but its outcome never journalled, the
outcome journalled but the ramp's record not, and so on. A third of the runs die
again, in the restarted process, while it reconciles. Each run is then restarted on
the same store file and runs to its end on virtual time; after it, the live
deployment must be 100 % of one version and the ramp's record must say why. A run
costs about a tenth of a second, where a subprocess per kill costs a second or more;
tests/integration/test_kill_restart.py keeps the real SIGKILL of the daemon process.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import until
from tests.model.histories import SCRATCH, KillableStore, Killed
from tests.scenarios.ramp_support import RampWorld, ramp_world
from watchdog.store.base import RampRecord

KILLS = 100
STEPS = "10%,50%,100%"
SOAK_S = 5.0
WRITES_IN_A_RAMP = 10  # the store writes of a whole ramp of three steps here: 1, then 3 a step


class RampKillableStore(KillableStore):
    async def save_ramp(self, ramp: RampRecord) -> None:
        await self._write(f"save_ramp({ramp.phase})", lambda: KillableStore.save_ramp(self, ramp))


async def _run_until_killed_or_ended(w: RampWorld) -> str | None:
    """Start the ramp and let it run until the store kills the process or it ends."""
    store = w.store
    assert isinstance(store, RampKillableStore)
    try:
        ramp = await w.ramps.start(None, w.new, STEPS, SOAK_S, "ana")
    except Killed:
        return None  # died saving the ramp: maybe saved, maybe not

    def over() -> bool:
        return store.dead or not ramp.active

    await until(over, "a kill or the ramp's end", polls=4000, every_s=0.002)
    return ramp.id


async def _restart_until_alive(w: RampWorld, rng: random.Random) -> None:
    """Restart; a third of the time the restarted process dies too, while reconciling."""
    for attempt in range(3):
        store_dies = attempt == 0 and rng.random() < 1 / 3
        try:
            writes, after = rng.randint(1, 4), rng.random() < 0.5
            await w.restart(_armer(writes, after) if store_dies else None)
            if store_dies:
                store = w.store
                assert isinstance(store, RampKillableStore)
                await until(
                    _dead_or_ended(w, store), "a second kill or the end", polls=4000, every_s=0.002
                )
                if store.dead:
                    continue
            return
        except Killed:
            continue
    await w.restart()


def _dead_or_ended(w: RampWorld, store: RampKillableStore) -> Callable[[], bool]:
    return lambda: store.dead or not w.ramps.active


def _armer(writes: int, after: bool) -> Any:
    def arm(store: Any) -> None:
        store.arm(writes, after_write=after)

    return arm


async def _one(tmp_path: Path, seed: int, http: httpx.AsyncClient) -> tuple[str, str]:
    rng = random.Random(seed)
    async with ramp_world(
        tmp_path, store_type=RampKillableStore, idle_s=0.0005, traffic_every_s=5.0, http=http
    ) as w:
        store = w.store
        assert isinstance(store, RampKillableStore)
        store.arm(rng.randint(1, WRITES_IN_A_RAMP), after_write=rng.random() < 0.5)
        await _run_until_killed_or_ended(w)
        died = store.died_at or "not killed (the ramp ended first)"
        await _restart_until_alive(w, rng)
        await until(lambda: not w.ramps.active, "every ramp ended", polls=6000, every_s=0.002)
        return _judge(w, await w.store.ramps(), await _unfinished(w), seed, died)


async def _unfinished(w: RampWorld) -> list[Any]:
    return [a for a in await w.store.unfinished_actions() if a.kind.startswith("ramp-")]


def _judge(
    w: RampWorld, ramps: list[RampRecord], unfinished: list[Any], seed: int, died: str
) -> tuple[str, str]:
    live = w.live()
    where = f"seed {seed} ({died}): live {live}, ramps {[(r.phase, r.why) for r in ramps]}"
    assert len(live) == 1, f"a split left behind: {where}"
    assert live[0][1] == 100.0, where
    assert not unfinished, f"journal left at intent: {where}"
    if not ramps:  # died before the ramp was saved: nothing was ever sent
        assert live == [(w.old, 100.0)], where
        return "never saved", died
    (ramp,) = ramps
    assert not ramp.active, where
    assert ramp.why, where
    expected = {"done": w.new, "reverted": w.old, "rolled-back": w.old, "aborted": w.old}
    assert ramp.phase in expected, where
    assert live == [(expected[ramp.phase], 100.0)], where
    return ramp.phase, died


async def test_a_killed_daemon_leaves_no_split_behind_in_100_kills(tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()
    points: set[str] = set()
    # State files in memory where there is /dev/shm: no fsync cost, as the model's runs.
    base = Path(tempfile.mkdtemp(dir=SCRATCH)) if SCRATCH else tmp_path
    try:
        async with httpx.AsyncClient() as http:
            for seed in range(KILLS):
                (base / str(seed)).mkdir()
                phase, died = await _one(base / str(seed), seed, http)
                outcomes[phase] += 1
                points.add(died)
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)
    # The kills landed all over the ramp, not in one place.
    assert len(points) >= 15, sorted(points)
    assert outcomes["done"] >= 50, outcomes
