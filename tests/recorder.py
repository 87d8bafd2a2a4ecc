"""A loopback HTTP receiver that records every request it gets (method, path, headers,
raw body) and answers 200 ``ok``: for asserting what the watchdog puts on the wire."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from watchdog.http.server import Request, Response, Router, RunningServer, serve


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    requests: list[Recorded] = field(default_factory=list)
    answer: bytes = b"ok"
    content_type: str = "text/plain"


@contextlib.asynccontextmanager
async def recorder(
    answer: bytes = b"ok", content_type: str = "text/plain"
) -> AsyncIterator[tuple[Recorder, RunningServer]]:
    """Serve a recorder on loopback; every method and path is accepted."""
    record = Recorder(answer=answer, content_type=content_type)
    router = Router(max_body_bytes=1 << 20)

    async def capture(request: Request) -> Response | None:
        record.requests.append(
            Recorded(request.method, request.path, dict(request.headers), request.body)
        )
        return Response(200, record.answer, {"content-type": record.content_type})

    router.middleware.append(capture)
    async with serve(router) as server:
        yield record, server
