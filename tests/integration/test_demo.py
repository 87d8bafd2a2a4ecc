"""The demo's five scenarios end with the expected outcome (virtual time: seconds each)."""

from __future__ import annotations

import pytest

from watchdog.demo import SCENARIOS, run_demo


@pytest.mark.integration
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_demo_scenario_reaches_its_expected_outcome(
    scenario: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each scenario, run through the real daemon on loopback, judges itself PASS."""
    assert await run_demo(scenario, virtual_time=True) == 0
    out = capsys.readouterr().out
    assert f"PASS: {scenario}" in out
    assert "FAIL" not in out
