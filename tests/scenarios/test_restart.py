"""Restart mid-incident (in-process: the Runtime is stopped and a new one is built on
the same state file): the incident goes on, nothing is done twice."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import BAD, HEALTHY, breach, calm, recover
from tests.world import world
from watchdog.incidents.state import load_state

WORKER_ONLY = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
   min_requests: 100, rollback: [worker]}
"""
HIGH = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: high,
   min_requests: 100, rollback: [worker]}
"""


async def test_restart_during_verification_completes_it_without_a_second_rollback(
    tmp_path: Path,
) -> None:
    """Rolled back, then restarted while verifying: the restored incident verifies
    on fresh samples and closes; the rollback is not repeated."""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        (before,) = w.runtime.manager.open.values()
        assert before.phase == "verifying"
        await w.restart()
        (after,) = w.runtime.manager.open.values()
        assert after.id == before.id
        assert after.phase == "verifying"
        assert after.state.baselines == before.state.baselines
        await recover(w)
        assert w.runtime.manager.open == {}
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "resolved"
        kinds = [e.kind for e in await w.runtime.store.events(incident.id)]
        assert kinds.count("rollback_started") == 1
        assert "verification" in kinds
        assert kinds[-1] == "resolved"
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1


async def test_restart_during_grace_keeps_the_deadline(tmp_path: Path) -> None:
    """A high incident in its grace period survives a restart: the deadline is in
    the store; the breach goes on, so it rolls back once, when the grace ends."""
    async with world(tmp_path, HIGH) as w:
        await calm(w)
        await breach(w)
        (incident,) = w.runtime.manager.open.values()
        grace_until = incident.state.grace_until
        assert grace_until is not None
        await w.restart()
        assert w.runtime.manager.open[incident.id].phase == "grace"
        # The new process samples from scratch: the rule fires again (joins the
        # incident) and the grace deadline still rules.
        await w.feed("error_rate", [BAD] * 30, also=HEALTHY)
        assert w.now < grace_until
        assert w.worker_rollbacks() == 0
        await w.feed("error_rate", [BAD] * 12, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1
        await recover(w)
        assert w.runtime.manager.open == {}


async def test_restart_closes_a_watched_incident_whose_breach_ended(tmp_path: Path) -> None:
    """A restored incident whose rule is healthy after the restart closes: the new
    engine never saw the rule fire, so no 'resolved' decision will come."""
    low = HIGH.replace("severity: high", "severity: low")
    async with world(tmp_path, low) as w:
        await calm(w)
        await breach(w)
        await w.restart()
        await calm(w, 4)
        assert w.runtime.manager.open == {}
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "resolved"


async def test_restart_reconciles_a_rollback_whose_outcome_was_not_journalled(
    tmp_path: Path,
) -> None:
    """The process died after Cloudflare applied the rollback but before the outcome
    was written: on restart the intent row is reconciled from the live deployment
    (done, not repeated) and verification goes on."""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        (incident,) = w.runtime.manager.open.values()
        store = w.runtime.store
        # Put the worker's journal row back to 'intent', as a kill -9 would have left it.
        (row,) = [a for a in await store.actions(incident.id) if a.target == "worker"]
        await store.journal_outcome(row.key, "intent", {}, row.created_at)
        assert [a.key for a in await store.unfinished_actions()] == [row.key]
        await w.restart()
        assert await w.runtime.store.unfinished_actions() == []
        (done,) = [a for a in await w.runtime.store.actions(incident.id) if a.target == "worker"]
        assert done.key == row.key
        assert done.state == "done"
        assert done.outcome["data"] == {"reconciled": True}
        assert "reconciled" in [e.kind for e in await w.runtime.store.events(incident.id)]
        await recover(w)
        assert w.runtime.manager.open == {}
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1


async def test_restart_mid_rollback_finishes_the_playbook_from_the_journal(
    tmp_path: Path,
) -> None:
    """Killed between Cloudflare applying the rollback and the outcome row (the
    incident still 'rolling_back'): the restart reconciles the row, finishes the
    playbook without a second request, and reports the rollback as it was
    journalled (v3 → v2), not as a new plan computed from what is live now."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        (incident,) = w.runtime.manager.open.values()
        store = w.runtime.store
        (row,) = [a for a in await store.actions(incident.id) if a.kind == "rollback"]
        await store.journal_outcome(row.key, "intent", {}, row.created_at)
        record = await store.get_incident(incident.id)
        assert record is not None
        record.phase = "rolling_back"
        state = load_state(record)
        state.rolled_back, state.rolled_back_at, state.verify_started = [], None, None
        record.state_json = state.to_json()
        await store.save_incident(record)
        posts_before = len(w.slack_texts())
        await w.restart()
        await w.settle()
        assert w.worker_rollbacks() == 1
        (resumed,) = w.runtime.manager.open.values()
        assert resumed.phase == "verifying"
        assert resumed.state.rolled_back == [("worker", w.versions["v3"], w.versions["v2"])]
        texts = w.slack_texts()[posts_before:]
        assert not any(f"{w.versions['v2']} → {w.versions['v3']}" in t for t in texts), texts
        await recover(w)
        assert w.runtime.manager.open == {}
        assert w.worker_live() == [(w.versions["v2"], 100.0)]
