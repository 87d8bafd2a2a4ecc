"""The rollback target in a service's history, through the whole watchdog: a later
incident never goes back to a version rolled away from, a verified rollback marks
its version healthy in the ledger, and a rollback is a compare-and-swap even when
resumed from the journal after a restart."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import CALM, HEALTHY, breach, calm, recover
from tests.world import world
from watchdog.incidents.state import load_state


async def test_a_later_incident_never_rolls_back_to_the_version_rolled_away_from(
    tmp_path: Path,
) -> None:
    """Defect 1: v3 breaks and is rolled back automatically to v2 (verified,
    resolved). Later v2 breaks too and a person rolls back: the second rollback goes
    to v1, not to v3 (the "previous deployment" after v3 -> v2); Pages the same
    (p2 -> p1, not p3). (A second automatic one is the guards' call: the watchdog's
    own rollback is no fresh deploy to blame.)"""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w)
        assert w.worker_live() == [(w.versions["v2"], 100.0)]
        await recover(w)
        assert w.runtime.manager.open == {}
        verified = {
            (e.target, e.version)
            for name in ("worker", "frontend")
            for e in await w.runtime.store.ledger(name)
            if e.verified
        }
        assert verified == {("worker", w.versions["v2"]), ("frontend", w.pages["p2"])}
        await w.feed("error_rate", [CALM] * 35, interval=60.0, also=HEALTHY)
        await w.runtime.manager.manual_rollback(["worker", "frontend"], "v2 bad too", "alice")
        await w.settle()
        assert w.worker_live() == [(w.versions["v1"], 100.0)]
        assert w.cloudflare.canonical("site") == w.pages["p1"]
        assert w.worker_rollbacks() == 2
        rolled_away = {e.version for e in await w.runtime.store.ledger("worker") if e.rolled_away}
        assert rolled_away == {w.versions["v3"], w.versions["v2"]}


async def test_a_resumed_rollback_does_not_overwrite_a_deploy_made_while_down(
    tmp_path: Path,
) -> None:
    """Defect 12 across a restart: the intent (v3 -> v2) is journalled, the process
    dies before the POST, and a person ships v4 meanwhile. The resumed rollback
    re-reads, finds neither v3 nor v2 live, sends nothing, records "someone deployed
    meanwhile" and escalates."""
    worker_only = """
    - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
       min_requests: 100, rollback: [worker]}
    """
    async with world(tmp_path, worker_only) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        (incident,) = w.runtime.manager.open.values()
        store = w.runtime.store
        # As a kill -9 between the journalled intent and the POST leaves it: the row at
        # 'intent', the incident rolling back, and Cloudflare never reached.
        (row,) = [a for a in await store.actions(incident.id) if a.kind == "rollback"]
        await store.journal_outcome(row.key, "intent", {}, row.created_at)
        record = await store.get_incident(incident.id)
        assert record is not None
        record.phase = "rolling_back"
        state = load_state(record)
        state.rolled_back, state.rolled_back_at, state.verify_started = [], None, None
        record.state_json = state.to_json()
        await store.save_incident(record)
        w.cloudflare.scripts["api"].deployments.pop()  # the watchdog's deployment
        hotfix = w.cloudflare.publish("api", "hotfix v4")
        await w.restart()
        await w.settle()
        assert w.worker_live() == [(hotfix, 100.0)]
        assert w.worker_rollbacks() == 1  # the POST before the "crash", none since
        (after,) = [a for a in await w.runtime.store.actions(incident.id) if a.kind == "rollback"]
        assert after.state == "failed"
        assert "someone deployed meanwhile" in after.outcome["detail"]
        (resumed,) = w.runtime.manager.open.values()
        assert resumed.phase == "escalated"
        assert "someone deployed meanwhile" in resumed.state.escalation_why
