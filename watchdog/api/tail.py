"""``POST /api/v1/tail/<source>``: a Tail Worker's events for a ``cloudflare-tail``
source. The Tail Worker (``deploy/tail-worker``) sends ``WATCHDOG_PUSH_TOKEN`` (or the
API token) as a Bearer token, a Worker secret."""

from __future__ import annotations

from collections.abc import Mapping

from watchdog.api.push import running_source
from watchdog.http.server import HTTPError, Request, Response, Router
from watchdog.sources.cloudflare_tail import CloudflareTailSource, PayloadError, parse_events

# One invocation's TraceItem with its logs and exceptions is a few KB; a Tail Worker
# for a dispatch namespace gets two per invocation. 4 MiB holds any honest POST.
MAX_TAIL_BYTES = 4 * 1024 * 1024


def install(router: Router, inboxes: Mapping[str, object]) -> None:
    """``inboxes``: the running push-fed sources by name (``SourceDeps.inboxes``)."""

    async def receive(request: Request, params: dict[str, str]) -> Response:
        name = params["source"]
        source = running_source(inboxes, name, CloudflareTailSource, "cloudflare-tail")
        try:
            events = parse_events(request.json())
        except PayloadError as exc:
            raise HTTPError(400, str(exc)) from None
        receipt = source.receive(events)
        return Response.json(
            {
                "status": "accepted",
                "source": name,
                "events": len(events),
                "counted": receipt.counted,
                "ignored": receipt.ignored,
            }
        )

    router.add("POST", "/api/v1/tail/{source}", receive, max_body_bytes=MAX_TAIL_BYTES)
