"""Ramps the daemon owns (issue 16, "Owning the ramp"), on virtual time against the
local Cloudflare API: each verb, the soak, a regression, a person's deploy, and a
restart mid-ramp."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.scenarios.ramp_support import ramp_world
from watchdog.run.ramp_steps import RampError, parse_steps
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.store.base import ActionRecord
from watchdog.units import parse_duration


async def test_a_ramp_moves_step_by_step_only_after_each_soak(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        start = w.clock.now()
        ramp = await w.ramps.start(None, w.new, "10%,50%,100%", 120.0, "ana")
        assert (ramp.target, ramp.old, ramp.new) == ("worker", w.old, w.new)
        done = await w.until_phase(ramp.id, "done")
        assert w.live() == [(w.new, 100.0)]
        posts = [d for d in w.fake._script("api").deployments if d.created_on >= start]
        assert [sorted(d.versions) for d in posts] == [
            sorted([(w.new, 10.0), (w.old, 90.0)]),
            sorted([(w.new, 50.0), (w.old, 50.0)]),
            [(w.new, 100.0)],
        ]
        # Each move waited its whole soak (virtual seconds between the deployments).
        assert posts[1].created_on - posts[0].created_on >= 120
        assert posts[2].created_on - posts[1].created_on >= 120
        assert "serves 100%" in done.why
        assert "no regression" in done.why
        rows = await w.store.actions(ramp.id)
        assert [(r.kind, r.state, r.intent["step"]) for r in rows] == [
            ("ramp-step", "done", 0),
            ("ramp-step", "done", 1),
            ("ramp-step", "done", 2),
        ]


async def test_a_soak_counts_only_time_the_analytics_have_reported(tmp_path: Path) -> None:
    """With the analytics 40 s late, a 60 s soak ends when the canary's evidence covers
    60 s of the step, not 60 s after it went live (it would judge 20 s of data)."""
    async with ramp_world(tmp_path, delay_s=40.0) as w:
        start = w.clock.now()
        ramp = await w.ramps.start(None, w.new, "10%,100%", 60.0, "ana")
        await w.until_phase(ramp.id, "done")
        posts = [d for d in w.fake._script("api").deployments if d.created_on >= start]
        assert len(posts) == 2
        assert posts[1].created_on - posts[0].created_on >= 60 + 40


async def test_no_move_without_evidence_and_none_on_a_regression(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        w.error_rates[w.new] = 0.2  # 40x the old version's errors
        ramp = await w.ramps.start(None, w.new, "10%,100%", 60.0, "ana")
        await w.until_live([(w.new, 10.0), (w.old, 90.0)])
        await w.clock.sleep(600)  # ten minutes of virtual time: ten soaks
        assert sorted(w.live()) == sorted([(w.new, 10.0), (w.old, 90.0)])
        record = await w.ramp(ramp.id)
        assert record.phase == "ramping"
        assert "regressed" in record.why
        # The canary rule's rollback (the incident manager's; here as Cloudflare sees it):
        w.fake.deploy("api", [(w.old, 100)], "rolled back by the canary rule")
        ended = await w.until_phase(ramp.id, "rolled-back")
        assert "100% of the old version" in ended.why
        assert "nothing sent" in ended.why
        assert w.live() == [(w.old, 100.0)]


async def test_hold_stops_the_soak_and_promote_moves_now(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start(None, w.new, "10%,50%,100%", 600.0, "ana")
        await w.until_live([(w.new, 10.0), (w.old, 90.0)])
        await w.clock.sleep(120)
        held = await w.ramps.hold(ramp.id, "bo")
        assert held.phase == "held"
        assert held.why == "held by bo"
        assert 100 <= held.soaked_s <= 140
        assert held.soak_from is None
        await w.clock.sleep(900)  # past the soak: held, it does not move
        assert sorted(w.live()) == sorted([(w.new, 10.0), (w.old, 90.0)])
        moved = await w.ramps.promote(ramp.id[:6], "bo")  # a prefix is enough
        assert moved.phase == "ramping"
        assert moved.step == 1
        assert "promoted by bo" in moved.why
        assert sorted(w.live()) == sorted([(w.new, 50.0), (w.old, 50.0)])
        assert moved.soaked_s == 0.0
        assert moved.soak_from == pytest.approx(w.clock.now(), abs=5)
        with pytest.raises(RampError, match="already has an active ramp"):
            await w.ramps.start(None, w.new, "100%", 0.0, "cy")


async def test_abort_goes_back_to_the_old_version(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start("worker", w.new, "25%,100%", 600.0, "ana")
        await w.until_live([(w.new, 25.0), (w.old, 75.0)])
        aborted = await w.ramps.abort(ramp.id, "bo")
        assert aborted.phase == "aborted"
        assert aborted.why.startswith("aborted by bo")
        assert w.live() == [(w.old, 100.0)]
        rows = await w.store.actions(ramp.id)
        assert [(r.kind, r.state) for r in rows] == [("ramp-step", "done"), ("ramp-revert", "done")]
        with pytest.raises(RampError, match=r"has ended \(aborted\)|no single active ramp"):
            await w.ramps.hold(ramp.id, "bo")


async def test_a_persons_deploy_ends_the_ramp_untouched(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start(None, w.new, "10%,100%", 600.0, "ana")
        await w.until_live([(w.new, 10.0), (w.old, 90.0)])
        hotfix = w.fake.publish("api", "hotfix")
        ended = await w.until_phase(ramp.id, "superseded")
        assert "neither old nor new" in ended.why
        assert "nothing sent" in ended.why
        await w.clock.sleep(900)
        assert w.live() == [(hotfix, 100.0)]  # never overwritten


async def test_a_restart_resumes_the_soak_where_it_was(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start(None, w.new, "10%,100%", 600.0, "ana")
        moved_at = (await w.until_step(ramp.id, 0)).soak_from
        assert moved_at is not None
        await w.clock.sleep(300)
        await w.restart()
        resumed = await w.ramp(ramp.id)
        assert resumed.phase == "ramping"
        assert "resumed after a restart" in resumed.why
        assert resumed.soak_from == moved_at  # the soak counts from the move, not the restart
        await w.until_phase(ramp.id, "done")
        assert w.live() == [(w.new, 100.0)]
        last = (await w.store.actions(ramp.id))[-1]
        assert last.finished_at is not None
        assert last.finished_at - moved_at >= 600


async def test_start_refuses_what_it_cannot_ramp(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        with pytest.raises(RampError, match="already serves 100%"):
            await w.ramps.start(None, w.old, "100%", 0.0, "ana")
        with pytest.raises(RampError, match="not a cloudflare-worker target"):
            await w.ramps.start("frontend", w.new, "100%", 0.0, "ana")
        w.fake.deploy("api", [(w.new, 5), (w.old, 95)], "by hand")
        with pytest.raises(RampError, match="from one version at 100%"):
            await w.ramps.start(None, w.new, "10%,100%", 0.0, "ana")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("10%,50%", "the last step must be 100%"),
        ("50%,10%,100%", "item 2 ('10%') is not above 50%"),
        ("ten,100%", "item 1 ('ten') is not a percentage"),
        ("0%,100%", "item 1 ('0%') is not in (0, 100]"),
        ("", "item 1 ('') is not a percentage"),
    ],
)
def test_bad_steps_are_named(text: str, error: str) -> None:
    with pytest.raises(RampError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_steps(text)
    assert parse_steps("10%,50%,100%") == [10.0, 50.0, 100.0]
    assert parse_duration("10m") == 600


async def test_a_split_nobody_accounts_for_at_restart_goes_back_to_old(tmp_path: Path) -> None:
    """The owner is gone and the state is unclear (a split of the two versions that
    neither the ramp's record nor its journal made): back to 100 % of old, saying why."""
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start(None, w.new, "10%,100%", 600.0, "ana")
        await w.until_step(ramp.id, 0)

        def while_down(_: object) -> None:  # after the death, before the new process reconciles
            w.fake.deploy("api", [(w.new, 30), (w.old, 70)], "by hand, unrecorded")

        await w.restart(while_down)
        ended = await w.ramp(ramp.id)
        assert ended.phase == "reverted"
        assert "state unclear after a restart" in ended.why
        assert w.live() == [(w.old, 100.0)]
        rows = await w.store.actions(ramp.id)
        assert [(r.kind, r.state) for r in rows] == [("ramp-step", "done"), ("ramp-revert", "done")]


async def test_a_step_journalled_but_never_posted_is_failed_and_redone(tmp_path: Path) -> None:
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start(None, w.new, "10%,100%", 60.0, "ana")
        await w.until_step(ramp.id, 0)
        await w.ramps.hold(ramp.id, "ana")
        record = await w.ramp(ramp.id)
        # A crash after the intent of step 2 was written, before its POST.
        intent = {
            "from_deployment": record.deployment,
            "versions": [[w.new, 100.0]],
            "step": 1,
            "why": "soaked",
        }
        key = f"{ramp.id}/ramp-2/worker"
        await w.store.journal_intent(
            ActionRecord(key, ramp.id, "ramp-step", "worker", intent, "intent", w.clock.now())
        )
        await w.restart()
        rows = await w.store.actions(ramp.id)
        assert rows[-1].state == "failed"
        assert "not posted before a restart" in rows[-1].outcome["detail"]
        resumed = await w.ramp(ramp.id)
        assert (resumed.phase, resumed.step) == ("held", 0)
        assert sorted(w.live()) == sorted([(w.new, 10.0), (w.old, 90.0)])
        await w.ramps.promote(ramp.id, "ana")
        assert w.live() == [(w.new, 100.0)]


async def test_an_abort_journalled_but_never_posted_is_carried_out_at_restart(
    tmp_path: Path,
) -> None:
    """The daemon died after journalling an operator's abort, before its POST: the
    restart goes back to 100 % of old (the operator's word stands), never resumes."""
    async with ramp_world(tmp_path) as w:
        ramp = await w.ramps.start(None, w.new, "10%,100%", 60.0, "ana")
        await w.until_step(ramp.id, 0)
        record = await w.ramp(ramp.id)
        why = f"aborted by bo: back to 100% of {w.old}"
        intent = {
            "from_deployment": record.deployment,
            "versions": [[w.old, 100.0]],
            "why": why,
            "phase": "aborted",
        }
        key = f"{ramp.id}/ramp-2/worker"
        await w.store.journal_intent(
            ActionRecord(key, ramp.id, "ramp-revert", "worker", intent, "intent", w.clock.now())
        )
        await w.restart()
        ended = await w.ramp(ramp.id)
        assert (ended.phase, ended.active) == ("aborted", False)
        assert ended.why.startswith("aborted by bo")
        assert w.live() == [(w.old, 100.0)]
        rows = await w.store.actions(ramp.id)
        assert [(r.kind, r.state) for r in rows] == [
            ("ramp-step", "done"),
            ("ramp-revert", "failed"),
            ("ramp-revert", "done"),
        ]


async def test_the_daemons_runtime_resumes_a_ramp_when_elected(tmp_path: Path) -> None:
    """The wiring: a new daemon's Runtime, on the state file a dead one left, takes
    the ramp over when its leadership starts (the same ``elected`` HA uses)."""
    async with ramp_world(tmp_path) as w, httpx.AsyncClient() as http:
        ramp = await w.ramps.start(None, w.new, "10%,100%", 600.0, "ana")
        await w.until_step(ramp.id, 0)
        await w.ramps.stop()  # the old process is gone
        env = {
            "WATCHDOG_RULES": str(tmp_path / "rules.yaml"),
            "WATCHDOG_STATE": str(w.path),
            "WATCHDOG_CLOUDFLARE_API_URL": w.stack.base_url,
            "CLOUDFLARE_API_TOKEN": w.fake.token,
            "CLOUDFLARE_ACCOUNT_ID": w.fake.account_id,
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
        }
        runtime = await Runtime.build(load_settings(env), w.clock, http)
        try:
            assert runtime.ramps is not None
            assert runtime.ramps.active == {}
            await runtime.gate.leadership.start()
            assert list(runtime.ramps.active) == [ramp.id]
            resumed = await w.ramp(ramp.id)
            assert "resumed after a restart" in resumed.why
            # Its moves are gated by the new daemon's own engine: no evidence, no move.
            await w.clock.sleep(700)  # past the soak
            assert sorted(w.live()) == sorted([(w.new, 10.0), (w.old, 90.0)])
        finally:
            await runtime.stop()
        assert runtime.ramps.active == {}
        assert (await w.ramp(ramp.id)).active  # stopping is not ending: the next one resumes
