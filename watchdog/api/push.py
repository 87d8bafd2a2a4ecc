"""What the push routes share (Alertmanager's webhook, a Tail Worker's events): their
paths, which the push token opens, and finding the running source a POST names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from watchdog.http.server import HTTPError

# Routes other systems push to: the push token (WATCHDOG_PUSH_TOKEN) opens these only.
PUSH_PREFIXES = ("/api/v1/tail/", "/api/v1/alertmanager/")

_Source = TypeVar("_Source")


def running_source(
    inboxes: Mapping[str, object], name: str, kind: type[_Source], type_name: str
) -> _Source:
    """The running push-fed source ``name`` of class ``kind`` (``SourceDeps.inboxes``: a
    reload's new one once built), or a 404 naming the known ones of ``type_name``."""
    source = inboxes.get(name)
    if not isinstance(source, kind):
        known = sorted(n for n, s in inboxes.items() if isinstance(s, kind))
        raise HTTPError(
            404,
            f"no {type_name} source {name[:80]!r} in the rules (known: "
            f"{', '.join(known) or 'none'})",
        )
    return source
