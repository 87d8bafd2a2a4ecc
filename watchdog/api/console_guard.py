"""Who may see the console and change things through it.

The console shows what ``/api/v1/status`` shows, so it answers to the same people:

- without ``WATCHDOG_API_TOKEN``: loopback clients only, with a ``Host`` that names
  this server (``api.guard``: a DNS-rebound name is a web page in disguise);
- with a token: whoever signed in with it (``/console/login`` sets an HttpOnly,
  SameSite=Strict cookie derived from the token, so every replica accepts it and a
  new token signs everyone out).

A form that changes something (add or expire a silence, sign in) is a POST that must
come from this server's own pages: its ``Origin`` (or, without one, its ``Referer``)
names this server, and it carries the CSRF token of the page it came from (an HMAC of
the session, which a page on another site can neither read nor compute).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from html import escape as html_escape
from urllib.parse import parse_qs, urlsplit

from prometheus_client import Counter
from pydantic import SecretStr

from watchdog.api import guard as api_guard
from watchdog.http.server import Request, Response

COOKIE = "watchdog_console"
LOGIN = "/console/login"
# Paths of the control API and the probes: their own rules apply (``ControlAuth``).
NOT_CONSOLE = ("/api/", "/-/", "/metrics", "/healthz", "/readyz")
PUBLIC = ("/static/", LOGIN)  # stylesheet, script and the sign-in page itself
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "x-frame-options": "DENY",  # one click silences: never inside another site's frame
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        body.encode(),
        {"content-type": "text/html; charset=utf-8", **SECURITY_HEADERS, **(headers or {})},
    )


def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each)."""
    parsed = parse_qs(request.body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


class ConsoleGuard:
    """Router middleware for the console's paths (everything but the control API)."""

    def __init__(
        self,
        token: SecretStr | None,
        refusals: Counter,
        listen_host: str | None = None,
        extra_hosts: Sequence[str] = (),
    ) -> None:
        self.token = token
        self.refusals = refusals
        self.hosts = api_guard.allowed_hosts(listen_host, extra_hosts)
        if token is None:
            self._secret = secrets.token_bytes(32)  # loopback only: this process's forms
            self.session: str | None = None
        else:
            key = token.get_secret_value().encode()
            self._secret = hmac.new(key, b"console-csrf", hashlib.sha256).digest()
            self.session = hmac.new(key, b"console-session", hashlib.sha256).hexdigest()

    def csrf(self, request: Request) -> str:
        """The CSRF token for the page answering ``request`` (bound to its session)."""
        bound = (self._cookie(request) or "anonymous").encode()
        return hmac.new(self._secret, b"csrf:" + bound, hashlib.sha256).hexdigest()

    def signed_in(self, request: Request) -> bool:
        if self.session is None:
            return True
        given = self._cookie(request)
        return given is not None and hmac.compare_digest(given, self.session)

    def check_token(self, given: str) -> bool:
        if self.token is None:
            return False
        return hmac.compare_digest(given.encode(), self.token.get_secret_value().encode())

    def session_cookie(self) -> str:
        assert self.session is not None
        return f"{COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict"

    def _cookie(self, request: Request) -> str | None:
        # By hand, not http.cookies: one odd cookie of another app on the same host
        # (localhost has many) must not hide ours.
        for part in request.headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == COOKIE:
                return value.strip('"')
        return None

    async def __call__(self, request: Request) -> Response | None:
        path = request.path
        if path.startswith(NOT_CONSOLE):
            return None
        if self.token is None:
            if not api_guard.is_loopback_client(request.client_host):
                return self._refuse(
                    403,
                    "not_loopback",
                    "the console answers only on loopback unless WATCHDOG_API_TOKEN is set",
                )
            # The Host check (and Origin on reads); a form's Origin is judged below, with
            # a message about forms (and a form is never JSON).
            headers = request.headers
            if request.method == "POST":
                headers = {k: v for k, v in headers.items() if k != "origin"}
            refused = api_guard.refusal("GET", headers, self.hosts)
            if refused is not None:
                return self._refuse(refused[0], refused[1], refused[2])
        if request.method == "POST":
            why = self.cross_site(request)
            if why is not None:
                return self._refuse(403, why[0], why[1])
        if path.startswith(PUBLIC) or self.signed_in(request):
            return None
        if request.method == "GET":
            return Response(303, b"", {"location": LOGIN, **SECURITY_HEADERS})
        return self._refuse(401, "missing_token", "sign in with the API token first")

    def cross_site(self, request: Request) -> tuple[str, str] | None:
        """Why a POST is not from this server's own page: (metric reason, message)."""
        host = request.headers.get("host", "").strip().lower()
        origin = request.headers.get("origin")
        source = origin if origin is not None else request.headers.get("referer")
        if source is None:
            return ("console_no_origin", "the form came with neither Origin nor Referer")
        try:
            netloc = urlsplit(source.strip()).netloc.lower()
        except ValueError:
            netloc = ""
        if not host or netloc != host:
            return (
                "console_foreign_origin",
                f"the form came from {source[:100]!r}, not from this server's own page",
            )
        given = form_fields(request).get("csrf", "")
        if not hmac.compare_digest(given.encode(), self.csrf(request).encode()):
            return (
                "console_csrf",
                "the form's CSRF token is missing or stale: reload the page and try again",
            )
        return None

    def _refuse(self, status: int, reason: str, message: str) -> Response:
        self.refusals.labels(reason=reason).inc()
        return html(ERROR_PAGE.format(status=status, message=html_escape(message)), status)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


ERROR_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>watchdog: {status}</title><link rel="stylesheet" href="/static/console.css">'
    '</head><body><main class="refused"><h1>{status}</h1><p>{message}</p>'
    '<p><a href="/">back to the console</a></p></main></body></html>'
)
