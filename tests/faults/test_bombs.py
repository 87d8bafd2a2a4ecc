"""Fault matrix, decompression bombs and oversize bodies, one source (and the actions'
HTTP client) at a time, in this process. A loopback server answers with a gzip of
256 MiB of zeros (256 KB on the wire), the same gzipped twice (``gzip, gzip``: a few
KB), or a 64 MiB plain body; each reader must refuse it having held at most its cap.

Memory is measured with ``tracemalloc`` (peak of Python allocations while the one
read runs): deterministic, unlike RSS in a test process. The whole daemon under
every bomb at once is ``test_bomb_memory.py``.
"""

from __future__ import annotations

import functools
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import httpx
import pytest
from pydantic import SecretStr

from tests.faults.servers import MB, FaultyServer, Hit, Reply, faulty_server, gzip_bomb
from tests.helpers import InstantClock
from watchdog.clock import FakeClock
from watchdog.errors import ActionError
from watchdog.http import bounded_read
from watchdog.http.client import RetryPolicy, send
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import (
    CloudflareSourceSpec,
    ProbeSourceSpec,
    PrometheusSourceSpec,
    ScrapeSourceSpec,
    SignalSpec,
)
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare import CloudflareSource
from watchdog.sources.probe import ProbeSource
from watchdog.sources.prometheus import PrometheusSource
from watchdog.sources.scrape import ScrapeSource

NOW = 1_790_000_000.0
CAP = 1_000_000  # max_bytes of the sources that have one
DECODED = 256 * MB
# Peak Python allocations while one bomb is read. The cap plus slack; a reader that
# decodes a whole chunk before counting (httpx's aiter_bytes) peaks at 256 MiB.
PEAK_LIMIT = 8 * MB
T = TypeVar("T")


@functools.cache
def bomb(layers: int) -> bytes:
    return gzip_bomb(DECODED, layers)


class Bomb:
    """What the loopback server answers: one of the rows below."""

    def __init__(self) -> None:
        self.reply = Reply()

    def __call__(self, hit: Hit) -> Reply:
        return self.reply


def gzip_once(status: int = 200) -> Reply:
    return Reply(status, bomb(1), "application/json", headers=(("Content-Encoding", "gzip"),))


def gzip_twice() -> Reply:
    return Reply(200, bomb(2), "application/json", headers=(("Content-Encoding", "gzip, gzip"),))


def plain_huge() -> Reply:
    block = b"x" * MB

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield block

    return Reply(200, chunks, "text/plain", length=False)


ROWS = {"gzip": gzip_once, "gzip, gzip": gzip_twice, "64 MiB plain": plain_huge}


@pytest.fixture
async def server() -> AsyncIterator[tuple[FaultyServer, Bomb]]:
    behaviour = Bomb()
    async with faulty_server(behaviour) as srv:
        yield srv, behaviour


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def peak_of(run: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """``run()``'s result and the peak of Python allocations while it ran."""
    tracemalloc.start()
    try:
        result = await run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def resolved(name: str, source: str, spec: object, signal: SignalSpec) -> ResolvedSignal:
    return ResolvedSignal(name, source, spec, signal, "number", 15.0)  # type: ignore[arg-type]


def deps(http: httpx.AsyncClient, url: str = "") -> SourceDeps:
    return SourceDeps(
        http=http,
        clock=FakeClock(NOW),
        cloudflare_api_url=url,
        cloudflare_api_token=SecretStr("t0ken"),
        cloudflare_account_id="acc",
    )


async def sample_of(kind: str, url: str, http: httpx.AsyncClient) -> Sample:
    """One sample of the first signal of a ``kind`` source reading ``url``."""
    if kind == "prometheus":
        prom = PrometheusSourceSpec(type="prometheus", url=url, timeout=10.0, max_bytes=CAP)
        signal = resolved("e", "p", prom, SignalSpec(source="p", query="up"))
        return (await PrometheusSource("p", prom, deps(http)).sample([signal], NOW))["e"]
    if kind == "scrape":
        scrape = ScrapeSourceSpec(type="scrape", url=url, timeout=10.0, max_bytes=CAP)
        spec = SignalSpec(source="s", kind="gauge", metric="up")
        return (
            await ScrapeSource("s", scrape, deps(http)).sample(
                [resolved("g", "s", scrape, spec)], NOW
            )
        )["g"]
    if kind == "probe":
        probe = ProbeSourceSpec(type="probe", url=url, timeout=10.0)
        signal = resolved("up", "h", probe, SignalSpec(source="h", field="up"))
        return (await ProbeSource("h", probe, deps(http)).sample([signal], NOW))["up"]
    assert kind == "cloudflare"
    cf = CloudflareSourceSpec(type="cloudflare", script="api", timeout=10.0)
    signal = resolved("r", "c", cf, SignalSpec(source="c", field="requests"))
    return (await CloudflareSource("c", cf, deps(http, url)).sample([signal], NOW))["r"]


@pytest.mark.parametrize("row", list(ROWS))
@pytest.mark.parametrize("kind", ["prometheus", "scrape", "probe", "cloudflare"])
async def test_every_source_refuses_a_bomb_within_its_cap(
    kind: str,
    row: str,
    server: tuple[FaultyServer, Bomb],
    http: httpx.AsyncClient,
) -> None:
    """Every source refuses every bomb, having held no more than its cap: an error
    sample (or a failed probe, down) that names why, never a huge allocation."""
    srv, behaviour = server
    behaviour.reply = ROWS[row]()
    sample, peak = await peak_of(lambda: sample_of(kind, srv.url, http))
    assert peak < PEAK_LIMIT, f"{kind} held {peak / MB:.0f} MiB reading a {row} bomb"
    expected = "stacked content encodings" if row == "gzip, gzip" else "response over"
    if kind == "probe":  # a failed probe is evidence of down, not an error
        assert sample.kind is SampleKind.VALUE, sample
        assert sample.value == 0.0
    else:
        assert sample.kind is SampleKind.ERROR, sample
    assert expected in sample.reason, sample.reason


@pytest.mark.parametrize("row", list(ROWS))
async def test_the_actions_client_refuses_a_bomb_within_its_cap(
    row: str, server: tuple[FaultyServer, Bomb], http: httpx.AsyncClient
) -> None:
    """Slack, a webhook or the Cloudflare API answering with a bomb: the call fails
    naming why, and no more than the client's cap was held."""
    srv, behaviour = server
    behaviour.reply = ROWS[row]()
    policy = RetryPolicy(max_attempts=1, max_response_bytes=CAP)

    async def call() -> str:
        try:
            await send(http, "POST", srv.url, what="Slack", clock=FakeClock(NOW), policy=policy)
        except ActionError as exc:
            return str(exc)
        raise AssertionError("a bomb was accepted")

    reason, peak = await peak_of(call)
    assert peak < PEAK_LIMIT, f"the actions client held {peak / MB:.0f} MiB"
    expected = "stacked content encodings" if row == "gzip, gzip" else "response over"
    assert expected in reason
    assert reason.startswith("Slack: HTTP 200")


async def test_a_bomb_on_a_retryable_status_is_retried(
    server: tuple[FaultyServer, Bomb], http: httpx.AsyncClient
) -> None:
    """A 503 whose body is a bomb is still a 503: retried, not mistaken for permanent."""
    srv, behaviour = server
    behaviour.reply = gzip_once(503)
    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.0, max_response_bytes=CAP)
    with pytest.raises(ActionError, match="HTTP 503, response over"):
        await send(http, "POST", srv.url, what="Slack", clock=InstantClock(), policy=policy)
    assert len(srv.hits) == 2


# --- the decoder itself ---------------------------------------------------------------


def encoded(body: bytes, encoding: str) -> Reply:
    return Reply(200, body, "text/plain", headers=(("Content-Encoding", encoding),))


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", lambda b: zlib.compress(b, wbits=16 + zlib.MAX_WBITS)),
        ("x-gzip", lambda b: zlib.compress(b, wbits=16 + zlib.MAX_WBITS)),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),  # raw, as some send
        ("identity", lambda b: b),
    ],
)
async def test_honest_encodings_decode_exactly(
    encoding: str,
    pack: Callable[[bytes], bytes],
    server: tuple[FaultyServer, Bomb],
    http: httpx.AsyncClient,
) -> None:
    srv, behaviour = server
    body = b"".join(b"line %d\n" % i for i in range(200_000))  # 1.4 MB: many slices
    behaviour.reply = encoded(pack(body), encoding)
    response = await bounded_read.fetch(http, "GET", srv.url, max_bytes=len(body))
    assert response.content == body
    assert "content-encoding" not in response.headers  # never decoded twice


async def test_the_cap_is_exact(server: tuple[FaultyServer, Bomb], http: httpx.AsyncClient) -> None:
    """``max_bytes`` decoded bytes pass; one more is refused."""
    srv, behaviour = server
    body = b"a" * 10_000
    behaviour.reply = encoded(zlib.compress(body, wbits=31), "gzip")
    assert (await bounded_read.fetch(http, "GET", srv.url, max_bytes=10_000)).content == body
    with pytest.raises(bounded_read.BodyError, match="response over 9999 bytes"):
        await bounded_read.fetch(http, "GET", srv.url, max_bytes=9_999)


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("br", b"\x1b\x00", "refused content encoding 'br'"),
        ("gzip", b"not gzip at all", "gzip body does not decode"),
        ("gzip", zlib.compress(b"a" * 1000, wbits=31)[:-12], "gzip body is truncated"),
        ("deflate, gzip", b"", "stacked content encodings (deflate, gzip)"),
    ],
)
async def test_refused_bodies_say_why(
    encoding: str,
    body: bytes,
    message: str,
    server: tuple[FaultyServer, Bomb],
    http: httpx.AsyncClient,
) -> None:
    srv, behaviour = server
    behaviour.reply = encoded(body, encoding)
    with pytest.raises(bounded_read.BodyError) as caught:
        await bounded_read.fetch(http, "GET", srv.url, max_bytes=CAP)
    assert message in str(caught.value)
    assert caught.value.status == 200


async def test_only_what_we_can_bound_is_advertised(
    server: tuple[FaultyServer, Bomb], http: httpx.AsyncClient
) -> None:
    """httpx would offer br/zstd when their libraries are installed; we offer only
    what our bounded decoder reads."""
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers["accept-encoding"])

    srv, behaviour = server
    behaviour.reply = Reply(body=b"{}")
    http.event_hooks["request"] = [record]
    await bounded_read.fetch(http, "GET", srv.url, max_bytes=CAP)
    assert seen == ["gzip, deflate"]
