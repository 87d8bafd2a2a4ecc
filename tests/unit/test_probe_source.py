"""The probe source against a loopback health endpoint."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from watchdog.clock import FakeClock
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import ProbeSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.probe import ProbeSource

NOW = 1_790_000_000.0


@dataclass
class Health:
    """A /health endpoint whose status can be set; ``hang`` makes it never answer."""

    status: int = 200
    hang: bool = False
    hits: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def router(self) -> Router:
        router = Router()

        @router.route("GET", "/health")
        async def health(request: Request, params: dict[str, str]) -> Response:
            self.hits += 1
            if self.hang:
                await self.release.wait()
            return Response.json({"status": "ok" if self.status < 400 else "down"}, self.status)

        return router


@pytest.fixture
async def health() -> AsyncIterator[Health]:
    fake = Health()
    async with serve(fake.router()) as server:
        fake.url = server.url + "/health"
        yield fake
        fake.release.set()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def signal(name: str, field_name: str, spec: ProbeSourceSpec) -> ResolvedSignal:
    return ResolvedSignal(
        name, "health", spec, SignalSpec(source="health", field=field_name), "number", 15.0
    )


async def probe(
    url: str, http: httpx.AsyncClient, timeout_s: float = 5.0, expect: tuple[int, ...] = (200,)
) -> dict[str, Sample]:
    spec = ProbeSourceSpec(type="probe", url=url, timeout=timeout_s, expect_status=expect)
    src = ProbeSource("health", spec, SourceDeps(http=http, clock=FakeClock(NOW)))
    return await src.sample([signal("up", "up", spec), signal("lat", "latency", spec)], NOW)


async def test_healthy_endpoint_is_up_with_a_latency(
    health: Health, http: httpx.AsyncClient
) -> None:
    """200 → up 1.0 and a latency in seconds, from one GET for both signals."""
    samples = await probe(health.url, http)
    assert samples["up"] == Sample.of(NOW, 1.0)
    assert samples["lat"].kind is SampleKind.VALUE
    assert samples["lat"].value >= 0.0
    assert health.hits == 1


async def test_unexpected_status_is_down_with_a_reason(
    health: Health, http: httpx.AsyncClient
) -> None:
    """503 is evidence of down (value 0, not an error); the latency is an error sample."""
    health.status = 503
    samples = await probe(health.url, http)
    assert samples["up"].kind is SampleKind.VALUE
    assert samples["up"].value == 0.0
    assert samples["up"].reason == "HTTP 503 (expected 200)"
    assert samples["lat"].kind is SampleKind.ERROR
    assert "HTTP 503" in samples["lat"].reason


async def test_expect_status_accepts_listed_codes(health: Health, http: httpx.AsyncClient) -> None:
    """A status listed in ``expect_status`` counts as up."""
    health.status = 204
    samples = await probe(health.url, http, expect=(200, 204))
    assert samples["up"].value == 1.0


async def test_refused_connection_is_down(http: httpx.AsyncClient) -> None:
    """Nothing listening → up 0 with the reason, latency an error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    samples = await probe(f"http://127.0.0.1:{port}/health", http)
    assert samples["up"].value == 0.0
    assert samples["up"].reason == "connection refused"
    assert samples["lat"].kind is SampleKind.ERROR


async def test_timeout_is_down(health: Health, http: httpx.AsyncClient) -> None:
    """No answer within the timeout → up 0, "timed out", latency an error."""
    health.hang = True
    samples = await probe(health.url, http, timeout_s=0.2)
    assert samples["up"].value == 0.0
    assert samples["up"].reason == "timed out after 200ms"
    assert samples["lat"].reason == "no latency: timed out after 200ms"


async def test_unknown_field_is_an_error(health: Health, http: httpx.AsyncClient) -> None:
    """A field the probe does not give is an error sample naming the known ones."""
    spec = ProbeSourceSpec(type="probe", url=health.url)
    src = ProbeSource("health", spec, SourceDeps(http=http, clock=FakeClock(NOW)))
    samples = await src.sample([signal("x", "body", spec)], NOW)
    assert samples["x"].kind is SampleKind.ERROR
    assert "up, latency" in samples["x"].reason
