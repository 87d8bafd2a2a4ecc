"""Fault matrix, silence regexes (ReDoS): ``rule=~(.*.*.*.*.*)*[^\\s\\S]`` used to hang
the event loop as soon as a rollback was planned (Python's ``re`` backtracks: hours
for the 10 characters of ``error-rate``), SIGTERM ignored, and again after a restart
since the silence is persisted. Now patterns run on a non-backtracking engine, are
judged against the known names when the silence is made, loaded and when rules
reload, and a pattern that meets no loaded name needs ``force``.

The subprocess row turns the old hang into a failure (bounded wait); the scenario rows
show the rollback going ahead with the hostile silence in place, from the API and
from the store after a restart.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from tests.integration.daemon_proc import REPO
from tests.scenarios.support import breach, calm
from tests.world import world
from watchdog.api.app import build_app
from watchdog.http.server import serve
from watchdog.store.base import SilenceRecord

EVIL = r"(.*.*.*.*.*)*[^\s\S]"
CHILD_TIMEOUT_S = 60.0  # the fixed code answers in well under a second; the old never

CHILD = textwrap.dedent(
    f"""
    import asyncio
    from watchdog.clock import FakeClock
    from watchdog.incidents.matchers import known_names, parse_matcher
    from watchdog.incidents.silence import Silences
    from watchdog.store.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(":memory:")
        await store.open()
        silences = Silences(store, FakeClock(1_790_000_000.0))
        silences.set_known(known_names(["error-rate", "p95-latency-slow"], ["worker"]))
        await silences.add([parse_matcher({"rule=~" + EVIL!r})], duration_s=600, created_by="x")
        assert silences.match("error-rate", "critical", "worker") is None
        assert silences.match("a-rule-nobody-knew-of-" * 20, "critical", "worker") is None
        print("answered")

    asyncio.run(main())
    """
)


def test_a_catastrophic_regex_answers_at_once() -> None:
    """The match that hung the old daemon, in a child process with a bounded wait."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"matching {EVIL!r} did not finish in {CHILD_TIMEOUT_S}s: it backtracks"
        ) from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "answered"


async def test_a_hostile_silence_from_the_api_does_not_stop_the_rollback(tmp_path: Path) -> None:
    """Refused without force (it meets no rule); with force it is kept, matches
    nothing, and the breach is rolled back as if it were not there."""
    async with world(tmp_path, env={"WATCHDOG_API_TOKEN": "s3cret-api-token"}) as w:
        app = build_app(
            w.runtime.watchdog, w.runtime.settings.api_token, silences=w.runtime.silences
        )
        body = {
            "matchers": [f"rule=~{EVIL}"],
            "duration": "2h",
            "created_by": "mallory",
            "comment": "x",
        }
        headers = {"authorization": "Bearer s3cret-api-token"}
        async with serve(app) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            refused = await http.post("/api/v1/silences", json=body, headers=headers)
            assert refused.status_code == 400, refused.text
            assert "matches no loaded rule" in refused.json()["error"]
            kept = await http.post(
                "/api/v1/silences", json={**body, "force": True}, headers=headers
            )
            assert kept.status_code == 201, kept.text
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1


async def test_a_hostile_silence_loaded_from_the_store_does_not_hang(tmp_path: Path) -> None:
    """Saved by an older version (straight into the store), loaded at start: the
    restarted daemon judges it in linear time and rolls back. A stored pattern this
    version refuses (a backreference) matches no name instead of failing the start."""
    async with world(tmp_path) as w:
        for number, pattern in enumerate((EVIL, r"(a)\1")):
            await w.runtime.store.save_silence(
                SilenceRecord(
                    f"old-{number}",
                    [{"name": "rule", "op": "=~", "value": pattern}],
                    w.now,
                    w.now + 7200,
                    "older version",
                    "x",
                )
            )
        await w.restart()
        assert {s.id for s in w.runtime.silences.active()} == {"old-0", "old-1"}
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
