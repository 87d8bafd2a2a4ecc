"""Invariant 1 during an incident: when the metrics source goes down the watchdog is
blind; it says so and does nothing on missing evidence."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import BAD, HEALTHY, breach, calm, mutating_calls
from tests.world import world

HIGH = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: high,
   min_requests: 100, rollback: [worker]}
"""


async def test_source_outage_during_grace_is_blind_and_takes_no_action(tmp_path: Path) -> None:
    """A high incident in its grace period; then Prometheus stops answering for
    longer than blind_after and past the end of the grace: a "blind" notification,
    no rollback, and no false all-clear either."""
    async with world(tmp_path, HIGH) as w:
        await calm(w)
        await breach(w)
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "grace"
        await w.feed("error_rate", [None] * 48, also=HEALTHY)  # 12 minutes, no evidence
        assert incident.state.grace_until is not None
        assert w.now > incident.state.grace_until
        assert w.worker_rollbacks() == 0
        assert mutating_calls(w) == []
        blind = await w.events("blind")
        assert blind
        assert blind[0].incident_id == incident.id
        assert "the watchdog is blind" in blind[0].data["decision"]["why"]
        assert any("Watchdog is blind on error_rate" in t for t in w.slack_texts())
        assert w.runtime.watchdog.metrics.rule_blind.labels(rule="error-rate")._value.get() == 1
        # Blind is not "fixed": the incident is still open, nobody was told all clear.
        assert incident.id in w.runtime.manager.open
        assert not any("All clear" in t for t in w.slack_texts())
        # Evidence comes back, still breaching: the rule must build up again (for: 5m)
        # and only then is the Worker rolled back.
        await w.feed("error_rate", [BAD] * 19, also=HEALTHY)
        assert w.worker_rollbacks() == 0
        await w.feed("error_rate", [BAD] * 3, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1


async def test_source_outage_then_healthy_closes_the_incident(tmp_path: Path) -> None:
    """Blind during the grace, then the source comes back healthy: the incident
    closes without a rollback (no 'resolved' decision follows a blind spell)."""
    async with world(tmp_path, HIGH) as w:
        await calm(w)
        await breach(w)
        await w.feed("error_rate", [None] * 48, also=HEALTHY)
        await calm(w, 4)
        assert w.runtime.manager.open == {}
        assert w.worker_rollbacks() == 0


async def test_source_outage_before_a_breach_never_rolls_back(tmp_path: Path) -> None:
    """Critical rule, Prometheus down for an hour: blind once, never an incident
    with an action."""
    async with world(tmp_path) as w:
        await calm(w)
        await w.feed("error_rate", [None] * 240, also=HEALTHY)
        assert mutating_calls(w) == []
        blind = await w.runtime.store.events("blind-error-rate")
        assert [e.kind for e in blind if e.kind != "action"] == ["blind"]
        assert sum("Watchdog is blind on error_rate" in t for t in w.slack_texts()) == 1
        assert w.runtime.manager.open == {}
