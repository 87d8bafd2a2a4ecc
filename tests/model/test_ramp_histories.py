"""Histories, not paths, for the gradual-deployment ramp (issue 16): a hypothesis state
machine interleaves ramps of good and bad versions, virtual time (traffic, the canary's
judgement and rollback, the ramp's ticks), the operator's hold, promote and abort, a
person's deploys, Cloudflare failing deployment POSTs (before or after applying) and
daemon restarts (tests/model/ramp_world.py), and checks every invariant after every
move.

Invariants (tests/model/ramp_world.py, ``RampModel.check``): no_redeploy (no watchdog
deployment serves a version the ledger marks rolled away from), abort_final (an aborted
ramp's version never live again by that ramp), compare_and_swap (a ramp never posts
over a person's deployment), no_promote_regressed (no ramp raises the share of a
version after the canary judged it a regression), no_split_left (every ramp ended and
the last deployment the watchdog's: one version at 100 %).

Profiles as in test_histories.py: ``ci`` (CI=true) runs 40 derandomized examples of up
to 10 steps after a first ramp (about 25 s alone on a loaded 2-core machine); ``dev``
20 random ones; ``long`` 500. The first ramp and the two advance rules bias histories
toward what needs time: a canary's rollback, a soak's end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from tests.model.profiles import history_settings
from tests.model.ramp_world import BAD as BAD_RATE
from tests.model.ramp_world import RampModel, ramp_model

BAD = st.sampled_from([True, False])  # the first is what derandomized runs try most
STEPS = st.sampled_from(["10%,50%,100%", "25%,100%", "100%"])
SOAKS = st.sampled_from([30.0, 60.0])
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


class Shared:
    """One event loop and one HTTP client (its CA bundle loaded once) for every example."""

    loop: asyncio.AbstractEventLoop | None = None
    http: httpx.AsyncClient | None = None


@pytest.fixture(autouse=True, scope="module")
def _shared() -> Iterator[None]:
    loop = asyncio.new_event_loop()
    Shared.loop, Shared.http = loop, httpx.AsyncClient()
    try:
        yield
    finally:
        loop.run_until_complete(Shared.http.aclose())
        Shared.loop = Shared.http = None
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class RampHistories(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert Shared.loop is not None
        self.loop = Shared.loop
        self.stack = contextlib.AsyncExitStack()
        self.tmp = Path(tempfile.mkdtemp(dir=SCRATCH))
        self.m: RampModel | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def model(self) -> RampModel:
        assert self.m is not None
        return self.m

    @initialize(bad=BAD, steps=STEPS, soak=SOAKS)
    def build(self, bad: bool, steps: str, soak: float) -> None:
        """Every history starts with a ramp (most of the interesting ones need one)."""
        structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
        assert Shared.http is not None
        self.m = self.run(self.stack.enter_async_context(ramp_model(self.tmp, Shared.http)))
        self.move(self.model.start(bad, False, steps, soak))

    def teardown(self) -> None:
        if self.m is not None:  # what the histories reached (--hypothesis-show-statistics)
            for ramp in self.run(self.m.w.store.ramps()):
                kind = "bad" if self.m.w.error_rates.get(ramp.new) == BAD_RATE else "good"
                event(f"a {kind} ramp {','.join(f'{p:g}' for p in ramp.steps)} is {ramp.phase}")
            event(f"canary rollbacks: {len(self.m.canary_made)}")
            for violation in self.m.waived:
                event(f"waived {violation.split(':')[0]}")
        self.run(self.stack.aclose())
        shutil.rmtree(self.tmp, ignore_errors=True)

    def move(self, coro: Any) -> None:
        self.run(coro)
        self.run(self.model.check())

    @rule(
        bad=BAD,
        again=st.booleans(),
        steps=STEPS,
        soak=SOAKS,
    )
    def start(self, bad: bool, again: bool, steps: str, soak: float) -> None:
        self.move(self.model.start(bad, again, steps, soak))

    @rule(seconds=st.sampled_from([10.0, 30.0, 60.0]))
    def advance(self, seconds: float) -> None:
        self.move(self.model.advance(seconds))

    @rule(seconds=st.sampled_from([120.0, 240.0]))
    def advance_long(self, seconds: float) -> None:
        """Twice the chance that time passes: the canary and the soak need it."""
        self.move(self.model.advance(seconds))

    @rule(verb=st.sampled_from(["hold", "promote", "abort"]))
    def operator(self, verb: str) -> None:
        self.move(self.model.verb(verb))

    @rule(split=st.booleans())
    def person_deploys(self, split: bool) -> None:
        self.move(self.model.person_deploys(split))

    @rule(after_apply=st.booleans(), times=st.sampled_from([1, 2, 5]))
    def cloudflare_fails(self, after_apply: bool, times: int) -> None:
        self.move(self.model.fault(after_apply, times))

    @rule()
    def restart(self) -> None:
        self.move(self.model.restart())


RampHistories.TestCase.settings = history_settings("ramp-", ci=40, dev=20, long=500, steps=10)
test_ramp_histories = RampHistories.TestCase
