"""``POST /api/v1/alertmanager/<source>``: Alertmanager's webhook notifications for an
``alertmanager`` source. Behind the control API's auth like every ``/api/`` route:
with ``WATCHDOG_API_TOKEN`` set, give Alertmanager ``http_config: {authorization:
{credentials_file: ...}}`` (a Bearer token)."""

from __future__ import annotations

from collections.abc import Mapping

from watchdog.http.server import HTTPError, Request, Response, Router
from watchdog.sources.alertmanager import AlertmanagerSource, PayloadError, parse

# A notification carries its whole group (each alert with labels, annotations and a
# generator URL: about 1-2 KB), far past the control API's 64 KiB for its own bodies.
MAX_NOTIFICATION_BYTES = 4 * 1024 * 1024


def install(router: Router, inboxes: Mapping[str, object]) -> None:
    """``inboxes``: the running push-fed sources by name (``SourceDeps.inboxes``)."""

    async def receive(request: Request, params: dict[str, str]) -> Response:
        name = params["source"]
        source = inboxes.get(name)
        if not isinstance(source, AlertmanagerSource):
            known = sorted(n for n, s in inboxes.items() if isinstance(s, AlertmanagerSource))
            raise HTTPError(
                404,
                f"no alertmanager source {name[:80]!r} in the rules (known: "
                f"{', '.join(known) or 'none'})",
            )
        try:
            notification = parse(request.json())
        except PayloadError as exc:
            raise HTTPError(400, str(exc)) from None
        firing = source.receive(notification)
        return Response.json(
            {
                "status": "accepted",
                "source": name,
                "alerts": len(notification.alerts),
                "firing": firing,
            }
        )

    router.add(
        "POST",
        "/api/v1/alertmanager/{source}",
        receive,
        max_body_bytes=MAX_NOTIFICATION_BYTES,
    )
