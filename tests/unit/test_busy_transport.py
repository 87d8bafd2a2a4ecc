"""The virtual-time transport hands the client an unread response, so ``elapsed`` is
set as over the network (the probe read ``elapsed`` and raised on every sample under
``demo --virtual-time``: issue 10, defect 5)."""

from __future__ import annotations

import httpx

from tests.recorder import recorder
from watchdog.clock import AutoClock
from watchdog.demo.transport import BusyTransport


async def test_elapsed_is_set_through_the_busy_transport() -> None:
    async with recorder(b"healthy") as (_, server):
        transport = BusyTransport(AutoClock(0.0))
        async with httpx.AsyncClient(transport=transport) as http:
            response = await http.get(f"{server.url}/health")
    assert response.text == "healthy"
    assert response.elapsed.total_seconds() >= 0.0
