"""Verification that cannot be fooled: the baseline a rollback is judged against
comes from before the episode (flapping included) and never holds a breaching
sample, and no goal is laxer than the rule's own threshold."""

from __future__ import annotations

from pathlib import Path

from tests.scenarios.support import calm
from tests.world import world

P95_ONLY = """
- {name: slow-p95, signal: p95, above: 5s, for: 5m, severity: critical, rollback: [worker]}
"""
ERRORS = {"error_rate": 0.001}  # under the 0.5 % verify check


async def test_flapping_before_the_breach_stays_out_of_the_baseline(tmp_path: Path) -> None:
    """p95 at 0.4 s, then 15 minutes of flapping (6 s three samples in four: the rule
    never holds for its 5m), then 7.5 s until it fires. The rollback does not help
    (p95 stays at 6.5 s): the baseline is the calm 0.4 s from before the flapping,
    not the flapping's 6 s, so the verification fails and the incident escalates."""
    async with world(tmp_path, P95_ONLY) as w:
        await calm(w, 60)
        await w.feed("p95", [6.0, 6.0, 6.0, 0.4] * 15, also=ERRORS)
        await w.feed("p95", [7.5] * 21, also=ERRORS)
        assert w.worker_rollbacks() == 1
        (incident,) = w.runtime.manager.open.values()
        assert incident.state.baselines["p95"] == 0.4
        await w.feed("p95", [6.5] * 30, also=ERRORS)
        (verification,) = await w.events("verification")
        result = verification.data["results"]["p95:baseline"]
        assert result.startswith("failed: p95 was 6.5s"), result
        assert incident.phase == "escalated"


async def test_a_baseline_goal_is_never_laxer_than_the_rule(tmp_path: Path) -> None:
    """The signal was already high before the episode (4.8 s, under the 5 s rule):
    baseline + 20 % would be 5.76 s, laxer than the rule itself. The goal is the
    rule's 5 s: a rollback that leaves p95 at 5.5 s (still breaching) fails."""
    async with world(tmp_path, P95_ONLY) as w:
        await w.feed("p95", [4.8] * 60, also=ERRORS)
        await w.feed("p95", [7.5] * 21, also=ERRORS)
        assert w.worker_rollbacks() == 1
        await w.feed("p95", [5.5] * 30, also=ERRORS)
        (verification,) = await w.events("verification")
        result = verification.data["results"]["p95:baseline"]
        assert result.startswith("failed: p95 was 5.5s"), result
        assert "5s" in result


async def test_the_baseline_comes_from_before_the_correlated_deploy(tmp_path: Path) -> None:
    """p95 at 0.4 s; a deploy; p95 degrades to 3 s (under the rule) for ten minutes,
    then breaches at 7.5 s until the rule fires. The baseline is the 0.4 s from before
    the deploy the rollback moves away from, not the degraded 3 s after it."""
    async with world(tmp_path, P95_ONLY) as w:
        await calm(w, 60)
        w.cloudflare.publish("api", "v4: slower", created_on=w.now + 1)
        await w.feed("p95", [3.0] * 40, also=ERRORS)
        await w.feed("p95", [7.5] * 21, also=ERRORS)
        assert w.worker_rollbacks() == 1
        (incident,) = w.runtime.manager.open.values()
        assert incident.state.baselines["p95"] == 0.4
        await w.feed("p95", [3.0] * 30, also=ERRORS)
        (verification,) = await w.events("verification")
        assert verification.data["results"]["p95:baseline"].startswith("failed: p95 was 3s")
