"""Dry run (per rule, or WATCHDOG_DRY_RUN for all): everything runs but the mutating
calls; the journal holds "would" records with the exact requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.scenarios.support import breach, calm, mutating_calls
from tests.world import World, world

SHADOW = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
   min_requests: 100, rollback: [worker, frontend], dry_run: true}
"""


async def would_records(w: World) -> dict[str, dict[str, Any]]:
    (incident,) = await w.runtime.store.recent_incidents()
    actions = await w.runtime.store.actions(incident.id)
    return {f"{a.kind} {a.target}": a.outcome for a in actions}


async def assert_dry_run(w: World) -> None:
    assert mutating_calls(w) == []
    assert w.worker_live() == [(w.versions["v3"], 100.0)]
    assert w.cloudflare.canonical("site") == w.pages["p3"]
    assert w.cloudflare.purges == []
    records = await would_records(w)
    assert set(records) == {
        "would-rollback worker",
        "would-rollback frontend",
        "would-purge zone",
    }, records
    worker = records["would-rollback worker"]
    assert worker["would"] is True
    assert worker["ok"] is True
    assert worker["request"] == {
        "method": "POST",
        "path": "/accounts/acct/workers/scripts/api/deployments",
        "params": {},
        "body": {
            "strategy": "percentage",
            "versions": [{"version_id": w.versions["v2"], "percentage": 100}],
            "annotations": {
                "workers/message": "rollback-watchdog: error-rate 8% > 5% for 5m",
            },
        },
    }
    pages = records["would-rollback frontend"]["request"]
    assert pages["method"] == "POST"
    assert pages["path"] == (
        f"/accounts/acct/pages/projects/site/deployments/{w.pages['p2']}/rollback"
    )
    purge = records["would-purge zone"]["request"]
    assert purge["path"] == "/zones/zone1/purge_cache"
    assert purge["body"] == {"purge_everything": True}
    assert not await w.runtime.store.rollbacks_since(0)
    would = await w.events("would_rollback")
    assert would
    assert would[0].data["dry_run"] is True
    (incident,) = w.runtime.manager.open.values()
    assert incident.phase == "watching"


async def test_rule_dry_run_records_what_it_would_do(tmp_path: Path) -> None:
    """A rule with ``dry_run: true`` runs in shadow: decided, journalled as
    would-rollback / would-purge with the exact requests, nothing changed."""
    async with world(tmp_path, SHADOW) as w:
        await calm(w)
        await breach(w)
        await assert_dry_run(w)
        # Shadow rules leave the others alone: the decision itself says dry run.
        assert w.runtime.watchdog.decisions[-1].dry_run is True


async def test_global_dry_run_records_what_it_would_do(tmp_path: Path) -> None:
    """WATCHDOG_DRY_RUN=true: the same for every rule."""
    async with world(tmp_path, env={"WATCHDOG_DRY_RUN": "true"}) as w:
        await calm(w)
        await breach(w)
        await assert_dry_run(w)
        assert w.runtime.watchdog.decisions[-1].dry_run is False
