"""The ``ramp`` scenario: the watchdog owns two gradual deployments of the Worker.

The operator types ``rollback-watchdog ramp start --version V --steps 10%,50%,100%
--soak 15s`` (the real CLI, a subprocess, through the watchdog's control API) twice:

1. v3, a good version: the watchdog moves the split 10 % → 50 % → 100 %, each step
   after its soak and only while the canary rule has seen v3's traffic and found no
   regression; the ramp ends ``done``.
2. v4, a bad version (a quarter of its requests throw): at 10 % the canary rule fires,
   its rollback deploys 100 % of v3, purges and verifies; the ramp sees it and ends
   ``rolled-back``, never having gone past 10 %.

The Worker's front door (``WorkerEdge``) routes 20 requests a second by the live split
into the local telemetry, delivered 5 s late, as in the ``canary`` scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any, Protocol

from watchdog.clock import AutoClock, Clock
from watchdog.demo.canary import BAD, EDGE_RPS, GOOD, SCRIPT, TELEMETRY_DELAY_S
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_telemetry import WorkerEdge
from watchdog.demo.view import Timeline
from watchdog.errors import WatchdogError
from watchdog.run.runtime import Runtime
from watchdog.store.base import RampRecord

STEPS = "10%,50%,100%"
SOAK = "15s"  # of evidence: with the telemetry 5 s late, each step lasts about 20 s
CLI_TIMEOUT_S = 60.0


class Demo(Protocol):
    """What this scenario uses of ``scenarios.Demo`` (which registers it: no cycle)."""

    clock: Clock
    cf: FakeCloudflare
    runtime: Runtime
    timeline: Timeline
    notes: dict[str, Any]
    api_url: str
    good_version: str
    bad_version: str | None

    def now(self) -> float: ...
    def events(self, kind: str) -> list[float]: ...


class DemoCLIError(WatchdogError):
    """The ``ramp start`` command failed: its exit code and what it printed."""


async def ramp_start(demo: Demo, version: str) -> dict[str, Any]:
    """``rollback-watchdog ramp start`` as an operator runs it: a process of its own."""
    argv = [sys.executable, "-m", "watchdog", "ramp", "start", "--version", version]
    argv += ["--steps", STEPS, "--soak", SOAK, "--url", demo.api_url, "--author", "ana"]
    argv += ["-o", "json"]
    clock = demo.clock
    # Virtual time waits for the command, as it does for any loopback exchange.
    hold = clock.busy() if isinstance(clock, AutoClock) else contextlib.nullcontext()
    with hold:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    if process.returncode != 0:
        raise DemoCLIError(f"ramp start exited {process.returncode}: {err.decode()[-500:]}")
    answer: dict[str, Any] = json.loads(out)
    return answer


async def _edge_traffic(demo: Demo, edge: WorkerEdge) -> None:
    while True:
        edge.simulate(demo.now(), EDGE_RPS)
        await demo.clock.sleep(1.0)


async def _follow(demo: Demo, ramp_id: str, name: str) -> RampRecord:
    """Show each step the ramp takes until it ends; the steps it reached."""
    shown: tuple[str, int] | None = None
    reached: list[float] = demo.notes.setdefault(f"reached-{name}", [])
    while True:
        (ramp,) = [r for r in await demo.runtime.store.ramps() if r.id == ramp_id]
        if (ramp.phase, ramp.step) != shown:
            shown = (ramp.phase, ramp.step)
            pct = ramp.steps[ramp.step] if ramp.step >= 0 else 0.0
            if ramp.step >= 0 and (not reached or reached[-1] != pct):
                reached.append(pct)
            demo.timeline.add(demo.now(), f"ramp {name}: {ramp.phase} at {pct:g}%: {ramp.why}")
        if not ramp.active:
            return ramp
        await demo.clock.sleep(1.0)


async def _story(demo: Demo, good: str, bad: str) -> None:
    for name, version in (("v3", good), ("v4", bad)):
        started = await ramp_start(demo, version)
        demo.timeline.add(
            demo.now(),
            f"operator: rollback-watchdog ramp start --version {name} --steps {STEPS} "
            f"--soak {SOAK} (ramp {started['id']})",
        )
        ended = await _follow(demo, str(started["id"]), name)
        demo.notes[f"ended-{name}"] = ended.phase


async def act(demo: Demo) -> None:
    old = demo.good_version
    good = demo.cf.upload_version(SCRIPT, "v3: faster search")
    bad = demo.cf.upload_version(SCRIPT, "v4: new checkout flow")
    demo.cf.telemetry.delay_s = TELEMETRY_DELAY_S
    edge = demo.cf.edge(SCRIPT)
    edge.behaviours.update({old: GOOD, good: GOOD, bad: BAD})
    demo.bad_version = bad
    demo.notes["good"] = good
    demo.notes["edge-traffic"] = asyncio.create_task(_edge_traffic(demo, edge))
    demo.notes["story"] = asyncio.create_task(_story(demo, good, bad))


def done(demo: Demo) -> bool:
    story = demo.notes.get("story")
    if isinstance(story, asyncio.Task) and story.done():
        return story.cancelled() or story.exception() is not None or _resolved(demo)
    return False


def _resolved(demo: Demo) -> bool:
    return bool(demo.events("incident: resolved"))


def judge(demo: Demo) -> tuple[bool, str]:
    """v3 ramped 10 → 50 → 100 % and done; v4 never past 10 %, rolled back to 100 % of
    v3 by the canary rule (verified, resolved); v3 serves everything at the end."""
    story = demo.notes.get("story")
    failed = ""
    if isinstance(story, asyncio.Task) and story.done() and not story.cancelled():
        failed = str(story.exception() or "")
    good = str(demo.notes.get("good", ""))
    v3, v4 = demo.notes.get("reached-v3", []), demo.notes.get("reached-v4", [])
    ends = (demo.notes.get("ended-v3"), demo.notes.get("ended-v4"))
    live = demo.cf.live_versions(SCRIPT)
    rolled = any(
        text.startswith("incident: rollback_finished")
        and f"{(demo.bad_version or '')[:8]} → {good[:8]}" in text
        for _, text in demo.timeline.entries
    )
    verified = bool(demo.events("incident: verification"))
    ok = (
        not failed
        and v3 == [10.0, 50.0, 100.0]
        and v4 == [10.0]
        and ends == ("done", "rolled-back")
        and live == [(good, 100.0)]
        and rolled
        and verified
        and _resolved(demo)
    )
    return ok, (
        f"v3 went through {v3} (expected [10, 50, 100]) and ended {ends[0]} (expected "
        f"done); v4 reached {v4} (expected [10]) and ended {ends[1]} (expected "
        f"rolled-back); v4 → v3 rolled back {rolled}, verified {verified}, resolved "
        f"{_resolved(demo)}; live {live}" + (f"; the story failed: {failed}" if failed else "")
    )
