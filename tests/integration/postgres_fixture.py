"""A real PostgreSQL on loopback for tests, from the distribution's binaries.

``postgres_cluster`` (one per test session): ``initdb`` into a fresh directory, then
``postgres -D dir -k dir -p PORT -c listen_addresses=127.0.0.1``, polled (a bounded
number of times) until it accepts connections, stopped at the end. PostgreSQL refuses
to run as root: as root, the directory is given to the ``postgres`` user (or
``nobody``) and the server runs as that user. ``postgres_url``: a fresh database in
that cluster for each test.

Without the binaries the tests skip, except under ``CI`` where they fail: CI must not
silently test less (``.ci/run`` installs Debian's ``postgresql``).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

READY_POLLS = 400  # x 0.05 s: a fresh cluster accepts connections in about a second
POLL_INTERVAL_S = 0.05
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
USER = "watchdog"  # the cluster's superuser (trust auth on loopback only)


@dataclass
class PostgresCluster:
    bindir: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _databases: itertools.count[int]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"test_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def postgres_bindir() -> Path | None:
    """Debian's /usr/lib/postgresql/<version>/bin (newest), else ``postgres`` on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass(frozen=True)
class _Ids:
    """Arguments for ``subprocess``: who the child runs as (None: as we do)."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _ids(user: pwd.struct_passwd | None) -> _Ids:
    return _Ids() if user is None else _Ids(user.pw_uid, user.pw_gid, [])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, then stop
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _ready(cluster: PostgresCluster) -> bool:
    import psycopg

    for _ in range(READY_POLLS):
        if cluster.process.poll() is not None:
            return False
        try:
            with psycopg.connect(cluster.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            time.sleep(POLL_INTERVAL_S)
    return False


def start_cluster(bindir: Path) -> PostgresCluster:
    user = _server_user()
    ids = _ids(user)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    # Under /tmp itself: pytest's own tmp dirs are private to root, and the socket
    # path must stay short.
    root = Path(tempfile.mkdtemp(prefix="watchdog-pg-", dir="/tmp"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    log_path = root / "postgres.log"
    with log_path.open("wb") as log:
        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=root,
            env=env,
            check=False,
            timeout=120,
            user=ids.user,
            group=ids.group,
            extra_groups=ids.extra_groups,
        )
    if initdb.returncode != 0:
        pytest.fail(f"initdb failed:\n{log_path.read_text(errors='replace')}")
    failures = []
    for _attempt in range(START_ATTEMPTS):
        port = _free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(root / "data"),
                    "-k",
                    str(root),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # A throwaway cluster: durability buys nothing here.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=root,
                env=env,
                start_new_session=True,
                user=ids.user,
                group=ids.group,
                extra_groups=ids.extra_groups,
            )
        cluster = PostgresCluster(bindir, root, port, process, log_path, itertools.count(1))
        if _ready(cluster):
            return cluster
        _stop(process)
        failures.append(cluster.log_tail())
    shutil.rmtree(root, ignore_errors=True)
    pytest.fail("postgres did not become ready:\n" + "\n---\n".join(failures))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL for the session; skip without the binaries (fail under CI)."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        message = "psycopg is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = start_cluster(bindir)
    try:
        yield cluster
    finally:
        _stop(cluster.process)
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of a fresh, empty database for this test."""
    return postgres_cluster.create_database()
