"""Loopback HTTP servers that misbehave on command, for the fault matrix.

``FaultyServer`` speaks just enough HTTP/1.1 over raw asyncio streams to fail in
ways a well-behaved framework will not: refuse connections (a bound socket that
does not listen), accept and never answer, trickle a body one byte at a time
(slow loris), stream 50 MB without holding it in memory, or close mid-body. What
it answers is a ``Reply`` chosen per request by ``server.reply`` (a function of
the request), so a test switches faults with one assignment between samples.

``prometheus_reply`` and ``exposition_reply`` build the two payload families the
metrics sources read: the Prometheus HTTP API envelope and the text exposition
format.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

MB = 1024 * 1024


@dataclass(frozen=True)
class Hit:
    """One request as received."""

    method: str
    path: str
    query: dict[str, str]

    def time(self) -> float:
        """The ``time`` parameter of a Prometheus instant query (0 if absent)."""
        return float(self.query.get("time", "0") or 0)


@dataclass(frozen=True)
class Reply:
    """What to answer, and how badly. ``body`` may be a generator of chunks (a huge
    body is never held in memory); ``trickle_s`` sends the body one byte per that
    many seconds; ``hang`` reads the request and never answers."""

    status: int = 200
    body: bytes | Callable[[], Iterator[bytes]] = b""
    content_type: str = "application/json"
    length: bool = True  # send Content-Length (else the body ends when the socket closes)
    trickle_s: float | None = None
    hang: bool = False
    headers: tuple[tuple[str, str], ...] = ()  # extra headers (Content-Encoding, ...)


Responder = Callable[[Hit], Reply]


class FaultyServer:
    """A loopback server whose answers and availability a test controls."""

    def __init__(self, reply: Responder) -> None:
        self.reply = reply
        self.hits: list[Hit] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._holder: socket.socket | None = None  # bound, not listening: refuses
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = _bound(self.port)
        self.port = sock.getsockname()[1]
        await self._listen(sock)

    async def _listen(self, sock: socket.socket) -> None:
        sock.listen(64)
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._serve, sock=sock)

    def refuse(self) -> None:
        """From now on connections are refused (the port stays ours: a bound socket
        that does not listen answers SYN with RST, like a stopped service)."""
        if self._server is not None:
            self._server.close()  # closes the listening socket at once
            self._server = None
            self._holder = _bound(self.port)

    async def accept(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            holder, self._holder = self._holder, None
            await self._listen(holder if holder is not None else _bound(self.port))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await self._answer(reader, writer)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        hit = Hit(method, parts.path, query)
        self.hits.append(hit)
        reply = self.reply(hit)
        if reply.hang:
            await asyncio.Event().wait()  # until the client gives up or the test ends
        chunks = _chunks(reply)
        headers = [
            f"HTTP/1.1 {reply.status} {'OK' if reply.status < 400 else 'Error'}",
            f"Content-Type: {reply.content_type}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if reply.length:
            headers.append(f"Content-Length: {sum(len(c) for c in chunks())}")
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
        await writer.drain()
        for chunk in chunks():
            if reply.trickle_s is None:
                writer.write(chunk)
                await writer.drain()
                continue
            for i in range(len(chunk)):
                writer.write(chunk[i : i + 1])
                await writer.drain()
                await asyncio.sleep(reply.trickle_s)


def gzip_bomb(decoded: int, layers: int = 1) -> bytes:
    """``decoded`` zero bytes gzipped ``layers`` times (1 GiB is about 1 MB once,
    under 2 KB twice). Built a block at a time: the zeros never exist in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [packer.compress(block) for _ in range(decoded // MB)]
    body = b"".join(parts) + packer.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


def _chunks(reply: Reply) -> Callable[[], Iterator[bytes]]:
    body = reply.body
    if isinstance(body, bytes):
        return lambda: iter([body])
    return body


def _bound(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@contextlib.asynccontextmanager
async def faulty_server(reply: Responder) -> AsyncIterator[FaultyServer]:
    server = FaultyServer(reply)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


# --- Prometheus HTTP API ---------------------------------------------------------------


class Prom(StrEnum):
    """How the loopback Prometheus answers an instant query."""

    OK = "ok"  # one series with the current value
    HANG = "hang"  # reads the request, never answers (the source's timeout)
    STATUS_500 = "500"  # a plain-text 500 from a proxy
    NOT_JSON = "not_json"  # HTTP 200 with a proxy's HTML login page
    ERROR_ENVELOPE = "error_envelope"  # 422 {"status": "error", "errorType": ...}
    NAN = "nan"  # the value "NaN" (0/0: no traffic)
    EMPTY = "empty"  # an empty vector (the series is gone: stale, or never there)
    SEVERAL = "several"  # two series where the query should give one
    STALE = "stale"  # a series stamped an hour before the query time (a stale cache)
    HUGE = "huge"  # a 50 MB vector
    SLOW_LORIS = "slow_loris"  # a valid answer, one byte every 50 ms


def _vector(series: list[tuple[dict[str, str], float, str]]) -> bytes:
    result = [{"metric": labels, "value": [ts, value]} for labels, ts, value in series]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return json.dumps(body).encode()


def _huge_vector(at: float, size: int) -> Callable[[], Iterator[bytes]]:
    """A well-formed vector of about ``size`` bytes, sent block by block (one block is
    built once and repeated: the server must outrun the client it tests)."""
    head = b'{"status":"success","data":{"resultType":"vector","result":['
    item = json.dumps({"metric": {"instance": "i"}, "value": [at, "0.01"]}).encode()
    block = b",".join([item] * 2000)

    def chunks() -> Iterator[bytes]:
        yield head + block
        for _ in range(size // len(block)):
            yield b"," + block
        yield b"]}}"

    return chunks


@dataclass
class PrometheusBehaviour:
    """The loopback Prometheus's mode and the value its one series reports."""

    mode: Prom = Prom.OK
    value: float = 0.01
    huge_bytes: int = 50 * MB
    log: list[Prom] = field(default_factory=list)

    def __call__(self, hit: Hit) -> Reply:
        self.log.append(self.mode)
        at = hit.time()
        ok = _vector([({}, at, repr(self.value))])
        mode = self.mode
        if mode is Prom.OK:
            return Reply(body=ok)
        if mode is Prom.HANG:
            return Reply(hang=True)
        if mode is Prom.STATUS_500:
            return Reply(500, b"upstream connect error", "text/plain")
        if mode is Prom.NOT_JSON:
            page = b"<!DOCTYPE html><html><body><form>Sign in</form></body></html>"
            return Reply(200, page, "text/html")
        if mode is Prom.ERROR_ENVELOPE:
            body = {
                "status": "error",
                "errorType": "execution",
                "error": "query processing would load too many samples into memory",
            }
            return Reply(422, json.dumps(body).encode())
        if mode is Prom.NAN:
            return Reply(body=_vector([({}, at, "NaN")]))
        if mode is Prom.EMPTY:
            return Reply(body=_vector([]))
        if mode is Prom.SEVERAL:
            # A breach on one instance, calm on the other: neither may be picked.
            return Reply(
                body=_vector([({"instance": "a"}, at, "0.08"), ({"instance": "b"}, at, "0.01")])
            )
        if mode is Prom.STALE:
            return Reply(body=_vector([({}, at - 3600, "0.08")]))
        if mode is Prom.HUGE:
            return Reply(body=_huge_vector(at, self.huge_bytes), length=False)
        assert mode is Prom.SLOW_LORIS
        return Reply(body=ok, trickle_s=0.05)


# --- text exposition (the scrape source) -------------------------------------------------


class Page(StrEnum):
    """How the loopback app's /metrics page misbehaves."""

    OK = "ok"
    HANG = "hang"
    STATUS_500 = "500"
    NO_INF = "no_inf"  # a histogram without its le="+Inf" bucket
    DECREASING = "decreasing"  # cumulative bucket counts that go down as le grows
    HUGE = "huge"  # 50 MB of series
    SLOW_LORIS = "slow_loris"


@dataclass
class AppMetrics:
    """A /metrics page with a request counter (by code) and a latency histogram.

    ``requests`` and ``errors`` are running totals; between two scrapes the app serves
    ``ok`` good and ``failed`` 5xx requests. ``reset()`` is a process restart (the
    counters start again from zero)."""

    mode: Page = Page.OK
    ok: float = 1000.0
    failed: float = 5.0
    requests: float = 0.0
    errors: float = 0.0
    huge_bytes: int = 50 * MB

    def reset(self) -> None:
        self.requests = 0.0
        self.errors = 0.0

    def text(self, inf: bool = True, decreasing: bool = False) -> bytes:
        good = self.requests
        # Decreasing: most requests "under 0.1 s" but fewer under 0.5 s, which no
        # histogram can count; PromQL would repair it into a slow p95 (a breach).
        fast = good * (0.9 if not decreasing else 0.5)
        under_half = good if not decreasing else good * 0.3
        lines = [
            "# TYPE http_requests_total counter",
            f'http_requests_total{{code="200"}} {good:g}',
            f'http_requests_total{{code="503"}} {self.errors:g}',
            "# TYPE http_request_duration_seconds histogram",
            f'http_request_duration_seconds_bucket{{le="0.1"}} {fast:g}',
            f'http_request_duration_seconds_bucket{{le="0.5"}} {under_half:g}',
        ]
        if inf:
            lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {good:g}')
        lines.append(f"http_request_duration_seconds_count {good:g}")
        return ("\n".join(lines) + "\n").encode()

    def _huge(self) -> Callable[[], Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            yield self.text()
            line = b'filler_metric{pad="xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"} 1\n'
            block = line * 2000
            for _ in range(self.huge_bytes // len(block)):
                yield block

        return chunks

    def __call__(self, hit: Hit) -> Reply:
        self.requests += self.ok
        self.errors += self.failed
        kind = "text/plain; version=0.0.4"
        if self.mode is Page.OK:
            return Reply(body=self.text(), content_type=kind)
        if self.mode is Page.HANG:
            return Reply(hang=True)
        if self.mode is Page.STATUS_500:
            return Reply(500, b"internal error", "text/plain")
        if self.mode is Page.NO_INF:
            return Reply(body=self.text(inf=False), content_type=kind)
        if self.mode is Page.DECREASING:
            return Reply(body=self.text(decreasing=True), content_type=kind)
        if self.mode is Page.HUGE:
            return Reply(body=self._huge(), content_type=kind, length=False)
        assert self.mode is Page.SLOW_LORIS
        return Reply(body=self.text(), content_type=kind, trickle_s=0.05)
