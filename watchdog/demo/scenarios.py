"""The demo's scenarios: what each one breaks, when it is done, and how it is judged;
and the ``Demo`` they act on (the local app, Cloudflare API, receivers and watchdog)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from watchdog import strict_json
from watchdog.clock import Clock
from watchdog.demo import canary, ramp
from watchdog.demo.fakes.app import AppState, FakeApp, LatencyModel
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.demo.record import RunRecord
from watchdog.demo.view import Timeline
from watchdog.run.runtime import Runtime

TOKEN = "demo-cloudflare-token"  # noqa: S105 (the local fake's own token)
# PagerDuty's integration keys are 32 characters; the local receiver checks it.
DEMO_ROUTING_KEY = "demo-routing-key-0123456789abcde"
ACCOUNT = "demo-account"
WORKER = "/accounts/{account}/workers/scripts/{script}/deployments"
PAGES_ROLLBACK = "/accounts/{account}/pages/projects/{project}/deployments/{id}/rollback"

GOOD = AppState("v2", error_ratio=0.002, latency=LatencyModel(0.08, 0.4))
BAD_ERRORS = AppState("v3", error_ratio=0.25, latency=LatencyModel(0.1, 0.6))
BAD_LATENCY = AppState("v3", error_ratio=0.002, latency=LatencyModel(2.5, 7.5))
DB_DOWN = AppState("v2", error_ratio=0.4, latency=LatencyModel(0.08, 0.4), healthy=False)


@dataclass
class Demo:
    clock: Clock
    app: FakeApp
    cf: FakeCloudflare
    receivers: Receivers
    runtime: Runtime
    timeline: Timeline
    api_url: str
    http: httpx.AsyncClient
    bad_version: str | None = None
    good_version: str = ""
    follow_worker: bool = False
    bad_state: AppState = BAD_ERRORS
    notes: dict[str, Any] = field(default_factory=dict)
    record: RunRecord = field(default_factory=lambda: RunRecord("", False))

    def now(self) -> float:
        return self.clock.now()

    def worker_rollbacks(self) -> int:
        # Create-deployment POSTs through the API: the bad deploy is arranged directly.
        return self.cf.count("POST", WORKER)

    def pages_rollbacks(self) -> int:
        return self.cf.count("POST", PAGES_ROLLBACK)

    def events(self, kind: str) -> list[float]:
        return [t for t, text in self.timeline.entries if text.startswith(kind)]

    def ship_bad_deploy(self, state: AppState) -> None:
        version = self.cf.upload_version("demo-api", "v3: new checkout flow")
        self.cf.deploy("demo-api", [(version, 100.0)], "deploy v3")
        self.cf.add_pages_deployment("demo-site", commit_message="v3: new checkout flow")
        self.bad_version = version
        self.bad_state = state
        self.follow_worker = True
        self.app.deploy(
            state.version,
            error_ratio=state.error_ratio,
            latency=state.latency,
            healthy=state.healthy,
        )
        self.timeline.add(self.now(), "deploy: shipped v3 to the Worker and Pages (the bad one)")


@dataclass
class Scenario:
    name: str
    description: str
    expected: str
    act: Callable[[Demo], Awaitable[None]]
    done: Callable[[Demo], bool]
    judge: Callable[[Demo], tuple[bool, str]]
    may_blind: frozenset[str] = frozenset()  # rules this scenario expects to go blind


async def _bad_deploy(demo: Demo) -> None:
    demo.ship_bad_deploy(BAD_ERRORS)


async def _slow_deploy(demo: Demo) -> None:
    demo.ship_bad_deploy(BAD_LATENCY)


async def _outage(demo: Demo) -> None:
    demo.app.deploy(DB_DOWN.version, error_ratio=DB_DOWN.error_ratio, healthy=False)
    demo.timeline.add(demo.now(), "outage: the database went away (no deploy involved)")


async def _flapping(demo: Demo) -> None:
    demo.ship_bad_deploy(AppState("v3", error_ratio=0.002))
    demo.follow_worker = False

    async def flap() -> None:
        high = False
        while True:
            high = not high
            demo.app.deploy("v3", error_ratio=0.09 if high else 0.0)
            await demo.clock.sleep(2.0)

    demo.notes["flapper"] = asyncio.create_task(flap())
    demo.timeline.add(demo.now(), "flapping: v3's error rate swings above and below 5% every 2s")


async def _silenced(demo: Demo) -> None:
    response = await demo.http.post(
        f"{demo.api_url}/api/v1/silences",
        content=strict_json.dumpb(
            {
                # Matchers that name what is loaded: a silence of everything needs an
                # explicit "all", and a matcher that meets nothing is refused.
                "matchers": ["target=~worker|frontend"],
                "duration": "1h",
                "created_by": "alice",
                "comment": "migrating the database by hand",
            }
        ),
        headers=strict_json.JSON_HEADERS,
    )
    response.raise_for_status()
    demo.timeline.add(
        demo.now(),
        "silence: alice silenced the Worker's and Pages' rollbacks for 1h "
        "(migrating the database by hand)",
    )
    demo.ship_bad_deploy(BAD_ERRORS)


def _resolved(demo: Demo) -> bool:
    return bool(demo.events("incident: resolved"))


def _judge_rollback(workers: int, pages: int) -> Callable[[Demo], tuple[bool, str]]:
    def judge(demo: Demo) -> tuple[bool, str]:
        rolled_workers = demo.worker_rollbacks()
        rolled_pages = demo.pages_rollbacks()
        verified = bool(demo.events("incident: verification"))
        ok = (rolled_workers, rolled_pages) == (workers, pages) and verified and _resolved(demo)
        return ok, (
            f"Worker rollbacks {rolled_workers} (expected {workers}), Pages rollbacks "
            f"{rolled_pages} (expected {pages}), verified {verified}, "
            f"resolved {_resolved(demo)}"
        )

    return judge


def _judge_no_rollback(reason: str) -> Callable[[Demo], tuple[bool, str]]:
    def judge(demo: Demo) -> tuple[bool, str]:
        rollbacks = demo.worker_rollbacks() + demo.pages_rollbacks()
        matched = any(reason in text for _, text in demo.timeline.entries)
        ok = rollbacks == 0 and matched
        return ok, f"rollbacks {rollbacks} (expected 0); saw '{reason}': {matched}"

    return judge


def _judge_never_fired(rule: str) -> Callable[[Demo], tuple[bool, str]]:
    def judge(demo: Demo) -> tuple[bool, str]:
        rollbacks = demo.worker_rollbacks() + demo.pages_rollbacks()
        fired = any(
            text.startswith(f"rule: {rule}") and text.endswith("firing")
            for _, text in demo.timeline.entries
        )
        pending = sum(
            1
            for _, text in demo.timeline.entries
            if text.startswith(f"rule: {rule}") and text.endswith("pending")
        )
        incidents = len(demo.events("incident: detected"))
        ok = rollbacks == 0 and not fired and incidents == 0 and pending > 0
        return ok, (
            f"rollbacks {rollbacks} (expected 0); {rule} went pending {pending} times "
            f"and fired {'yes' if fired else 'never'}; incidents {incidents}"
        )

    return judge


def _settled_after(kind: str, seconds: float) -> Callable[[Demo], bool]:
    def done(demo: Demo) -> bool:
        times = demo.events(kind)
        return bool(times) and demo.now() - demo.timeline.started - times[0] >= seconds

    return done


def _quiet_for(seconds: float) -> Callable[[Demo], bool]:
    def done(demo: Demo) -> bool:
        start = demo.timeline.first("flapping")
        return start is not None and demo.now() - demo.timeline.started - start >= seconds

    return done


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "bad-deploy",
            "a deploy that makes 25% of requests fail",
            "the Worker and Pages rolled back once, caches purged, verified, all-clear",
            _bad_deploy,
            _resolved,
            _judge_rollback(1, 1),
        ),
        Scenario(
            "slow-p95",
            "a deploy that makes p95 latency 7.5s",
            "the Worker rolled back once (slow-p95 names only the Worker), verified",
            _slow_deploy,
            _resolved,
            _judge_rollback(1, 0),
        ),
        Scenario(
            "outage-without-deploy",
            "the database goes down; nothing was deployed",
            "no rollback (no recent deploy explains it); escalated to humans",
            _outage,
            _settled_after("incident: escalated", 5.0),
            _judge_no_rollback("no recent deploy explains the breach"),
        ),
        Scenario(
            "flapping",
            "the error rate swings around 5% every 2 seconds",
            "no rollback: the breach never holds for the rule's 10s",
            _flapping,
            _quiet_for(45.0),
            _judge_never_fired("error-rate"),
        ),
        Scenario(
            "silenced",
            "a bad deploy while someone works on production by hand",
            "no rollback; 'would have rolled back (silenced by alice ...)' recorded",
            _silenced,
            _settled_after("incident: would_rollback", 3.0),
            _judge_no_rollback("silenced by alice"),
        ),
        Scenario(
            "canary",
            "a new Worker version at 10% of traffic fails a quarter of its requests",
            "caught during the split: 100% of the old version deployed before the ramp's "
            "100% step, caches purged, verified",
            canary.act,
            _resolved,
            canary.judge,
        ),
        Scenario(
            "ramp",
            "the watchdog ramps a good Worker version, then a bad one (rollback-watchdog ramp)",
            "v3 moved 10% → 50% → 100% while the canary passed; v4 stopped at 10%: "
            "rolled back to 100% of v3, verified",
            ramp.act,
            ramp.done,
            ramp.judge,
        ),
    )
}
