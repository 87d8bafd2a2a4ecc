"""Histories, not paths (issue 10): a hypothesis state machine drives the whole world
(tests/model/histories.py) through random sequences of deploys, breaches, flaps,
rollbacks (automatic, manual, dry run), Cloudflare failures, verifications, silences,
restarts, kills between journal steps and time jumps, and checks every invariant after
every move.

Profiles: ``ci`` (CI=true) runs 200 derandomized examples; ``dev`` 40 random ones;
HYPOTHESIS_PROFILE picks another (``long``: 1000). An invariant listed in
``histories.KNOWN_OPEN`` (a defect reported in issue 10) or ``histories.FOUND_OPEN``
(one this model found, pinned in test_found_defects.py) is reported, not asserted;
both are empty now."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.model.histories import FOUND_OPEN, KNOWN_OPEN, Model, Servers, model, servers
from tests.model.profiles import history_settings

# HISTORIES_ENFORCE=no_redeploy,guards asserts listed invariants anyway (to see a
# known defect's shrunk history, or to check a fix before KNOWN_OPEN is emptied).
ENFORCE = frozenset(filter(None, os.environ.get("HISTORIES_ENFORCE", "").split(",")))
# HISTORIES_WAIVED=FILE appends each example's waived violations and history to FILE.
WAIVED_LOG = os.environ.get("HISTORIES_WAIVED", "")


# The journal steps of a rollback's way, as the store sees them.
JOURNAL_STEPS = [
    "save_incident(rolling_back)",
    "journal_intent",
    "journal_outcome",
    "add_event(rollback_finished)",
    "save_incident(verifying)",
    "add_event(verification)",
    "save_incident(escalated)",
    "save_incident(resolved)",
    "mark_healthy",
]

# Where the operator's Ctrl-C can stop ``watchdog rollback`` (after that write).
INTERRUPTS = ["save_incident(rolling_back)", "journal_intent", "journal_outcome"]


class Shared:
    """One event loop and one pair of loopback servers for every example of a run."""

    loop: asyncio.AbstractEventLoop | None = None
    servers: Servers | None = None


@pytest.fixture(autouse=True, scope="module")
def _shared() -> Iterator[None]:
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    Shared.loop = loop
    Shared.servers = loop.run_until_complete(stack.enter_async_context(servers()))
    try:
        yield
    finally:
        Shared.loop = Shared.servers = None
        loop.run_until_complete(stack.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class Histories(RuleBasedStateMachine):
    """One world per example, on the shared loop and servers."""

    def __init__(self) -> None:
        super().__init__()
        assert Shared.loop is not None
        assert Shared.servers is not None
        self.loop = Shared.loop
        self.servers = Shared.servers
        self.stack = contextlib.AsyncExitStack()
        self.m: Model | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def model(self) -> Model:
        assert self.m is not None
        return self.m

    @initialize(severity=st.sampled_from(["critical", "critical", "high"]))
    def build(self, severity: str) -> None:
        structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
        known = (frozenset(KNOWN_OPEN) | frozenset(FOUND_OPEN)) - ENFORCE
        self.m = self.run(self.stack.enter_async_context(model(self.servers, severity, known)))
        self.model.log.append(f"0. error-rate is {severity}")

    def teardown(self) -> None:
        if WAIVED_LOG and self.m is not None and self.m.waived:
            with open(WAIVED_LOG, "a", encoding="utf-8") as out:
                for violation in self.m.waived:
                    out.write(f"{violation}\n")
                out.write("history:\n" + "\n".join(self.m.log) + "\n\n")
        self.run(self.stack.aclose())

    def move(self, name: str, coro: Any) -> None:
        self.run(coro)
        self.run(self.model.check(name))

    # --- a person ----------------------------------------------------------------------

    @rule(gradual=st.sampled_from([None, None, 10.0, 50.0]))
    def deploy_worker(self, gradual: float | None) -> None:
        self.move("deploy worker", self.model.deploy_worker(gradual))

    @rule()
    def deploy_pages(self) -> None:
        self.move("deploy pages", self.model.deploy_pages())

    # --- traffic -----------------------------------------------------------------------

    @rule(
        errors=st.sampled_from(["good", "good", "mild", "bad", "bad"]),
        slow=st.booleans(),
        minutes=st.sampled_from([2, 6, 6, 10]),
    )
    def traffic(self, errors: str, slow: bool, minutes: int) -> None:
        p95 = 7.5 if slow else 0.4
        self.move("traffic", self.model.traffic(errors, p95, minutes))

    @rule(signal=st.sampled_from(["error_rate", "p95"]))
    def flap(self, signal: str) -> None:
        self.move("flap", self.model.flap(signal))

    @rule(seconds=st.sampled_from([120.0, 600.0, 1800.0, 3600.0]))
    def advance(self, seconds: float) -> None:
        self.move("time jump", self.model.advance(seconds))

    # --- the operator ------------------------------------------------------------------

    @rule(
        which=st.sampled_from([["worker"], ["frontend"], ["worker", "frontend"]]),
        dry=st.booleans(),
        interrupt=st.sampled_from(["", "", "", *INTERRUPTS]),
    )
    def manual_rollback(self, which: list[str], dry: bool, interrupt: str) -> None:
        self.move("manual rollback", self.model.manual_rollback(which, dry, interrupt))

    @rule(
        which=st.sampled_from(["worker", "frontend"]),
        kind=st.sampled_from(["status", "rate_limit", "refuse"]),
        times=st.sampled_from([1, 2, 10]),
    )
    def cloudflare_fails(self, which: str, kind: str, times: int) -> None:
        self.move("cloudflare fails", self.model.cloudflare_fails(which, kind, times))

    @rule(scope=st.sampled_from(["all", "worker"]))
    def silence(self, scope: str) -> None:
        self.move("silence", self.model.silence(scope))

    @rule()
    def unsilence(self) -> None:
        self.move("unsilence", self.model.unsilence())

    # --- the daemon --------------------------------------------------------------------

    @rule(dry_run=st.sampled_from([None, None, True, False]), down=st.sampled_from([0.0, 180.0]))
    def restart(self, dry_run: bool | None, down: float) -> None:
        self.move("restart", self.model.restart(dry_run, down))

    @precondition(lambda self: self.m is not None and not self.m.down)
    @precondition(lambda self: self.m is not None and self.m.store.countdown is None)
    @rule(writes=st.integers(1, 30), after_write=st.booleans(), down=st.sampled_from([0.0, 180.0]))
    def arm_kill(self, writes: int, after_write: bool, down: float) -> None:
        self.model.arm_kill(writes, after_write, down)

    @precondition(lambda self: self.m is not None and not self.m.down)
    @precondition(lambda self: self.m is not None and self.m.store.countdown is None)
    @rule(step=st.sampled_from(JOURNAL_STEPS), after_write=st.booleans(), stay_down=st.booleans())
    def arm_kill_at(self, step: str, after_write: bool, stay_down: bool) -> None:
        """kill -9 at the next write of one journal step (before or after it lands);
        back at once, or only at the next restart move."""
        self.model.arm_kill(1, after_write, match=step, stay_down=stay_down)

    @invariant()
    def nothing_in_flight(self) -> None:
        if self.m is not None:
            assert not self.m.store.dead


Histories.TestCase.settings = history_settings("", ci=200, dev=40, long=1000, steps=14)
test_histories = Histories.TestCase
