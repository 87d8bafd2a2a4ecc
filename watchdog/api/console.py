"""The operator's console: a server-rendered page on the daemon's own listen address.

``/`` shows the header (leader or follower, DRY RUN, SILENCED, the rules loaded), every
rule with its last hour, the targets, open and recent incidents, and the silences, with
forms to add and expire one; ``/incidents/{id}`` an incident's timeline and post-mortem
draft. Templates and static files travel inside the package (no CDN, no build step);
a little script refreshes the live part every few seconds, and every page works
without it. Who may see it and post to it: ``console_guard``.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from watchdog.api.console_data import TargetsCache, incident_row, incidents
from watchdog.api.console_guard import LOGIN, ConsoleGuard, form_fields, html
from watchdog.api.console_view import (
    Sparklines,
    StateTimes,
    header,
    rule_rows,
    silence_rows,
)
from watchdog.errors import StoreError
from watchdog.http.server import Request, Response, Router
from watchdog.incidents.matchers import SilenceError, check_matchers, parse_matcher
from watchdog.incidents.postmortem import render_incident
from watchdog.run.runtime import Runtime
from watchdog.units import format_duration, iso, parse_duration

POLL_S = 5  # the script's refresh period
NOTICES = {"added": "Silence added.", "expired": "Silence expired."}
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("watchdog.api", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["url"] = lambda text: quote(str(text), safe="")
    return env


def _static() -> dict[str, tuple[bytes, str, str]]:
    """Every static file: (body, content type, ETag), read once from beside this
    module (the wheel and the container install them there)."""
    files = {}
    for item in sorted((Path(__file__).parent / "static").iterdir()):
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _STATIC_TYPES:
            body = item.read_bytes()
            tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            files[item.name] = (body, _STATIC_TYPES[suffix], tag)
    return files


@dataclass
class SilenceForm:
    """What the add form held, shown again with the error when it is refused."""

    matchers: str = ""
    duration: str = "2h"
    created_by: str = ""
    comment: str = ""
    everything: bool = False
    force: bool = False
    error: str = ""


class Console:
    """The pages, built for one ``Runtime``."""

    def __init__(self, runtime: Runtime, guard: ConsoleGuard) -> None:
        self.runtime = runtime
        self.guard = guard
        self.env = _environment()
        self.static = _static()
        self.times = StateTimes()
        runtime.watchdog.observers.append(self.times.observe)
        self.sparks = Sparklines()
        self.targets = TargetsCache(runtime.store, runtime.clock, lambda: runtime.playbook.targets)

    async def close(self) -> None:
        await self.targets.close()

    def _page(self, name: str, request: Request, status: int = 200, **context: Any) -> Response:
        page = self.env.get_template(name).render(
            csrf=self.guard.csrf(request),
            poll_s=POLL_S,
            fragment=request.arg("fragment") == "live",
            **context,
        )
        return _compressed(request, html(page, status))

    async def index(self, request: Request, form: SilenceForm | None = None) -> Response:
        rt = self.runtime
        now = rt.clock.now()
        try:
            open_rows, closed_rows = await incidents(rt.store, now)
            store_error = ""
        except StoreError as exc:
            open_rows, closed_rows, store_error = [], [], str(exc)
        rows, read_at = self.targets.current(max((i.last_at for i in open_rows), default=0.0))
        return self._page(
            "index.html",
            request,
            status=400 if form is not None and form.error else 200,
            head=header(rt.watchdog, rt.silences, rt.settings.dry_run, rt.gate.describe(), now),
            rules=rule_rows(rt.watchdog, self.times, self.sparks, now),
            targets=rows,
            targets_read=_ago(read_at, now),
            open_incidents=open_rows,
            closed_incidents=closed_rows,
            store_error=store_error,
            silences=silence_rows(rt.silences, now),
            form=form or SilenceForm(),
            notice=NOTICES.get(request.arg("done") or "", ""),
        )

    async def incident(self, request: Request, incident_id: str) -> Response:
        store = self.runtime.store
        try:
            record = await store.get_incident(incident_id)
            if record is None:
                return self._page("missing.html", request, 404, what=f"incident {incident_id}")
            row = incident_row(record, self.runtime.clock.now(), await store.events(record.id))
            draft = await render_incident(store, record.id) or ""
        except StoreError as exc:
            what = f"the state store did not answer: {exc}"
            return self._page("missing.html", request, 503, what=what)
        return self._page("incident.html", request, incident=row, draft=draft)

    async def postmortem(self, incident_id: str) -> Response:
        draft = await render_incident(self.runtime.store, incident_id)
        if draft is None:
            return Response.text(f"no incident {incident_id}\n", 404)
        return Response.text(
            draft,
            content_type="text/markdown; charset=utf-8",
            headers={
                "content-disposition": f'inline; filename="{quote(incident_id)}.md"',
                "x-content-type-options": "nosniff",
                "cache-control": "no-store",
            },
        )

    async def add_silence(self, request: Request) -> Response:
        fields = form_fields(request)
        form = SilenceForm(
            matchers=fields.get("matchers", "")[:2000],
            duration=fields.get("duration", "")[:40],
            created_by=fields.get("created_by", "")[:200],
            comment=fields.get("comment", "")[:2000],
            everything=fields.get("all") == "on",
            force=fields.get("force") == "on",
        )
        silences = self.runtime.silences
        try:
            matchers = [parse_matcher(text) for text in form.matchers.split()][:20]
            # Off the loop, as the API does: a pattern judged against many names.
            await asyncio.to_thread(
                check_matchers,
                matchers,
                silences.known,
                everything=form.everything,
                force=form.force,
            )
            if not form.comment.strip():
                raise SilenceError("a silence needs a comment (why)")
            await silences.add(
                matchers,
                duration_s=parse_duration(form.duration.strip()),
                created_by=form.created_by,
                comment=form.comment,
                origin="api",
            )
        except (SilenceError, ValueError, OverflowError) as exc:
            form.error = str(exc)
            return await self.index(request, form)
        except StoreError as exc:
            form.error = f"the silence was not saved: {exc}"
            return await self.index(request, form)
        return Response(303, b"", {"location": "/?done=added#silences"})

    async def expire_silence(self, request: Request, silence_id: str) -> Response:
        try:
            await self.runtime.silences.expire(silence_id)
        except (SilenceError, StoreError) as exc:
            return self._page("missing.html", request, 404, what=str(exc))
        return Response(303, b"", {"location": "/?done=expired#silences"})

    def login_page(self, request: Request, error: str = "") -> Response:
        return self._page(
            "login.html",
            request,
            401 if error else 200,
            error=error,
            needed=self.guard.token is not None,
        )

    async def login(self, request: Request) -> Response:
        if not self.guard.check_token(form_fields(request).get("token", "")):
            return self.login_page(request, "wrong token")
        return Response(303, b"", {"location": "/", "set-cookie": self.guard.session_cookie()})

    def static_file(self, request: Request, name: str) -> Response:
        found = self.static.get(name)
        if found is None:
            return Response.text("not found\n", 404)
        body, content_type, tag = found
        headers = {"content-type": content_type, "etag": tag, "cache-control": "no-cache"}
        if request.headers.get("if-none-match") == tag:
            return Response(304, b"", headers)
        return Response(200, body, headers)


def _compressed(request: Request, response: Response) -> Response:
    """gzip for a client that takes it: 100 rules are ~160 kB of HTML, ~15 kB gzipped
    (a phone on a VPN refreshes it every few seconds). Level 1: ~1 ms."""
    accepted = request.headers.get("accept-encoding", "")
    response.headers["vary"] = "accept-encoding"
    if "gzip" not in accepted or len(response.body) < 1024:
        return response
    response.body = gzip.compress(response.body, compresslevel=1, mtime=0)
    response.headers["content-encoding"] = "gzip"
    return response


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return ""
    return f"{iso(at)} ({format_duration(max(0.0, now - at))} ago)"


def install(router: Router, runtime: Runtime, listen_host: str | None = None) -> Console:
    """The console's routes and guard on ``router`` (the daemon's app)."""
    settings = runtime.settings
    guard = ConsoleGuard(
        settings.api_token, runtime.watchdog.metrics.api_refused, listen_host, settings.api_hosts
    )
    router.middleware.append(guard)
    console = Console(runtime, guard)

    async def index(request: Request, _: dict[str, str]) -> Response:
        return await console.index(request)

    async def incident(request: Request, params: dict[str, str]) -> Response:
        return await console.incident(request, params["incident_id"])

    async def postmortem(_: Request, params: dict[str, str]) -> Response:
        return await console.postmortem(params["incident_id"])

    async def add(request: Request, _: dict[str, str]) -> Response:
        return await console.add_silence(request)

    async def expire(request: Request, params: dict[str, str]) -> Response:
        return await console.expire_silence(request, params["silence_id"])

    async def login_page(request: Request, _: dict[str, str]) -> Response:
        return console.login_page(request)

    async def login(request: Request, _: dict[str, str]) -> Response:
        return await console.login(request)

    async def static(request: Request, params: dict[str, str]) -> Response:
        return console.static_file(request, params["name"])

    router.add("GET", "/", index)
    router.add("GET", "/incidents/{incident_id}", incident)
    router.add("GET", "/incidents/{incident_id}/postmortem.md", postmortem)
    router.add("POST", "/console/silences", add)
    router.add("POST", "/console/silences/{silence_id}/expire", expire)
    router.add("GET", LOGIN, login_page)
    router.add("POST", LOGIN, login)
    router.add("GET", "/static/{name}", static)
    return console
