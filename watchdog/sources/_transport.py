"""How the HTTP sources word a failed fetch. Reasons end up in samples, logs and
"watchdog is blind" notifications, so they name what went wrong, never the URL
(a URL may carry credentials) and never a header."""

from __future__ import annotations

import httpx

from watchdog.units import format_duration


def timed_out(timeout_s: float) -> str:
    return f"timed out after {format_duration(timeout_s)}"


def transport_failure(exc: httpx.TransportError, timeout_s: float, url: str = "") -> str:
    """One line for a request that got no HTTP response at all (``url`` is cut out
    of the library's message if it appears there)."""
    if isinstance(exc, httpx.TimeoutException):
        return timed_out(timeout_s)
    if _refused(exc):
        return "connection refused"
    detail = str(exc).strip()
    if url:
        detail = detail.replace(url, "<url>")
    if detail:
        return f"connection failed ({type(exc).__name__}: {detail[:120]})"
    return f"connection failed ({type(exc).__name__})"


def _refused(exc: BaseException) -> bool:
    """httpx says "All connection attempts failed"; the OS error underneath says why."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def excerpt(response: httpx.Response, limit: int = 160) -> str:
    """A short, single-line piece of a body for a reason, or what kind of page it is."""
    content_type = response.headers.get("content-type", "")
    head = response.content[:512].lstrip().lower()
    if "html" in content_type or head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page (a proxy, login or error page?)"
    text = " ".join(response.text.split())[:limit]
    return repr(text) if text else "an empty body"


def http_failure(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {excerpt(response)}"
