"""After a restart or an election: each active ramp reconciled with what is live.

The choice (README "Ramps"): the ramp's owner is the daemon, and the store outlives
it, so a new process takes the ramp over when the state is clear, and goes back to
100 % of the old version when it is not.

- A step journalled as intent is finished by reading what is live: the split it
  asked for is live (posted before the crash) → done, adopted; the deployment it
  started from is still live (never posted) → failed, nothing adopted, and a revert
  (an operator's abort, an unclear state) is then carried out again: going back to
  100 % of old is what was decided, and the ramp must not resume past it; anything
  else is unclear.
- Clear (live is what the ramp last made, or the old version before its first
  step): the ramp resumes, its soak where it was (the split kept serving and the
  analytics kept counting while the daemon was down; the next step still waits for
  the canary rules to pass on data read after the restart).
- 100 % of the old or of the new version, or a version that is neither: the ramp
  ends without touching anything (the canary's rollback, a promotion, a person).
- Unclear (old and new at a split the journal does not account for): back to 100 %
  of the old version (journalled), the ramp ends ``reverted`` saying why.
"""

from __future__ import annotations

import structlog

from watchdog.errors import ActionError, StoreError
from watchdog.run.ramp import Ramps
from watchdog.run.ramp_steps import Live, classify, describe_live
from watchdog.store.base import ActionRecord, RampRecord

log = structlog.get_logger("watchdog.run.ramp_restore")


async def restore(ramps: Ramps) -> None:
    """Reconcile and resume every active ramp in the store."""
    for ramp in await ramps.store.ramps(active_only=True):
        try:
            await reconcile(ramps, ramp)
        except (ActionError, StoreError) as exc:
            # What is live cannot be read: resume anyway; the ramp's own tick re-reads
            # it before any move, and every move is a compare-and-swap.
            log.warning("ramp not reconciled yet", ramp=ramp.id, error=str(exc))
        if ramp.active:
            ramps.run(ramp)


async def reconcile(ramps: Ramps, ramp: RampRecord) -> None:
    """Bring ``ramp`` in line with its journal and with what is live."""
    live = await ramps.read_live(ramp.target)
    if live is None:
        await ramps.save(ramp, "failed", f"{ramp.target} has no deployment after a restart")
        return
    rows = await ramps.store.actions(ramp.id)
    last = max(rows, key=lambda r: int(r.key.split("/")[1].removeprefix("ramp-"))) if rows else None
    if last is not None and last.state == "intent":
        unposted = await _finish_intent(ramps, ramp, last, live.id, sorted(live.versions))
        if unposted and last.kind == "ramp-revert":
            phase, why = str(last.intent.get("phase", "aborted")), str(last.intent["why"])
            log.warning("ramp revert not posted before a restart: reverting", ramp=ramp.id)
            await ramps.revert(ramp, live, phase, why)
            return
    elif (
        last is not None
        and last.state == "done"
        and _made(last) == live.id
        and ramp.deployment != live.id
    ):
        _adopt(ramps, ramp, last)  # the move was done, the ramp's own record not yet saved
    if not ramp.active:  # its last move (to 100 %, or back) was done before the crash
        await ramps.save(ramp, ramp.phase, ramp.why)
        return
    seen = classify(ramp, live)
    if seen is Live.OURS:
        await ramps.save(ramp, ramp.phase, f"resumed after a restart ({describe_live(live)})")
        return
    if seen is not Live.MOVED:
        await ramps.live_for(ramp)  # ends it, touching nothing
        return
    why = (
        f"state unclear after a restart: live is {describe_live(live)}, the ramp's journal "
        f"says {ramp.deployment or 'nothing'}; back to 100% of {ramp.old}"
    )
    log.warning("ramp unclear after restart: reverting", ramp=ramp.id, live=live.id)
    await ramps.revert(ramp, live, "reverted", why)


def _made(row: ActionRecord) -> str:
    return str(row.outcome.get("data", {}).get("deployment_id", ""))


def _adopt(ramps: Ramps, ramp: RampRecord, row: ActionRecord) -> None:
    if row.kind == "ramp-revert":
        ramp.deployment = _made(row)
        ramp.phase, ramp.why = str(row.intent.get("phase", "aborted")), str(row.intent["why"])
    else:
        ramps.adopt(ramp, int(row.intent["step"]), _made(row))
        if ramp.steps[ramp.step] >= 100:
            ramp.phase, ramp.why = "done", f"{ramp.new} serves 100% ({row.intent['why']})"


async def _finish_intent(
    ramps: Ramps,
    ramp: RampRecord,
    row: ActionRecord,
    live_id: str,
    live_versions: list[tuple[str, float]],
) -> bool:
    """A move journalled as intent, never finished: was it posted? True when it
    provably was not (the deployment it started from is still live)."""
    asked = sorted((str(v), float(p)) for v, p in row.intent["versions"])
    now = ramps.clock.now()
    if asked == live_versions:
        detail = f"completed before a restart: deployment {live_id} is live"
        outcome = {"ok": True, "detail": detail, "data": {"deployment_id": live_id}}
        await ramps.store.journal_outcome(row.key, "done", outcome, now)
        _adopt(ramps, ramp, ActionRecord(**{**row.__dict__, "outcome": outcome}))
    elif live_id == row.intent["from_deployment"]:
        detail = "not posted before a restart: the deployment it started from is still live"
        outcome = {"ok": False, "detail": detail, "data": {}}
        await ramps.store.journal_outcome(row.key, "failed", outcome, now)
        return True
    return False
