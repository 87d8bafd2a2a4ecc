"""The severity matrix: high waits a grace period, medium notifies then escalates,
low only notifies."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import (
    BAD,
    HEALTHY,
    breach,
    calm,
    escalation_levels,
    kinds,
    mutating_calls,
    recover,
)
from tests.world import world

HIGH = """
- {name: checkout-errors, signal: error_rate, above: 5%, for: 5m, severity: high,
   min_requests: 100, rollback: [worker]}
"""
MEDIUM = """
- {name: slow-p95, signal: p95, above: 2s, for: 5m, severity: medium, rollback: [worker]}
"""
LOW = """
- {name: minor-errors, signal: error_rate, above: 5%, for: 5m, severity: low,
   min_requests: 100, rollback: [worker]}
"""


async def test_high_waits_the_grace_period_then_rolls_back(tmp_path: Path) -> None:
    """high: the breach opens an incident and waits 10m for a quick fix; still
    breaching when the grace ends, the Worker is rolled back once."""
    async with world(tmp_path, HIGH) as w:
        await calm(w)
        await breach(w)
        assert "grace" in await kinds(w)
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "grace"
        # Nine more minutes of breach: still within the grace, nothing touched.
        await w.feed("error_rate", [BAD] * 36, also=HEALTHY)
        assert w.worker_rollbacks() == 0
        assert mutating_calls(w) == []
        # The grace period ends with the breach still there.
        await w.feed("error_rate", [BAD] * 5, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        assert w.worker_live() == [(w.versions["v2"], 100.0)]
        assert w.pages_rollbacks() == 0  # the rule names the Worker only
        events = await w.events()
        grace_over = [e for e in events if e.kind == "grace_over"]
        started = [e for e in events if e.kind == "rollback_started"]
        assert grace_over
        assert started
        assert started[0].at - incident.record.opened_at >= 600
        await recover(w)
        assert w.runtime.manager.open == {}
        assert w.worker_rollbacks() == 1


async def test_high_fixed_within_grace_is_not_rolled_back(tmp_path: Path) -> None:
    """high: the error rate falls back (a quick fix) before the grace ends: no
    rollback, the incident closes as fixed within the grace period."""
    async with world(tmp_path, HIGH) as w:
        await calm(w)
        await breach(w)
        await w.feed("error_rate", [BAD] * 8, also=HEALTHY)  # two minutes into the grace
        await calm(w, 60)  # fixed, and well past the end of the grace
        assert w.worker_rollbacks() == 0
        assert mutating_calls(w) == []
        incidents = await w.runtime.store.recent_incidents()
        assert len(incidents) == 1
        assert incidents[0].phase == "resolved"
        events = await w.events()
        assert "fixed_within_grace" in [e.kind for e in events]
        (resolved,) = [e for e in events if e.kind == "resolved"]
        assert "fixed within the grace period" in resolved.data["why"]


async def test_medium_notifies_then_escalates_along_the_ladder(tmp_path: Path) -> None:
    """medium: a notice at once; still breaching after escalate_after (30m) it
    escalates: level 1 at once, level 2 ten minutes later; never a rollback."""
    async with world(tmp_path, MEDIUM) as w:
        await w.feed("error_rate", [0.01] * 20, also={"p95": 0.4})
        await w.feed("p95", [3.0] * 21, also={"error_rate": 0.01})
        (incident,) = w.runtime.manager.open.values()
        opened = incident.record.opened_at
        assert any("Notice: slow-p95" in t for t in w.slack_texts())
        assert escalation_levels(w) == []
        # 29 minutes on: not yet.
        await w.feed("p95", [3.0] * 116, also={"error_rate": 0.01})
        assert w.now - opened < 1800
        assert escalation_levels(w) == []
        await w.feed("p95", [3.0] * 5, also={"error_rate": 0.01})
        assert escalation_levels(w) == ["level 1 (On-Call Engineer)"]
        escalated = [e for e in await w.events() if e.kind == "escalated"]
        assert escalated
        assert "still breaching after 30m" in escalated[0].data["why"]
        level1_at = w.now
        await w.feed("p95", [3.0] * 36, also={"error_rate": 0.01})  # 9 minutes
        assert escalation_levels(w) == ["level 1 (On-Call Engineer)"]
        await w.feed("p95", [3.0] * 5, also={"error_rate": 0.01})
        assert escalation_levels(w) == [
            "level 1 (On-Call Engineer)",
            "level 2 (DevOps Lead)",
        ]
        levels = [e for e in await w.events() if e.kind == "escalation_level"]
        assert [e.data["level"] for e in levels] == [1, 2]
        assert 600 <= levels[1].at - levels[0].at < 600 + 75
        assert levels[0].at - level1_at <= 0
        assert w.worker_rollbacks() == 0
        assert mutating_calls(w) == []


async def test_low_notifies_only_and_closes_when_the_rule_resolves(tmp_path: Path) -> None:
    """low: a notice, no rollback and no escalation, however long; closes when the
    error rate falls back under the threshold."""
    async with world(tmp_path, LOW) as w:
        await calm(w)
        await breach(w)
        await w.feed("error_rate", [BAD] * 200, also=HEALTHY)  # 50 minutes
        assert any("Notice: minor-errors" in t for t in w.slack_texts())
        assert w.worker_rollbacks() == 0
        assert mutating_calls(w) == []
        assert escalation_levels(w) == []
        assert len(w.runtime.manager.open) == 1
        await calm(w, 2)
        assert w.runtime.manager.open == {}
        (incident,) = await w.runtime.store.recent_incidents()
        assert incident.phase == "resolved"
        assert incident.closed_at is not None
        assert any("All clear: minor-errors resolved" in t for t in w.slack_texts())
        assert "escalated" not in await kinds(w)
