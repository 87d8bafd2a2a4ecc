"""An httpx transport that keeps a virtual clock still while loopback I/O is under way."""

from __future__ import annotations

import httpx

from watchdog.clock import AutoClock, Clock


class BusyTransport(httpx.AsyncBaseTransport):
    """Marks the virtual clock busy for each HTTP exchange, so virtual time does not
    run ahead of loopback I/O."""

    def __init__(self, clock: AutoClock) -> None:
        self.clock = clock
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with self.clock.busy():
            response = await self.inner.handle_async_request(request)
            try:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        # A fresh, unread response over the raw bytes: the client reads and closes it
        # as it would the network's (decoding, ``elapsed``); one already read never
        # gets its ``elapsed`` set, which broke the probe under virtual time.
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def busy_transport(clock: Clock) -> httpx.AsyncBaseTransport | None:
    return BusyTransport(clock) if isinstance(clock, AutoClock) else None
