"""How long a full playbook takes against the slowest single chain and the sequential sum.

The local Cloudflare API and the notification receivers run on loopback with a
latency injected per endpoint. The full playbook rolls back the Worker and the Pages
project, purges the zone and sends three notifications (Slack, PagerDuty,
Statuspage). Each chain is also timed alone:

- worker chain: read deployments and versions, create the deployment, then the purge;
- pages chain: read project and deployments, POST the rollback, confirm, then the purge;
- each notification alone.

Goal: the full playbook within 1.2x of the slowest chain (it runs them concurrently).

    .venv/bin/python bench/playbook.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from watchdog.actions.cloudflare_api import CloudflareClient
from watchdog.actions.cloudflare_pages import PagesTarget
from watchdog.actions.cloudflare_worker import WorkerTarget
from watchdog.actions.notify.base import Notifier
from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.actions.notify.pagerduty import PagerDutyNotifier
from watchdog.actions.notify.slack import SlackNotifier
from watchdog.actions.notify.statuspage import StatuspageNotifier
from watchdog.actions.playbook import Playbook
from watchdog.actions.purge import ZonePurge
from watchdog.clock import SystemClock
from watchdog.core.decision import Decision, DecisionKind
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.http.server import Request, Response, serve
from watchdog.model import RollbackPlan
from watchdog.rules.response import PagesTargetSpec, WorkerTargetSpec, ZonePurgeSpec
from watchdog.store.sqlite import SQLiteStore

TOKEN = "bench-token"
ACCOUNT = "acct"
W = "/accounts/{account}/workers/scripts/{script}"
P = "/accounts/{account}/pages/projects/{project}"
CLOUDFLARE_LATENCY = {
    ("GET", f"{W}/deployments"): 0.12,
    ("GET", f"{W}/versions"): 0.08,
    ("POST", f"{W}/deployments"): 0.30,
    ("GET", P): 0.08,
    ("GET", f"{P}/deployments"): 0.12,
    ("POST", f"{P}/deployments/{{id}}/rollback"): 0.35,
    ("POST", "/zones/{zone}/purge_cache"): 0.20,
}
RECEIVER_LATENCY = {"/slack": 0.25, "/pagerduty": 0.30, "/statuspage": 0.20}


@dataclass
class World:
    playbook: Playbook
    plans: list[RollbackPlan]
    event: IncidentEvent


def _delay_receivers(receivers: Receivers) -> None:
    async def slow(request: Request) -> Response | None:
        for prefix, seconds in RECEIVER_LATENCY.items():
            if request.path.startswith(prefix):
                await asyncio.sleep(seconds)
        return None

    receivers.router.middleware.insert(0, slow)


async def build(
    http: httpx.AsyncClient, cf_url: str, rx_url: str, cf: FakeCloudflare, store: SQLiteStore
) -> World:
    clock = SystemClock()
    client = CloudflareClient(http, f"{cf_url}/client/v4", SecretStr(TOKEN), clock)
    worker = WorkerTarget(
        "worker", WorkerTargetSpec(type="cloudflare-worker", script="api"), ACCOUNT, client
    )
    pages = PagesTarget(
        "frontend", PagesTargetSpec(type="cloudflare-pages", project="site"), ACCOUNT, client
    )
    zone = ZonePurge(
        "zone", ZonePurgeSpec(type="cloudflare-zone", zone="z1", everything=True), client
    )
    notifiers: dict[str, Notifier] = {
        "slack": SlackNotifier(
            "slack", SecretStr(Receivers.slack_webhook_url(rx_url)), http, clock
        ),
        "pagerduty": PagerDutyNotifier(
            "pagerduty", SecretStr("k" * 32), http, clock, url=Receivers.pagerduty_url(rx_url)
        ),
        "statuspage": StatuspageNotifier(
            "statuspage",
            "page1",
            SecretStr("sp"),
            http,
            clock,
            component_id="c1",
            url=Receivers.statuspage_url(rx_url),
        ),
    }
    playbook = Playbook(
        {"worker": worker, "frontend": pages}, {"zone": zone}, notifiers, store, clock
    )
    plans = []
    for name in ("worker", "frontend"):
        state = await playbook.targets[name].state()
        assert state.live is not None
        assert state.rollback_to is not None
        plans.append(
            RollbackPlan(
                name,
                state.live.version,
                state.rollback_to.version,
                "bench: error rate 7.2% > 5% for 5m",
            )
        )
    decision = Decision(
        DecisionKind.ROLLBACK,
        "error-rate",
        "critical",
        "error_rate",
        ("worker", "frontend"),
        0.072,
        0.05,
        "above",
        "ratio",
        300.0,
        21,
        clock.now() - 300,
        clock.now(),
        "bench",
    )
    event = IncidentEvent(
        kind=EventKind.OPENED,
        incident_id="bench",
        decision=decision,
        occurred_at=clock.now(),
        status_phase="investigating",
    )
    return World(playbook, plans, event)


def seed(cf: FakeCloudflare) -> None:
    now = time.time()
    for name, age in (("v1", 86400), ("v2", 600)):
        version = cf.upload_version("api", name, created_on=now - age - 60)
        cf.deploy("api", [(version, 100.0)], name, created_on=now - age)
    cf.add_project("site")
    for name, age in (("p1", 86400), ("p2", 600)):
        cf.add_pages_deployment("site", created_on=now - age, commit_message=name)
    for (method, path), seconds in CLOUDFLARE_LATENCY.items():
        cf.set_latency(method, path, seconds)


Step = Callable[[World, str], Awaitable[object]]


async def timed(step: Step) -> float:
    """Time ``step`` on a fresh world (a rollback changes what is live)."""
    cf = FakeCloudflare(token=TOKEN, account_id=ACCOUNT)
    seed(cf)
    receivers = Receivers(statuspage_api_key="sp")
    receivers.statuspage.add_component("c1")
    _delay_receivers(receivers)
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        async with (
            serve(cf.router) as cf_srv,
            serve(receivers) as rx_srv,
            httpx.AsyncClient(timeout=10.0) as http,
        ):
            world = await build(http, cf_srv.url, rx_srv.url, cf, store)
            incident = f"bench-{time.monotonic_ns()}"
            started = time.perf_counter()
            await step(world, incident)
            return time.perf_counter() - started
    finally:
        await store.close()


async def full(world: World, incident: str) -> object:
    notify = world.playbook.notify(world.event, list(world.playbook.notifiers), False)
    outcome = await world.playbook.execute(incident, world.plans, ["zone"], False, notify=notify)
    assert all(r.ok for r in outcome.results), [r.detail for r in outcome.results if not r.ok]
    return outcome


def chain(target: str) -> Step:
    async def run(world: World, incident: str) -> object:
        plan = next(p for p in world.plans if p.target == target)
        result = await world.playbook.rollback_target(incident, plan, False)
        assert result.ok, result.detail
        return await world.playbook.purge(incident, "zone", False)

    return run


def notification(name: str) -> Step:
    async def run(world: World, _: str) -> object:
        (result,) = await world.playbook.notify(world.event, [name], False)
        assert result.ok, result.detail
        return result

    return run


async def main(repeat: int) -> None:
    chains: dict[str, Step] = {
        "worker rollback + purge": chain("worker"),
        "pages rollback + purge": chain("frontend"),
        "slack": notification("slack"),
        "pagerduty": notification("pagerduty"),
        "statuspage": notification("statuspage"),
    }
    alone = {
        name: statistics.median([await timed(step) for _ in range(repeat)])
        for name, step in chains.items()
    }
    whole = statistics.median([await timed(full) for _ in range(repeat)])
    slowest_name = max(alone, key=lambda k: alone[k])
    slowest, total = alone[slowest_name], sum(alone.values())
    print(f"playbook benchmark (median of {repeat}; injected latencies on loopback)")
    for name, seconds in alone.items():
        print(f"  chain {name:26} {seconds * 1000:8.1f} ms")
    print(f"  full playbook                    {whole * 1000:8.1f} ms")
    print(
        f"  slowest chain ({slowest_name}) {slowest * 1000:.1f} ms; sequential sum "
        f"{total * 1000:.1f} ms"
    )
    print(f"  full / slowest chain = {whole / slowest:.2f}x  (goal <= 1.2x)")
    print(f"  full / sequential sum = {whole / total:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
