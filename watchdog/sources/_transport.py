"""How the HTTP sources word a failed fetch. Reasons end up in samples, logs and
"watchdog is blind" notifications, so they name what went wrong, never the URL
(a URL may carry credentials) and never a header. ``post_json`` is the bounded,
timed POST both Cloudflare sources send, with one wording of its failures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from watchdog import strict_json
from watchdog.errors import SourceError
from watchdog.http import bounded_read
from watchdog.units import format_duration

if TYPE_CHECKING:
    import httpx


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    token: SecretStr,
    timeout_s: float,
    max_bytes: int,
    what: str,
) -> httpx.Response:
    """One JSON POST with a bearer token, over within ``timeout_s`` and read up to
    ``max_bytes``. A failure without an HTTP answer raises ``SourceError`` worded
    ``"<what>: <why>"``; an answer of any status is the caller's to judge."""
    import httpx  # here, not at load: the backtest imports this module, never httpx

    headers = {**strict_json.JSON_HEADERS, "Authorization": f"Bearer {token.get_secret_value()}"}
    try:
        async with asyncio.timeout(timeout_s):
            return await bounded_read.fetch(
                http,
                "POST",
                url,
                max_bytes=max_bytes,
                content=strict_json.dumpb(payload),
                headers=headers,
                timeout=timeout_s,
            )
    except TimeoutError:
        raise SourceError(f"{what}: {timed_out(timeout_s)}") from None
    except bounded_read.BodyError as exc:
        raise SourceError(f"{what}: HTTP {exc.status}: {exc}") from None
    except httpx.TransportError as exc:
        raise SourceError(f"{what}: {transport_failure(exc, timeout_s, url)}") from None


def timed_out(timeout_s: float) -> str:
    return f"timed out after {format_duration(timeout_s)}"


def transport_failure(exc: httpx.TransportError, timeout_s: float, url: str = "") -> str:
    """One line for a request that got no HTTP response at all (``url`` is cut out
    of the library's message if it appears there)."""
    import httpx

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
    import httpx

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
