"""Defects the ramp history model (test_ramp_histories.py) found, each pinned by a
focused test on the scenario world of tests/scenarios/ramp_support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.ramp_support import ramp_world
from watchdog.run.ramp_steps import RampError
from watchdog.store.base import LedgerEntry


async def test_a_ramp_never_brings_back_a_version_rolled_away_from(tmp_path: Path) -> None:
    """Shrunk history: ramp a bad version; the canary rolls it back (100 % of old, the
    ledger marks it rolled away from); ramp the same version again: the first step
    deployed it at 10 % (the ramp never read the ledger), also after a restart, whose
    fresh engine has forgotten the regression."""
    async with ramp_world(tmp_path) as w:
        w.error_rates[w.new] = 0.2
        ramp = await w.ramps.start(None, w.new, "10%,100%", 60.0, "ana")
        await w.until_live([(w.new, 10.0), (w.old, 90.0)])
        # The canary rule's rollback, as the incident manager does it: 100 % of the old
        # version, and the ledger's mark.
        w.fake.deploy("api", [(w.old, 100)], "rolled back by the canary rule")
        away = LedgerEntry("worker", w.new, rolled_away_at=w.clock.now())
        away.rolled_away_why = "rolled back by the watchdog in incident i-1"
        await w.store.save_ledger([away])
        await w.until_phase(ramp.id, "rolled-back")
        for restarted in (False, True):
            if restarted:
                await w.restart()
            with pytest.raises(RampError, match="rolled away from"):
                await w.ramps.start(None, w.new, "10%,100%", 60.0, "ana")
            await w.clock.sleep(60)
            assert w.live() == [(w.old, 100.0)]


async def test_a_promote_after_a_restart_does_not_lift_a_regressed_version(
    tmp_path: Path,
) -> None:
    """Shrunk history: a bad version at 10 %; the canary judges it a regression, but its
    rollback does not land (Cloudflare fails the POSTs); the daemon restarts; the
    operator promotes while the errors pause. Before the restart promote was refused
    ("not promoting: ... regressed"); after it the fresh engine has no judgement yet,
    so promote moves the bad version to 50 %. The ramp's record still says why it
    stopped."""
    async with ramp_world(tmp_path) as w:
        w.error_rates[w.new] = 0.2
        ramp = await w.ramps.start(None, w.new, "10%,50%,100%", 60.0, "ana")
        await w.until_live([(w.new, 10.0), (w.old, 90.0)])
        await w.clock.sleep(60)
        assert "regressed" in (await w.ramp(ramp.id)).why
        with pytest.raises(RampError, match="not promoting"):
            await w.ramps.promote(ramp.id, "bo")
        # The errors pause (a bad path rarely hit), so no new window can re-judge it.
        w.error_rates[w.new] = 0.005
        await w.restart()
        with pytest.raises(RampError, match="regress"):
            await w.ramps.promote(ramp.id, "bo")
        assert sorted(w.live()) == sorted([(w.new, 10.0), (w.old, 90.0)])
