"""Shared test helpers: an instant clock for retry waits, bounded polling of a condition
in real time (for subprocesses and servers), and the local Cloudflare API served on a
real loopback socket with a client pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from watchdog.actions.cloudflare_api import CloudflareClient
from watchdog.demo.fakes.cloudflare import API_PREFIX, FakeCloudflare
from watchdog.http.client import RetryPolicy
from watchdog.http.server import RunningServer, serve

T0 = 1_790_000_000.0


class InstantClock:
    """A clock whose ``sleep`` returns at once: it advances time by the wait and
    records it in ``sleeps``, so a test can assert the exact waits a retry loop chose."""

    def __init__(self, start: float = T0) -> None:
        self._now = start
        self._start = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)


async def until(
    check: Callable[[], object | Awaitable[object]],
    what: str,
    *,
    polls: int,
    every_s: float,
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` (sync or async) until it is true, at most ``polls`` times
    ``every_s`` apart; then fail saying ``what`` never happened (and ``detail()``, such
    as a server's log)."""
    for _ in range(polls):
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(every_s)
    pytest.fail(f"timed out waiting for {what}" + (f"\n{detail()}" if detail else ""))


@dataclass
class CloudflareStack:
    fake: FakeCloudflare
    server: RunningServer
    http: httpx.AsyncClient
    client: CloudflareClient
    clock: InstantClock

    @property
    def base_url(self) -> str:
        return self.server.url + API_PREFIX


@contextlib.asynccontextmanager
async def cloudflare_stack(
    fake: FakeCloudflare | None = None,
    *,
    token: str | None = None,
    clock: InstantClock | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float | None = None,
) -> AsyncIterator[CloudflareStack]:
    """The fake on a real socket, and a ``CloudflareClient`` for it (the fake's own
    token unless ``token`` is given)."""
    fake = fake or FakeCloudflare()
    clock = clock or InstantClock()
    async with serve(fake.router) as server, httpx.AsyncClient() as http:
        client = CloudflareClient(
            http,
            server.url + API_PREFIX,
            SecretStr(token if token is not None else fake.token),
            clock,
            policy,
            timeout_s=timeout_s,
        )
        yield CloudflareStack(fake, server, http, client, clock)
