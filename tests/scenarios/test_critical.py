"""Critical breach: exactly one rollback, purge, notifications, verified, closed."""

from __future__ import annotations

from pathlib import Path

from tests.world import world


async def test_critical_breach_rolls_back_once_verifies_and_closes(tmp_path: Path) -> None:
    """error rate 8% for 5m after a fresh deploy: one Worker and one Pages rollback,
    a zone purge, Slack/Statuspage/PagerDuty told, verification passes, closed."""
    async with world(tmp_path) as w:
        healthy = {"p95": 0.4}
        await w.feed("error_rate", [0.01] * 20, also=healthy)
        await w.feed("error_rate", [0.08] * 21, also=healthy)
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        assert w.worker_live() == [(w.versions["v2"], 100.0)]
        assert w.cloudflare.canonical("site") == w.pages["p2"]
        assert len(w.cloudflare.purges) == 1
        # The rollback helped: errors fall and p95 is back at its baseline.
        await w.feed("error_rate", [0.001] * 30, also=healthy)
        incidents = await w.runtime.store.recent_incidents()
        assert len(incidents) == 1
        assert incidents[0].closed_at is not None
        assert incidents[0].phase == "resolved"
        kinds = [e.kind for e in await w.events()]
        for expected in (
            "detected",
            "rollback_started",
            "rollback_finished",
            "verification",
            "resolved",
        ):
            assert expected in kinds
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        texts = " ".join(w.slack_texts())
        assert "error-rate" in texts
        (page_incident,) = w.receivers.statuspage.incidents.values()
        # Statuspage lists updates newest first.
        statuses = [u["status"] for u in reversed(page_incident["incident_updates"])]
        assert statuses[0] == "investigating"
        assert statuses[-1] == "resolved"
        assert "monitoring" in statuses
        assert w.receivers.statuspage.components["comp1"] == "operational"
