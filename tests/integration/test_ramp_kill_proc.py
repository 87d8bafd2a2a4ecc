"""Issue 16's "a killed daemon during a ramp leaves no split behind", with the real
daemon process SIGKILLed at the ramp's riskiest moments (tests/integration/
ramp_proc.py; bench/ramp_kill.py runs 100 seeded kills over every phase). After the
restart the ramp must reconcile, then end on one version at 100 %, the one its end
names; an operator's abort is never undone, a bad version never promoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ramp_proc import Stall, kill_once

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("phase", "stall", "ends"),
    [
        # The first split applied at Cloudflare, the daemon dead before the answer:
        # the restart adopts it and the ramp goes on to 100 % of new.
        ("first-split-unanswered", "apply_then_stall", "done"),
        # An operator's abort journalled, its POST never applied.
        ("abort", "delay", "aborted"),
        # A bad version at 10 %: the canary's rollback in flight at the kill.
        ("canary-rollback", "delay", "rolled-back"),
    ],
)
async def test_a_killed_daemon_leaves_no_split_behind(
    tmp_path: Path, phase: str, stall: Stall, ends: str
) -> None:
    run = await kill_once(tmp_path, 1, phase, stall, soak_s=0.5)
    assert run.problems == [], run
    assert run.end is not None
    assert run.end.phase == ends, run
