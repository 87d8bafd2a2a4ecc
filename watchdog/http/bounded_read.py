"""Every HTTP response this process reads, read through one bounded path.

httpx decodes ``Content-Encoding`` before a caller can count bytes: a 1.8 KB chunk
of ``gzip, gzip`` becomes 1 GiB in one call, and a size check after it is too late.
So the raw bytes are streamed (``aiter_raw``) through our own decompressor, which
is told how much it may produce (zlib's ``max_length``); the body is cut off one
byte past ``max_bytes`` *after* decoding, and the decoding runs in slices with a
yield to the event loop between them, so ``/healthz`` answers while a bomb is read.

Only the encodings we can bound are advertised and accepted: ``gzip`` and
``deflate`` (zlib). ``br`` is not: the brotli library is not a dependency, and an
encoding we cannot bound is refused rather than decoded by httpx. Stacked
encodings (``gzip, gzip``) are refused: no honest server sends them.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from watchdog.errors import WatchdogError

if TYPE_CHECKING:
    import httpx

# What we tell servers we can decode (httpx would otherwise offer its own decoders).
ACCEPT_ENCODING = "gzip, deflate"
# Decoded output per decompressor call: bounds one slice of CPU on the event loop.
SLICE_BYTES = 256 * 1024
# Framing of the streamed answer: not true of the decoded bytes we keep.
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_IDENTITY = frozenset({"", "identity"})


class BodyError(WatchdogError):
    """A response body was refused: over the cap after decoding, an encoding we do
    not accept, or bytes that do not decode. ``status`` is the HTTP status seen."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Decoder(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes:
        """Up to ``limit`` decoded bytes from ``data`` and input held back before."""
        ...

    def pending(self) -> bool:
        """True while input is held back because ``limit`` was reached."""
        ...

    def finish(self, limit: int) -> bytes:
        """Output still inside the decoder once the input has ended."""
        ...


class _Identity:
    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes, limit: int) -> bytes:
        data = self._held + data
        self._held = data[limit:]
        return data[:limit]

    def pending(self) -> bool:
        return bool(self._held)

    def finish(self, limit: int) -> bytes:
        return self.feed(b"", limit)


class _Zlib:
    """gzip or deflate. A deflate body may be zlib-wrapped (RFC 9110) or raw (what
    some servers send): told apart by the zlib header, as httpx does by trial."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._obj: Any = None  # zlib's decompress object (no public type in typeshed)

    def _start(self, first: bytes) -> Any:
        if self._encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            self._obj = self._start(data)
        obj = self._obj
        if obj.eof:  # bytes after the end of the stream are not part of the body
            return b""
        if obj.unconsumed_tail:
            data = obj.unconsumed_tail + data
        try:
            out: bytes = obj.decompress(data, limit)
        except zlib.error as exc:
            raise ValueError(f"{self._encoding} body does not decode ({exc})") from None
        return out

    def pending(self) -> bool:
        return self._obj is not None and not self._obj.eof and bool(self._obj.unconsumed_tail)

    def finish(self, limit: int) -> bytes:
        if self._obj is None or self._obj.eof:
            return b""
        out = self.feed(b"", limit)
        if not out and not self._obj.eof:
            raise ValueError(f"{self._encoding} body is truncated")
        return out


def _decoder(header: str, status: int) -> _Decoder:
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c not in _IDENTITY]
    if len(codings) > 1:
        raise BodyError(f"refused stacked content encodings ({', '.join(codings)})", status)
    if not codings:
        return _Identity()
    coding = codings[0]
    if coding in ("gzip", "x-gzip"):
        return _Zlib("gzip")
    if coding == "deflate":
        return _Zlib("deflate")
    raise BodyError(f"refused content encoding {coding[:40]!r} (accepted: gzip, deflate)", status)


async def read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body of a streamed ``response``, at most ``max_bytes`` of it;
    ``BodyError`` past that (without reading further), for an encoding we do not
    accept, or for bytes that do not decode."""
    status = response.status_code

    def too_big() -> BodyError:
        # Made when raised, never held in a local: an exception kept in the frame its
        # traceback points to is a cycle, and the cycle would keep ``chunks`` (up to
        # ``max_bytes``) alive until the garbage collector runs.
        return BodyError(f"response over {max_bytes} bytes", status)

    if response.is_stream_consumed:
        # A transport that read the body itself (the demo's virtual-time transport)
        # left it decoded; the cap still holds.
        if len(response.content) > max_bytes:
            raise too_big()
        return response.content
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big()  # on the wire already more than we would keep
    decoder = _decoder(response.headers.get("content-encoding", ""), status)
    kept = _Kept(max_bytes, too_big)
    try:
        await _decode_stream(response, decoder, kept, max_bytes, too_big)
    except ValueError as exc:
        raise BodyError(str(exc), status) from None
    return b"".join(kept.chunks)


class _Kept:
    """The decoded bytes kept so far; one byte past ``max_bytes`` raises."""

    def __init__(self, max_bytes: int, too_big: Callable[[], BodyError]) -> None:
        self.max_bytes = max_bytes
        self.too_big = too_big
        self.chunks: list[bytes] = []
        self.size = 0

    def room(self) -> int:
        # One byte more than allowed, so an oversize body is seen, never held.
        return min(SLICE_BYTES, self.max_bytes - self.size + 1)

    def keep(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self.max_bytes:
            raise self.too_big()
        if out:
            self.chunks.append(out)


async def _decode_stream(
    response: httpx.Response,
    decoder: _Decoder,
    kept: _Kept,
    max_bytes: int,
    too_big: Callable[[], BodyError],
) -> None:
    raw = 0
    async for data in response.aiter_raw():
        raw += len(data)
        if raw > max_bytes:
            raise too_big()
        kept.keep(decoder.feed(data, kept.room()))
        while decoder.pending():
            await asyncio.sleep(0)  # a slice at a time: the event loop stays live
            kept.keep(decoder.feed(b"", kept.room()))
    while True:
        out = decoder.finish(kept.room())
        if not out:
            break
        kept.keep(out)
        await asyncio.sleep(0)


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    **request: Any,
) -> httpx.Response:
    """``client.request`` with the body read through ``read_body``: a complete
    response whose ``content`` is the decoded body (framing headers dropped, so it
    is never decoded twice). Transport errors are httpx's; body errors ``BodyError``."""
    import httpx  # here, not at load: the backtest imports this module, never httpx

    sent = {"accept-encoding": ACCEPT_ENCODING, **(headers or {})}
    async with client.stream(method, url, headers=sent, **request) as response:
        body = await read_body(response, max_bytes)
    kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING_HEADERS]
    return httpx.Response(
        response.status_code, headers=kept, content=body, request=response.request
    )
