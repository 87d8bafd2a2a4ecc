"""How the HTTP sources word a failed fetch. Reasons end up in samples, logs and
"watchdog is blind" notifications, so they name what went wrong, never the URL
(a URL may carry credentials) and never a header."""

from __future__ import annotations

from urllib.parse import urlsplit

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


def request_failure(exc: httpx.HTTPError, url: str) -> str:
    """One line for a request that got no usable response (the scrape source's
    wording). The library's message is kept (it says what failed) with the URL and
    any credentials in it removed."""
    detail = _redact(str(exc).strip(), url)[:160]
    if isinstance(exc, httpx.ConnectError):
        if _refused_in_chain(exc) or "refused" in detail.lower():
            return "connection refused"
        return f"cannot connect ({detail})" if detail else "cannot connect"
    name = type(exc).__name__
    return f"request failed ({name}: {detail})" if detail else f"request failed ({name})"


def _refused_in_chain(exc: BaseException) -> bool:
    """httpx says "All connection attempts failed"; the OS error is in the chain."""
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _redact(text: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        secrets = [url, parts.query, parts.password or "", parts.username or ""]
    except ValueError:
        secrets = [url]
    # Longest first, so the whole URL goes before any piece of it.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return text
