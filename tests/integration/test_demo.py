"""The demo's five scenarios end with the expected outcome (virtual time: seconds each),
judged strictly: no failed action, no logged error or traceback, no rule blind after the
warm-up (issue 10, defect 5)."""

from __future__ import annotations

import pytest

from watchdog.demo.main import run_demo
from watchdog.demo.scenarios import SCENARIOS


@pytest.mark.integration
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_demo_scenario_reaches_its_expected_outcome(
    scenario: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each scenario, run through the real daemon on loopback, judges itself PASS."""
    code = await run_demo(scenario, virtual_time=True)
    out = capsys.readouterr().out
    assert "what went wrong" not in out, out[out.find("what went wrong") :]
    assert code == 0
    assert f"PASS: {scenario}" in out
    assert "FAIL" not in out
