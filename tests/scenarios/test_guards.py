"""Deploy correlation and the guards: a rollback only when a recent deploy explains
the breach; one per target per incident; a cooldown; never a second one when the
first did not help."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import (
    BAD,
    HEALTHY,
    breach,
    calm,
    escalation_levels,
    mutating_calls,
    pagerduty_triggers,
    recover,
)
from tests.world import T0, World, world

WORKER_ONLY = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
   min_requests: 100, rollback: [worker]}
"""


def seed_old_history(w: World, age: float) -> None:
    """v1, then v2 deployed ``age`` seconds before T0: nothing recent."""
    for name, when in (("v1", T0 - 2 * 86400), ("v2", T0 - age)):
        w.versions[name] = w.cloudflare.upload_version("api", name, created_on=when - 60)
        w.cloudflare.deploy("api", [(w.versions[name], 100.0)], name, created_on=when)


async def assert_escalated_not_rolled_back(w: World, reason: str) -> None:
    assert w.worker_rollbacks() == 0
    assert mutating_calls(w) == []
    events = await w.events()
    blocked = [e for e in events if e.kind == "rollback_blocked"]
    assert blocked
    assert reason in blocked[0].data["why"], blocked
    (escalated,) = [e for e in events if e.kind == "escalated"]
    assert reason in escalated.data["why"]
    # On-call is paged with the reason.
    (page,) = pagerduty_triggers(w)[-1:]
    assert page["payload"]["custom_details"]["escalation"] == "level 1 (On-Call Engineer)"
    assert reason in page["payload"]["custom_details"]["message"]


async def test_no_recent_deploy_escalates_instead_of_rolling_back(tmp_path: Path) -> None:
    """The live deploy is 3h old (max_deploy_age 2h): a rollback would not help (the
    database may be down), so no rollback; on-call is paged with the reason."""
    async with world(tmp_path, WORKER_ONLY, history=False) as w:
        seed_old_history(w, age=3 * 3600)
        await calm(w)
        await breach(w)
        await assert_escalated_not_rolled_back(w, "no recent deploy explains the breach")
        assert "3h" in (await w.events("escalated"))[0].data["why"]
        assert w.worker_live() == [(w.versions["v2"], 100.0)]


async def test_deploy_after_the_breach_began_is_not_rolled_back(tmp_path: Path) -> None:
    """The breach began before the live deploy went out (someone deployed a fix
    attempt meanwhile): that deploy does not explain it, so no rollback; escalate."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await calm(w)
        await w.feed("error_rate", [BAD] * 8, also=HEALTHY)  # the breach begins
        v4 = w.cloudflare.publish("api", "hotfix attempt", created_on=w.now + 1)
        await w.feed("error_rate", [BAD] * 13, also=HEALTHY)
        await assert_escalated_not_rolled_back(w, "after the breach began")
        assert w.worker_live() == [(v4, 100.0)]


async def test_second_breach_within_cooldown_is_not_rolled_back(tmp_path: Path) -> None:
    """A rollback, verified and closed; a second breach 15 minutes later opens a
    second incident, but the Worker is in its 30m cooldown: no second rollback."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        first_at = w.now
        await recover(w)
        assert w.runtime.manager.open == {}
        await breach(w)
        assert w.now - first_at < 1800
        incidents = await w.runtime.store.recent_incidents()
        assert len(incidents) == 2
        assert w.worker_rollbacks() == 1
        blocked = await w.events("rollback_blocked")
        assert blocked
        assert "cooldown: worker was rolled back" in blocked[0].data["why"]
        assert blocked[0].incident_id == incidents[0].id
        assert "cooldown" in (await w.events("escalated"))[0].data["why"]


async def test_rollback_that_does_not_help_escalates_and_never_rolls_back_again(
    tmp_path: Path,
) -> None:
    """The rollback goes through but the error rate stays at 8 %: verification fails
    after 2m, the incident escalates (level 1 at once, level 2 after 10m), and
    however long it lasts, and even if the rule resolves and fires again, there is
    no second rollback."""
    async with world(tmp_path, WORKER_ONLY) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        await w.feed("error_rate", [BAD] * 10, also=HEALTHY)  # 2.5 minutes
        verification = await w.events("verification")
        assert verification
        results = verification[0].data["results"]
        assert results["error_rate:below"].startswith("failed: error_rate was 8%")
        assert results["p95:baseline"].startswith("passed")
        assert any("Rollback did NOT help" in t for t in w.slack_texts())
        assert escalation_levels(w) == ["level 1 (On-Call Engineer)"]
        await w.feed("error_rate", [BAD] * 40, also=HEALTHY)
        assert escalation_levels(w) == ["level 1 (On-Call Engineer)", "level 2 (DevOps Lead)"]
        # The rule resolves for a moment and fires again: still one rollback.
        await calm(w, 1)
        await breach(w)
        await w.feed("error_rate", [BAD] * 200, also=HEALTHY)
        assert w.worker_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "escalated"


TWO_RULES = """
- {name: checkout-errors, signal: error_rate, above: 5%, for: 5m, severity: high,
   min_requests: 100, rollback: [worker]}
- {name: slow-p95, signal: p95, above: 5s, for: 5m, severity: critical, rollback: [worker]}
"""


async def test_second_rule_on_the_same_target_joins_the_incident(tmp_path: Path) -> None:
    """error-rate (critical) rolls back worker and frontend; slow-p95 (critical, on
    the worker) fires while verifying: it joins the open incident and escalates;
    the worker is not rolled back a second time."""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w)
        assert w.worker_rollbacks() == 1
        await w.feed("p95", [7.0] * 21, also={"error_rate": 0.001})
        assert w.worker_rollbacks() == 1
        assert w.pages_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1
        joined = await w.events("joined")
        assert [e.data["decision"]["rule"] for e in joined] == ["slow-p95"]
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "escalated"


async def test_critical_rule_joining_a_high_incident_in_grace_rolls_back_at_once(
    tmp_path: Path,
) -> None:
    """A high incident waits out its grace; a critical rule on the same target fires
    meanwhile: critical means at once, so the rollback does not wait, and the high
    rule recovering does not close the incident while the critical one breaches."""
    async with world(tmp_path, TWO_RULES) as w:
        await calm(w)
        await breach(w)
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "grace"
        grace_until = incident.state.grace_until
        assert grace_until is not None
        await w.feed("p95", [7.0] * 21, also={"error_rate": BAD})
        assert w.now < grace_until
        assert w.worker_rollbacks() == 1
        assert len(await w.runtime.store.recent_incidents()) == 1
        assert incident.record.severity == "critical"
        # The high rule recovers; the critical one still breaches: not closed.
        await w.feed("p95", [7.0] * 4, also={"error_rate": 0.001})
        assert incident.id in w.runtime.manager.open
