"""The ``canary`` scenario: a gradual deployment of a bad Worker version.

v3 goes to 10 % of the Worker's traffic and throws on a quarter of its requests; the
whole app's error rate hardly moves (10 % of 25 % is 2.5 %, under the 5 % rule). The
Worker's front door (``WorkerEdge``) routes 20 requests a second by the live split
and its telemetry arrives 5 s late; the canary rule compares v3 with v2 per version.
A ramp would take v3 to 100 % after ``RAMP_AFTER_S``: the watchdog must have deployed
100 % of v2 before that, marked v3 rolled away from in the version ledger, purged and
verified.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from watchdog.clock import Clock
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour, WorkerEdge
from watchdog.demo.view import Timeline
from watchdog.run.runtime import Runtime


class Demo(Protocol):
    """What this scenario uses of ``scenarios.Demo`` (which registers it: no cycle)."""

    clock: Clock
    cf: FakeCloudflare
    runtime: Runtime
    timeline: Timeline
    notes: dict[str, Any]
    good_version: str
    bad_version: str | None

    def now(self) -> float: ...
    def events(self, kind: str) -> list[float]: ...
    def worker_rollbacks(self) -> int: ...
    def pages_rollbacks(self) -> int: ...


SCRIPT = "demo-api"
EDGE_RPS = 20
RAMP_AFTER_S = 75.0
TELEMETRY_DELAY_S = 5.0
BAD = Behaviour(error_ratio=0.25, wall_ms=60.0)
GOOD = Behaviour(error_ratio=0.002, wall_ms=40.0)


async def _edge_traffic(demo: Demo, edge: WorkerEdge) -> None:
    while True:
        edge.simulate(demo.now(), EDGE_RPS)
        await demo.clock.sleep(1.0)


async def _ramp(demo: Demo, new: str) -> None:
    """The deployer's next step, unless the split is gone by then."""
    await demo.clock.sleep(RAMP_AFTER_S)
    if any(v == new for v, _ in demo.cf.live_versions(SCRIPT)):
        demo.cf.deploy(SCRIPT, [(new, 100.0)], "ramp v3 to 100%")
        demo.timeline.add(demo.now(), "ramp: v3 promoted to 100% (the split was never judged)")


async def _ledger_watch(demo: Demo, new: str) -> None:
    """Show when the version ledger marks v3 rolled away from (never deployed again)."""
    while True:
        for entry in await demo.runtime.store.ledger("worker"):
            if entry.version == new and entry.rolled_away:
                demo.timeline.add(
                    demo.now(), f"ledger: v3 rolled away from ({entry.rolled_away_why})"
                )
                return
        await demo.clock.sleep(1.0)


async def act(demo: Demo) -> None:
    old = demo.good_version
    new = demo.cf.upload_version(SCRIPT, "v3: new checkout flow")
    demo.cf.telemetry.delay_s = TELEMETRY_DELAY_S
    edge = demo.cf.edge(SCRIPT)
    edge.behaviours.update({new: BAD, old: GOOD})
    demo.cf.deploy(SCRIPT, [(new, 10.0), (old, 90.0)], "canary v3 at 10%")
    demo.bad_version = new
    demo.timeline.add(demo.now(), "deploy: v3 at 10% of the Worker's traffic (the bad one)")
    demo.notes["edge-traffic"] = asyncio.create_task(_edge_traffic(demo, edge))
    demo.notes["ramp"] = asyncio.create_task(_ramp(demo, new))
    demo.notes["ledger"] = asyncio.create_task(_ledger_watch(demo, new))


def judge(demo: Demo) -> tuple[bool, str]:
    """One Worker rollback to 100 % of v2 while v3 was at 10 %, v3 never promoted,
    the rollback verified and the incident resolved."""
    live = demo.cf.live_versions(SCRIPT)
    promoted = bool(demo.events("ramp"))
    detected = [t for _, t in demo.timeline.entries if t.startswith("incident: detected")]
    at_ten = any("at 10%" in text for text in detected)
    rolled = any(
        text.startswith("incident: rollback_finished")
        and f"{(demo.bad_version or '')[:8]} → {demo.good_version[:8]}" in text
        for _, text in demo.timeline.entries
    )
    verified = bool(demo.events("incident: verification"))
    resolved = bool(demo.events("incident: resolved"))
    away = bool(demo.events("ledger: v3 rolled away from"))
    ok = (
        demo.worker_rollbacks() == 1
        and demo.pages_rollbacks() == 0
        and live == [(demo.good_version, 100.0)]
        and not promoted
        and at_ten
        and rolled
        and away
        and verified
        and resolved
    )
    return ok, (
        f"Worker rollbacks {demo.worker_rollbacks()} (expected 1), Pages "
        f"{demo.pages_rollbacks()} (expected 0); live {live}; caught at 10% {at_ten}; "
        f"v3 → v2 {rolled}; v3 rolled away from in the ledger {away}; promoted {promoted} "
        f"(expected never); verified {verified}, "
        f"resolved {resolved}"
    )
