"""The control API's checks when no token is configured (loopback mode).

Without a token the only credential is "the request comes from this machine", which a
web page in the operator's browser also satisfies. So, besides the client address:

- the client is exactly 127.0.0.1, ::1 or ::ffff:127.0.0.1 (IPv4 on a dual-stack
  ``[::]`` socket); not all of 127/8: a service-mesh sidecar forwards from 127.0.0.6;
- ``Host`` names this server (the listen host, localhost, 127.0.0.1, [::1], and the
  names in ``WATCHDOG_API_ALLOWED_HOSTS``): a DNS-rebound name (``evil.example``
  resolving to 127.0.0.1) is refused;
- ``Origin``, when a browser sends one, is this server itself (same origin);
- a mutating request is ``application/json``: a page can send ``text/plain`` or a form
  without a CORS preflight, never JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
LOCAL_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def is_loopback_client(address: str | None) -> bool:
    return address in LOOPBACK_CLIENTS


def allowed_hosts(listen_host: str | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names a local client may use: localhost names, the listen host and the
    ``extra`` names of ``WATCHDOG_API_ALLOWED_HOSTS``."""
    names = set(LOCAL_HOST_NAMES) | set(extra)
    if listen_host is not None and listen_host not in _WILDCARDS:
        names.add(listen_host.strip("[]").lower())
    return frozenset(names)


def host_name(value: str) -> str | None:
    """``host`` of ``host:port``, ``[v6]:port`` or ``host``; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            return None
        return value[1:end]
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def refusal(
    method: str, headers: Mapping[str, str], allowed: frozenset[str]
) -> tuple[int, str, str] | None:
    """Why a loopback request is refused: (status, metric reason, message), or None."""
    host = headers.get("host")
    if host is not None and host_name(host) not in allowed:
        return (
            403,
            "foreign_host",
            f"Host {host[:100]!r} is not this server (without WATCHDOG_API_TOKEN the "
            f"control API answers only to {', '.join(sorted(allowed))}; a DNS-rebound name "
            "could be a web page)",
        )
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, host, allowed):
        return (
            403,
            "foreign_origin",
            f"Origin {origin[:100]!r} is not this server: without WATCHDOG_API_TOKEN the "
            "control API refuses requests from web pages",
        )
    if method in MUTATING and method != "DELETE":
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            return (
                415,
                "not_json",
                f"{method} needs Content-Type: application/json "
                f"(got {content_type[:60] or 'none'!r})",
            )
    return None


def _same_origin(origin: str, host: str | None, allowed: frozenset[str]) -> bool:
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or host is None:
        return False
    return parts.netloc.lower() == host.strip().lower() and host_name(parts.netloc) in allowed
