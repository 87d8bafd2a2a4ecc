"""Which replica acts. With SQLite there is one process and no election
(``AlwaysLeader``). With PostgreSQL every replica samples, and one leads by holding a
session-level advisory lock (``LeaderElection``):

- the lock lives on a dedicated connection held for the process lifetime; its key is
  derived from a configurable name, so unrelated deployments on one database do not
  contend;
- a follower tries ``pg_try_advisory_lock`` every ``retry_s`` seconds (injected clock);
- when the leader dies, the kernel closes its socket, PostgreSQL ends the session and
  the lock goes with it: a follower takes over within ``retry_s`` (plus a connect);
- the leader waits on its connection's socket between pings, so a connection closed
  by the server (restart, failover, ``pg_terminate_backend``) is noticed at once, and
  a silent one (a partition) within ``check_s + ping_timeout_s``: it steps down then,
  before the server's keepalives (set short on this session) drop the session and free
  the lock for another replica. Acting needs the store anyway: a leader cut off from
  the database cannot journal an intent, so it cannot act.

psycopg is imported only when an election is built.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, LiteralString, Protocol

import structlog

from watchdog.clock import Clock
from watchdog.store import is_postgres
from watchdog.units import iso

if TYPE_CHECKING:
    import psycopg

log = structlog.get_logger("watchdog.run.leader")

Callback = Callable[[], Awaitable[None]]

# Server-side keepalives for the leader's session: a leader whose host vanished is
# dropped (and its lock freed) in about idle + interval * count seconds.
SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 10000",
    "SET idle_session_timeout = 0",  # the lock must not be dropped for idling
)


class Leadership(Protocol):
    """Tells whether this replica may act, and calls back when that changes."""

    on_elected: Callback | None
    on_deposed: Callback | None

    @property
    def is_leader(self) -> bool: ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def describe(self) -> dict[str, Any]: ...


class AlwaysLeader:
    """A single replica (SQLite): always the leader, elected once at start."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.on_elected: Callback | None = None
        self.on_deposed: Callback | None = None
        self.since: float | None = None

    @property
    def is_leader(self) -> bool:
        return True

    async def start(self) -> None:
        self.since = self.clock.now()
        if self.on_elected is not None:
            await self.on_elected()

    async def stop(self) -> None:
        """Nothing to release."""

    def describe(self) -> dict[str, Any]:
        return {
            "leader": True,
            "election": "none: a single replica (SQLite state)",
            "since": iso(self.since) if self.since is not None else None,
        }


class LeaderElection:
    """A session-level advisory lock on a dedicated PostgreSQL connection."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        name: str = "rollback-watchdog",
        retry_s: float = 5.0,
        check_s: float = 1.0,
        ping_timeout_s: float = 2.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        from watchdog.store.postgres import redact
        from watchdog.store.postgres_migrate import advisory_key

        self.url = url
        self.where = redact(url)
        self.clock = clock
        self.name = name
        self.key = advisory_key(f"rollback-watchdog/leader/{name}")
        self.retry_s = retry_s
        self.check_s = check_s
        self.ping_timeout_s = ping_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.on_elected: Callback | None = None
        self.on_deposed: Callback | None = None
        self.since: float | None = None
        self.terms = 0  # how many times this replica was elected
        self.last_error: str | None = None
        self._leader = False
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend holding (or trying for) the lock."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    def describe(self) -> dict[str, Any]:
        return {
            "leader": self._leader,
            "election": "postgresql advisory lock",
            "name": self.name,
            "lock_key": self.key,
            "retry_s": self.retry_s,
            "since": iso(self.since) if self._leader and self.since is not None else None,
            "terms": self.terms,
            "last_error": self.last_error,
        }

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Try once now (a lone replica leads from its first second), then keep trying."""
        if await self._attempt():
            await self._elected()
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Stop electing and release the lock (closing the session releases it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._leader:
            await self._unlock()
            log.info("leadership released", name=self.name)
        self._leader = False
        await self._drop()

    # --- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if self._leader:
                why = await self._hold()
                await self._step_down(why)
            await self.clock.sleep(self.retry_s)
            if await self._attempt():
                await self._elected()

    async def _attempt(self) -> bool:
        """Connect if needed and try the lock once; True when it is ours."""
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = await self._connect()
            row = await self._query(self._conn, "SELECT pg_try_advisory_lock(%s)", (self.key,))
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}".strip()
            log.warning("leader election: database unreachable", error=self.last_error)
            await self._drop()
            return False
        self.last_error = None
        return bool(row is not None and row[0])

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        import psycopg

        async with asyncio.timeout(self.connect_timeout_s + 1.0):
            conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout_s)),
                application_name=f"rollback-watchdog leader election ({self.name})",
                # Client-side keepalives: notice a dead server while idle.
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
        for statement in SESSION_SETTINGS:
            # An older server without one of these settings keeps its default.
            with contextlib.suppress(psycopg.errors.UndefinedObject):
                await self._query(conn, statement)
        return conn

    async def _elected(self) -> None:
        self._leader = True
        self.since = self.clock.now()
        self.terms += 1
        log.warning("elected leader", name=self.name, backend_pid=self.backend_pid, term=self.terms)
        if self.on_elected is None:
            return
        try:
            await self.on_elected()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # boundary: a failed take-over must release the lock
            log.exception("could not take over as leader; releasing the lock")
            await self._step_down(f"take-over failed: {exc}")

    async def _hold(self) -> str:
        """Wait while the lock is ours; return why it no longer is."""
        import psycopg

        conn = self._conn
        if conn is None or conn.closed:
            return "the lock connection is gone"
        while True:
            try:
                # Waits on the socket: a connection the server closes ends this at once.
                async for _ in conn.notifies(timeout=self.check_s):
                    pass
                await self._query(conn, "SELECT 1")
            except TimeoutError as exc:
                return str(exc)
            except (psycopg.Error, OSError) as exc:
                return f"lost the database connection: {exc}".strip()

    async def _step_down(self, why: str) -> None:
        """Stop acting at once, then let the lock go with the connection."""
        was = self._leader
        self._leader = False
        self.last_error = why
        if was:
            log.error("stepped down as leader", name=self.name, why=why)
            if self.on_deposed is not None:
                await self.on_deposed()
        # Only now may another replica take the lock (if the session still had it).
        await self._drop()

    async def _unlock(self) -> None:
        """Release now rather than when the server notices the session is gone."""
        import psycopg

        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            await self._query(conn, "SELECT pg_advisory_unlock(%s)", (self.key,))

    async def _query(
        self,
        conn: psycopg.AsyncConnection[tuple[Any, ...]],
        sql: LiteralString,
        params: tuple[Any, ...] = (),
    ) -> tuple[Any, ...] | None:
        """One row of ``sql``, or ``TimeoutError`` after ``ping_timeout_s``. Past the
        deadline the connection is closed on the spot: cancelling psycopg's query would
        first ask the silent server to cancel it, for up to ten seconds, and a leader
        must not wait that long to know it is cut off."""

        async def run() -> tuple[Any, ...] | None:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone() if cursor.description is not None else None

        task = asyncio.create_task(run())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.ping_timeout_s)
        except asyncio.CancelledError:
            await self._abandon(conn, task)
            raise
        if task in done:
            return task.result()
        await self._abandon(conn, task)
        raise TimeoutError(f"the database did not answer within {self.ping_timeout_s:g}s")

    @staticmethod
    async def _abandon(
        conn: psycopg.AsyncConnection[tuple[Any, ...]], task: asyncio.Task[Any]
    ) -> None:
        await conn.close()  # no lock taken: the socket goes, the query with it
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        if task.done() and not task.cancelled():
            task.exception()  # consumed: the error is the closed connection

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()


def leadership_for(
    state: str, clock: Clock, name: str = "rollback-watchdog", retry_s: float = 5.0
) -> Leadership:
    """An election when the state is shared (PostgreSQL); otherwise always the leader."""
    if is_postgres(state):
        return LeaderElection(state, clock, name=name, retry_s=retry_s)
    return AlwaysLeader(clock)
