"""Virtual-time soak: a month of noisy healthy traffic through the live code path, then
one real regression.

The whole ``Runtime`` runs (sampling loops, engine, incident manager and its ticker,
playbook, SQLite store) on a ``FakeClock``, against the local Cloudflare API and the
notification receivers on loopback (``tests/world.py``); only the source is
generated: error rate and p95 follow a daily cycle with noise, short spikes over the
threshold that last less than ``for:``, and the odd failed scrape, all seeded.
The generated app serves the bad version's errors only while Cloudflare's live
Worker is the bad deploy, so a rollback heals it, as in production.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from tests.world import World, world
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import SourceSpec
from watchdog.sources.base import Source, SourceDeps

DAY = 86400.0
DAYS = 30
# The month is sampled every 60 s (the default is 15 s): 43,200 rounds instead of
# 172,800 keep this test at about ten seconds in CI. The rules' ``for: 5m`` still spans
# five samples, so a spike of up to four samples over the threshold never fires.
INTERVAL = 60.0
ERROR_LIMIT = 0.05  # the rules: error rate above 5 % for 5m, p95 above 5 s for 5m
P95_LIMIT = 5.0


class GeneratedApp:
    """Error rate and p95 of a healthy app with a daily cycle and noise; while
    ``bad_version`` is live on Cloudflare, the regression's error rate instead."""

    def __init__(self, w: World, seed: int = 30) -> None:
        self.world = w
        self.rng = random.Random(seed)
        self.bad_version: str | None = None
        self.spike_left = 0  # samples left in the current spike
        self.calm = 0  # samples since the last spike: spikes never run together
        self.samples = 0
        self.max_healthy_run = 0  # the longest run of breaching samples while healthy
        self._run = 0

    def regressed(self) -> bool:
        live = self.world.worker_live()
        return self.bad_version is not None and bool(live) and live[0][0] == self.bad_version

    def healthy_values(self, t: float) -> tuple[float, float, float]:
        rng = self.rng
        daily = 0.5 + 0.5 * math.sin(2 * math.pi * (t % DAY) / DAY)  # 0..1, busiest midday
        requests = 400 + 3600 * daily + rng.gauss(0, 80)
        error = max(0.0, 0.001 + 0.002 * daily + rng.gauss(0, 0.001))
        p95 = max(0.05, 0.35 + 1.2 * daily + rng.gauss(0, 0.25))
        if self.spike_left == 0 and self.calm >= 10 and rng.random() < 1 / 720:
            self.spike_left = rng.randint(1, 4)  # about twice a day, at most 4 samples
        if self.spike_left:
            self.spike_left -= 1
            self.calm = 0
            error = rng.uniform(0.06, 0.2)
            p95 = rng.uniform(5.5, 9.0)
        else:
            self.calm += 1
        return error, p95, requests

    def values(self, t: float) -> tuple[float, float, float]:
        if self.regressed():
            return 0.18 + self.rng.gauss(0, 0.01), 0.9, 3000.0
        error, p95, requests = self.healthy_values(t)
        breaching = error > ERROR_LIMIT or p95 > P95_LIMIT
        self._run = self._run + 1 if breaching else 0
        self.max_healthy_run = max(self.max_healthy_run, self._run)
        return error, p95, requests


class GeneratedSource:
    """The ``prom`` source of the world's rules, answered from ``GeneratedApp``."""

    def __init__(self, name: str, app: GeneratedApp) -> None:
        self.name = name
        self.app = app

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        app = self.app
        app.samples += 1
        if app.bad_version is None and app.rng.random() < 1 / 2000:  # a failed scrape
            return {s.name: Sample.error(now, "connection refused") for s in signals}
        error, p95, requests = app.values(now)
        by_name = {"error_rate": error, "p95": p95}
        return {s.name: Sample.of(now, by_name[s.name], requests) for s in signals}

    async def aclose(self) -> None:
        return None


async def run_for(w: World, seconds: float, chunk: float) -> None:
    """Advance virtual time in chunks, letting real loopback I/O finish in between."""
    end = w.now + seconds
    while w.now < end:
        await w.clock.advance(min(chunk, end - w.now))
        await w.settle()


async def test_a_month_of_healthy_noise_then_one_regression(tmp_path: Path) -> None:
    """30 simulated days of noisy healthy traffic (daily cycle, spikes shorter than
    ``for:``, failed scrapes) through the live Runtime: no incident, no rollback. Then a
    bad deploy: exactly one Worker and one Pages rollback, verified and resolved."""
    # The rules-file watcher runs too, every virtual hour rather than every 10 s.
    async with world(tmp_path, env={"WATCHDOG_RULES_WATCH_INTERVAL": "3600"}) as w:
        app = GeneratedApp(w)

        def factory(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
            return GeneratedSource(name, app)

        runtime = w.runtime
        runtime.watchdog.source_factory = factory
        runtime.tick_s = INTERVAL  # no incident is open all month: nothing is due sooner
        _set_interval(w, INTERVAL)
        assert await runtime.reload()
        await runtime.start()
        assert runtime.watch_rules_files
        try:
            await run_for(w, DAYS * DAY, DAY)

            assert app.samples >= DAYS * DAY / INTERVAL
            assert 1 <= app.max_healthy_run < 5, "the month should hold short spikes only"
            assert list(runtime.watchdog.decisions) == []  # no fire, no blind alarm
            assert w.worker_rollbacks() == 0
            assert w.pages_rollbacks() == 0
            assert await runtime.store.recent_incidents(5) == []

            # The regression: a new deploy to the Worker and Pages, and its errors.
            runtime.tick_s = 1.0
            version = w.cloudflare.upload_version("api", "release v4")
            w.cloudflare.deploy("api", [(version, 100.0)], "deploy v4")
            w.cloudflare.add_pages_deployment("site", commit_message="p4")
            app.bad_version = version
            await run_for(w, 30 * 60, INTERVAL)

            assert w.worker_rollbacks() == 1
            assert w.pages_rollbacks() == 1
            assert len(await runtime.store.recent_incidents(5)) == 1
            kinds = [e.kind for e in await w.events()]
            assert kinds.count("rollback_finished") == 1
            assert "verification" in kinds
            assert "escalated" not in kinds, kinds
            assert kinds[-1] == "resolved", kinds
        finally:
            await runtime.stop()


def _set_interval(w: World, seconds: float) -> None:
    """Rewrite the world's rules with a coarser sampling interval (then reload)."""
    path = Path(w.runtime.settings.rules_paths[0])
    text = path.read_text()
    assert "interval: 15s" in text
    path.write_text(text.replace("interval: 15s", f"interval: {seconds:g}s", 1))
