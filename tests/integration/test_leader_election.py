"""Leader election on a real PostgreSQL: a session-level advisory lock.

Each election gets its own virtual clock (each stands for one process), so a test
decides exactly when a follower retries; the database's side (a session ending, the
lock going with it) is real and awaited by bounded polling.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest

from tests.helpers import until
from watchdog.clock import FakeClock
from watchdog.errors import StoreError
from watchdog.run.leader import AlwaysLeader, LeaderElection, leadership_for

pytestmark = pytest.mark.integration

RETRY_S = 2.0
POLLS = 500  # x 0.01 s of real time for the database's side of things


class Recorder:
    """Counts an election's callbacks."""

    def __init__(self, election: LeaderElection) -> None:
        self.elected = 0
        self.deposed = 0
        election.on_elected = self.on_elected
        election.on_deposed = self.on_deposed

    async def on_elected(self) -> None:
        self.elected += 1

    async def on_deposed(self) -> None:
        self.deposed += 1


async def _until(condition: Callable[[], bool], what: str) -> None:
    await until(condition, what, polls=POLLS, every_s=0.01)


async def terminate(url: str, pid: int | None) -> None:
    """End a session from the server's side, as a dead client's would end."""
    assert pid is not None
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def holders(url: str, key: int) -> list[int]:
    """Backend pids holding the advisory lock ``key`` (bigint keys: classid, objid)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s AND objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFFFFFF),
        )
        return [row[0] for row in await cursor.fetchall()]


async def until_free(url: str, key: int) -> None:
    """The server has ended the old session and released its lock."""

    async def free() -> bool:
        return not await holders(url, key)

    await until(free, "the lock to be released", polls=POLLS, every_s=0.01)


@asynccontextmanager
async def election(
    url: str, name: str = "test", check_s: float = 0.2
) -> AsyncIterator[tuple[LeaderElection, FakeClock, Recorder]]:
    clock = FakeClock()
    chosen = LeaderElection(url, clock, name=name, retry_s=RETRY_S, check_s=check_s)
    recorder = Recorder(chosen)
    try:
        yield chosen, clock, recorder
    finally:
        await chosen.stop()


async def test_exactly_one_of_two_replicas_leads(postgres_url: str) -> None:
    """Two elections on one database and one name: the first to try leads, the other
    follows, and the lock is held by the leader's session only."""
    async with election(postgres_url) as (a, _, ra), election(postgres_url) as (b, clock_b, rb):
        await a.start()
        await b.start()
        assert (a.is_leader, b.is_leader) == (True, False)
        assert (ra.elected, rb.elected) == (1, 0)
        await clock_b.advance(RETRY_S * 3)  # the follower keeps trying, and keeps failing
        assert not b.is_leader
        assert await holders(postgres_url, a.key) == [a.backend_pid]
        assert a.describe()["leader"] is True
        assert b.describe()["leader"] is False


async def test_a_dead_leaders_lock_passes_to_the_follower_within_one_retry(
    postgres_url: str,
) -> None:
    """The leader's session ends (its process died): the lock goes with it, the old
    leader steps down at once (no clock moved), and the follower leads after one
    retry interval of its clock, not more."""
    async with election(postgres_url) as (a, _, ra), election(postgres_url) as (b, clock_b, rb):
        await a.start()
        await b.start()
        await terminate(postgres_url, a.backend_pid)
        await _until(lambda: not a.is_leader, "the old leader stepped down")
        assert ra.deposed == 1
        await until_free(postgres_url, a.key)
        await clock_b.advance(RETRY_S - 0.001)
        assert not b.is_leader  # not before its retry
        await clock_b.advance(0.001)
        await _until(lambda: b.is_leader, "the follower took over")
        assert rb.elected == 1
        assert await holders(postgres_url, b.key) == [b.backend_pid]


async def test_a_stopped_leader_releases_the_lock(postgres_url: str) -> None:
    """A leader that shuts down gives the lock back: the follower leads at its next
    retry; the stopped one is no longer leader."""
    async with election(postgres_url) as (a, _, _ra), election(postgres_url) as (b, clock_b, _rb):
        await a.start()
        await b.start()
        await a.stop()
        assert not a.is_leader
        assert await holders(postgres_url, a.key) == []  # released at once, not later
        await clock_b.advance(RETRY_S)
        await _until(lambda: b.is_leader, "the follower took over")


async def test_the_lock_key_comes_from_the_name(postgres_url: str) -> None:
    """Two deployments with different names on one database each have a leader."""
    async with (
        election(postgres_url, "blue") as (a, _, _),
        election(postgres_url, "green") as (
            b,
            _,
            _,
        ),
    ):
        await a.start()
        await b.start()
        assert a.key != b.key
        assert (a.is_leader, b.is_leader) == (True, True)


async def test_a_take_over_that_fails_releases_the_lock(postgres_url: str) -> None:
    """If restoring fails on election (the store cannot be read), the replica does
    not sit on the lock: it steps down and another can lead."""
    async with election(postgres_url) as (a, _, _), election(postgres_url) as (b, _, _):

        async def broken() -> None:
            raise StoreError("state store: cannot read open incidents")

        a.on_elected = broken
        await a.start()
        assert not a.is_leader
        assert "take-over failed" in (a.last_error or "")
        await b.start()
        assert b.is_leader  # at its first try: the lock was free


async def test_an_unreachable_database_means_following_and_retrying(
    postgres_url: str,
) -> None:
    """With no database to reach, an election does not lead and says why; it keeps
    retrying on its clock."""
    url = "postgresql://watchdog@127.0.0.1:9/none"
    async with election(url) as (a, clock, recorder):
        a.connect_timeout_s = 1.0
        await a.start()
        assert not a.is_leader
        assert a.last_error
        assert recorder.elected == 0
        assert a.describe()["last_error"]
        await clock.advance(RETRY_S)
        assert not a.is_leader


async def test_sqlite_state_has_no_election() -> None:
    """A file state is one process: always the leader, elected once at start."""
    leadership = leadership_for("state/watchdog.db", FakeClock())
    assert isinstance(leadership, AlwaysLeader)
    called: list[str] = []

    async def elected() -> None:
        called.append("elected")

    leadership.on_elected = elected
    await leadership.start()
    assert leadership.is_leader
    assert called == ["elected"]
    assert isinstance(leadership_for("postgresql://u@h/db", FakeClock()), LeaderElection)


async def test_a_leader_whose_database_stops_answering_steps_down(postgres_url: str) -> None:
    """A partition: the leader's session is alive but silent (its backend is frozen).
    The leader's ping times out and it steps down rather than act unsure of its lock;
    once the session is gone the follower leads."""
    clock = FakeClock()
    a = LeaderElection(postgres_url, clock, name="test", check_s=0.1)
    a.ping_timeout_s = 0.3
    recorder = Recorder(a)
    async with election(postgres_url) as (b, clock_b, _):
        await a.start()
        await b.start()
        pid = a.backend_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            await _until(lambda: not a.is_leader, "the silent leader stepped down")
            assert recorder.deposed == 1
            assert "did not answer" in (a.last_error or "")
        finally:
            os.kill(pid, signal.SIGCONT)
        await a.stop()
        await until_free(postgres_url, a.key)
        await clock_b.advance(RETRY_S)
        await _until(lambda: b.is_leader, "the follower took over")
