"""A ramp's step and a rollback of the same Worker never cross in flight: each reads
what is live and posts under one lock per script, so a rollback that lands while a
step's POST is still on its way is not overwritten by that step (the step's
compare-and-swap then sees the rollback, or the rollback sees the step and undoes it).
The local Cloudflare API on a real loopback socket; the step's POST is held at the
API by an event the test opens."""

from __future__ import annotations

import asyncio

from tests.helpers import cloudflare_stack
from watchdog.actions.cloudflare_worker import WorkerTarget, live_label
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.model import RollbackPlan
from watchdog.rules.response import WorkerTargetSpec

ACCOUNT = "test-account"
DEPLOYMENTS = f"/accounts/{ACCOUNT}/workers/scripts/api/deployments"


def worker(client: object) -> WorkerTarget:
    spec = WorkerTargetSpec.model_validate({"type": "cloudflare-worker", "script": "api"})
    return WorkerTarget("worker", spec, ACCOUNT, client)  # type: ignore[arg-type]


async def test_a_rollback_while_a_ramp_step_is_in_flight_is_not_overwritten() -> None:
    opened, arrived = asyncio.Event(), asyncio.Event()

    async def held(_seconds: float) -> None:  # the fake's "delay": until the test opens it
        arrived.set()
        await opened.wait()

    fake = FakeCloudflare(sleep=held)
    old = fake.publish("api", "v1")
    new = fake.upload_version("api", "v2")
    split = fake.deploy("api", [(new, 10), (old, 90)], "ramp step 1")
    async with cloudflare_stack(fake) as stack:
        # Two target objects, as before and after a reload: the lock is per script.
        ramp_side, incident_side = worker(stack.client), worker(stack.client)
        frm = live_label(await incident_side.deployments())
        fake.delay("POST", DEPLOYMENTS, 1.0)  # the step's POST waits before it applies
        step = asyncio.create_task(
            ramp_side.set_split(split, [(new, 50), (old, 50)], "ramp step 2")
        )
        await arrived.wait()
        plan = RollbackPlan(target="worker", from_version=frm, to_version=old, reason="canary")
        rollback = asyncio.create_task(incident_side.rollback(plan))
        # Without the lock the rollback lands now, before the step it raced.
        await asyncio.wait({rollback}, timeout=1.0)
        opened.set()
        await step
        result = await rollback
    assert result.ok, result.detail
    assert fake.live_versions("api") == [(old, 100.0)], "the step overwrote the rollback"
