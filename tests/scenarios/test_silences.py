"""Silenced means: evaluate, record and notify "would have rolled back (silenced by
AUTHOR until TIME: COMMENT)", act never. Four ways in, all here; silences expire on
their own and survive restarts."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.scenarios.support import breach, calm, mutating_calls, recover
from tests.world import World, world
from watchdog.api.app import build_app
from watchdog.http.server import serve
from watchdog.incidents.matchers import parse_matcher
from watchdog.service import silence_by_signal, unsilence_by_signal
from watchdog.units import iso


async def assert_silenced(w: World, author: str, until: str, comment: str) -> None:
    """No mutating call; a would_rollback record per target; the notification says
    who silenced it, until when and why."""
    assert mutating_calls(w) == []
    assert w.worker_rollbacks() == 0
    assert w.pages_rollbacks() == 0
    expected = f"silenced by {author} until {until}: {comment}"
    would = await w.events("would_rollback")
    assert {e.data["target"] for e in would} == {"worker", "frontend"}
    assert all(e.data["why"] == expected for e in would)
    assert {e.data["to"] for e in would} == {w.versions["v2"], w.pages["p2"]}
    texts = [t for t in w.slack_texts() if "Would have rolled back" in t]
    assert texts, w.slack_texts()
    pattern = re.escape("Would have rolled back ") + ".*" + re.escape(f"({expected})")
    assert re.search(pattern, texts[0]), texts[0]
    assert texts[0].lower().count("would have rolled back") == 1, texts[0]
    assert not await w.runtime.store.rollbacks_since(0)


async def test_api_silence_holds_the_rollback(tmp_path: Path) -> None:
    """POST /api/v1/silences through the real HTTP app (loopback, bearer token):
    the breach is evaluated and notified, nothing is rolled back."""
    async with world(tmp_path, env={"WATCHDOG_API_TOKEN": "s3cret-api-token"}) as w:
        app = build_app(
            w.runtime.watchdog, w.runtime.settings.api_token, silences=w.runtime.silences
        )
        async with serve(app) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            answer = await http.post(
                "/api/v1/silences",
                json={
                    "matchers": ["rule=error-rate"],
                    "duration": "2h",
                    "created_by": "alice",
                    "comment": "deploying by hand",
                },
                headers={"authorization": "Bearer s3cret-api-token"},
            )
            assert answer.status_code == 201, answer.text
            created = answer.json()
            assert created["state"] == "active"
            assert created["created_by"] == "alice"
        await calm(w)
        await breach(w)
        await assert_silenced(w, "alice", iso(created["ends_at"]), "deploying by hand")
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "watching"


async def test_signal_silence_holds_the_rollback_and_sigusr2_lifts_it(tmp_path: Path) -> None:
    """SIGUSR1's handler silences everything for the configured hour; SIGUSR2's
    lifts it, and the next breach is rolled back."""
    async with world(tmp_path) as w:
        await silence_by_signal(w.runtime, 3600)
        (record,) = w.runtime.silences.active()
        assert record.origin == "signal"
        assert record.ends_at == w.now + 3600
        await calm(w)
        await breach(w)
        await assert_silenced(w, record.created_by, iso(record.ends_at), "silenced by signal")
        assert record.created_by.startswith("SIGUSR1")
        await unsilence_by_signal(w.runtime)
        assert w.runtime.silences.active() == []
        await recover(w, 2)
        assert w.runtime.manager.open == {}
        await breach(w)
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1


async def test_flag_file_silences_while_it_exists(tmp_path: Path) -> None:
    """WATCHDOG_SILENCE_FILE exists (its text is the comment): silenced; once it is
    removed, the next breach is rolled back."""
    flag = tmp_path / "silence"
    flag.write_text("migrating the database, ask bob\n")
    async with world(tmp_path, env={"WATCHDOG_SILENCE_FILE": str(flag)}) as w:
        await calm(w)
        await breach(w)
        await assert_silenced(
            w, "flag file", "the flag is lifted", "migrating the database, ask bob"
        )
        flag.unlink()
        await recover(w, 2)
        await breach(w)
        assert w.worker_rollbacks() == 1


async def test_startup_flag_silences_the_whole_run(tmp_path: Path) -> None:
    """WATCHDOG_SILENCED (``run --silenced``): every action is silenced."""
    async with world(tmp_path, env={"WATCHDOG_SILENCED": "true"}) as w:
        await calm(w)
        await breach(w)
        await assert_silenced(
            w, "--silenced", "the flag is lifted", "started with --silenced / WATCHDOG_SILENCED"
        )


async def test_silence_expires_on_its_own_without_a_restart(tmp_path: Path) -> None:
    """A 20-minute silence: the breach during it is held; once the clock passes its
    end (no restart, no call), the watchdog acts again."""
    async with world(tmp_path) as w:
        record = await w.runtime.silences.add(
            [parse_matcher("target=~worker|frontend")],
            duration_s=1200,
            created_by="carol",
            comment="load test",
        )
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 0
        assert await w.events("would_rollback")
        await calm(w, 40)  # ten minutes: the rule resolves, the silence runs out
        assert w.now > record.ends_at
        assert w.runtime.silences.active() == []
        await breach(w)
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1


async def test_silence_expiring_during_a_breach_lets_the_watchdog_act(tmp_path: Path) -> None:
    """The breach outlasts the silence: when the silence ends the incident is acted
    on (all guards still apply), without a restart."""
    async with world(tmp_path) as w:
        record = await w.runtime.silences.add(
            [], duration_s=900, created_by="carol", comment="short window"
        )
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 0
        await w.feed("error_rate", [0.08] * 20, also={"p95": 0.4})
        assert w.now > record.ends_at
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1
        (ended,) = await w.events("silence_ended")
        assert record.ends_at <= ended.at < record.ends_at + 15


async def test_silences_survive_a_restart(tmp_path: Path) -> None:
    """An API silence is in the state file: a watchdog rebuilt on it still holds
    the rollback; an expired one stays expired."""
    async with world(tmp_path) as w:
        kept = await w.runtime.silences.add(
            [], duration_s=7200, created_by="dave", comment="holiday freeze"
        )
        gone = await w.runtime.silences.add([], duration_s=7200, created_by="erin", comment="x")
        await w.runtime.silences.expire(gone.id)
        await w.restart()
        assert [s.id for s in w.runtime.silences.active()] == [kept.id]
        await calm(w)
        await breach(w)
        await assert_silenced(w, "dave", iso(kept.ends_at), "holiday freeze")
