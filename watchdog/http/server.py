"""A small ASGI toolkit: request/response, a path router, and a loopback-friendly server.

The watchdog's own HTTP server, the local Cloudflare API and the notification
receivers all use it, so each serves over real sockets (uvicorn) in tests and the
demo, and can also be driven in-process with ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from watchdog import strict_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HTTPError(Exception):
    """Raised by a handler to answer with a status and a JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client_host: str | None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as strict JSON; a bad body is a 400 that says why (too deeply nested,
        a number too long for Python, NaN/Infinity, not JSON at all)."""
        if not self.body:
            raise HTTPError(400, "request body is empty (expected JSON)")
        depth = json_depth(self.body)
        if depth > MAX_JSON_DEPTH:
            raise HTTPError(
                400, f"request body is nested {depth} levels deep (at most {MAX_JSON_DEPTH})"
            )
        try:
            return json.loads(self.body, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # ValueError includes JSONDecodeError and int's digit limit (5,000 digits).
            why = str(exc)
            if "integer string conversion" in why:
                why = "a number has more digits than any request needs (over 4,300)"
            raise HTTPError(400, f"request body is not valid JSON: {why[:200]}") from None


# Deeper than any request this project accepts; far below the parser's recursion limit.
MAX_JSON_DEPTH = 32


_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


def json_depth(body: bytes) -> int:
    """The deepest ``[``/``{`` nesting in ``body`` (strings skipped), before the
    recursive parser sees it, in C (a byte loop in Python took longer than
    ``json.loads``): escapes out, then every other run between quotes is outside a
    string. A backslash outside a string is not JSON: the parser stops there, and the
    depth up to it is counted exactly."""
    parts = _ESCAPE.sub(b"", body).split(b'"')
    brackets = b"".join(parts[::2]).translate(None, _NOT_BRACKETS)
    return max(0, max(accumulate(array("b", brackets.translate(_STEPS))), default=0))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (strict JSON has no NaN or Infinity)")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        return cls(
            status,
            strict_json.dumpb(data, compact=True),
            {"content-type": "application/json", **(headers or {})},
        )

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return cls(status, text.encode(), {"content-type": content_type, **(headers or {})})


Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]
ErrorRenderer = Callable[[int, str], Response]


def _default_error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status)


class Router:
    """Routes ``METHOD /path/{param}`` to async handlers; an ASGI app."""

    def __init__(
        self,
        max_body_bytes: int = 1_000_000,
        render_error: ErrorRenderer = _default_error,
    ) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.declared: list[tuple[str, str]] = []  # (METHOD, pattern): what the API documents
        self.max_body_bytes = max_body_bytes
        self.render_error = render_error
        self.middleware: list[Callable[[Request], Awaitable[Response | None]]] = []
        # Routes that read more than ``max_body_bytes`` (a webhook's batches), by path.
        self._body_limits: list[tuple[re.Pattern[str], int]] = []

    def add(
        self, method: str, pattern: str, handler: Handler, *, max_body_bytes: int | None = None
    ) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/") or "/")
        compiled = re.compile(f"^{regex}/?$")
        self._routes.append((method.upper(), compiled, handler))
        self.declared.append((method.upper(), pattern))
        if max_body_bytes is not None:
            self._body_limits.append((compiled, max_body_bytes))

    def body_limit(self, path: str) -> int:
        """The most a request to ``path`` may send: its route's own limit, or the router's."""
        return next(
            (limit for regex, limit in self._body_limits if regex.match(path)),
            self.max_body_bytes,
        )

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler

        return register

    async def dispatch(self, request: Request) -> Response:
        for hook in self.middleware:
            early = await hook(request)
            if early is not None:
                return early
        allowed: list[str] = []
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                return await handler(request, match.groupdict())
            except HTTPError as exc:
                return self.render_error(exc.status, exc.message)
        if allowed:
            return self.render_error(
                405,
                f"method {request.method} not allowed (allowed: {', '.join(sorted(set(allowed)))})",
            )
        return self.render_error(404, f"no route for {request.method} {request.path}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        limit = self.body_limit(scope["path"])
        body, too_big = await _read_body(receive, limit)
        if too_big:
            response = self.render_error(413, f"request body over {limit} bytes")
        else:
            client = scope.get("client")
            request = Request(
                method=scope["method"],
                path=scope["path"],
                query=parse_qs(scope.get("query_string", b"").decode("latin-1")),
                headers={
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                },
                body=body,
                client_host=client[0] if client else None,
            )
            response = await self.dispatch(request)
        await send_response(send, response)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), size > limit


async def send_response(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM/SIGINT/SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free one (read it from getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, small responses wait ~40 ms
    # for a delayed ACK (Nagle), which dominates every loopback exchange.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_timeout_s: float = 2.0,
) -> AsyncIterator[RunningServer]:
    """Serve ``app`` on a real socket for the duration of the block."""
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(max(1, shutdown_timeout_s)),
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http:{bound_port}")
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces the startup error
                raise OSError(f"HTTP server on {host}:{bound_port} stopped during start-up")
            await asyncio.sleep(0.005)
        yield RunningServer(host, bound_port)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=shutdown_timeout_s + 1)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sock.close()
