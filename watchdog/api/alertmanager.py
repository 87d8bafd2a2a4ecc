"""``POST /api/v1/alertmanager/<source>``: Alertmanager's webhook notifications for an
``alertmanager`` source. Give Alertmanager ``http_config: {authorization:
{credentials_file: ...}}`` holding ``WATCHDOG_PUSH_TOKEN`` (or the API token)."""

from __future__ import annotations

from collections.abc import Mapping

from watchdog.api.push import running_source
from watchdog.http.server import HTTPError, Request, Response, Router
from watchdog.sources.alertmanager import AlertmanagerSource, PayloadError, parse

# A notification carries its whole group (each alert with labels, annotations and a
# generator URL: about 1-2 KB), far past the control API's 64 KiB for its own bodies.
MAX_NOTIFICATION_BYTES = 4 * 1024 * 1024


def install(router: Router, inboxes: Mapping[str, object]) -> None:
    """``inboxes``: the running push-fed sources by name (``SourceDeps.inboxes``)."""

    async def receive(request: Request, params: dict[str, str]) -> Response:
        name = params["source"]
        source = running_source(inboxes, name, AlertmanagerSource, "alertmanager")
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
