"""A local stand-in for Grafana's annotations HTTP API, strict about the request shape.

    POST  /api/annotations        {time, timeEnd (epoch ms), tags, text, dashboardUID?,
                                   panelId?} -> 200 {"message": "Annotation added", "id": n}
    PATCH /api/annotations/{id}   {time?, timeEnd?, tags?, text?} -> 200
    GET   /api/annotations?tags=a&tags=b   the annotations carrying every tag given

A service-account token is checked (``Authorization: Bearer <token>``, else 401) and
anything off the documented shape is a 400 that says what: an unknown key, a time in
seconds instead of milliseconds, an end before the start, a tag that is not a string,
empty text. ``fail_next`` queues canned failures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from watchdog.demo.fakes.receivers import Faults, Recorded
from watchdog.http.server import Receive, Request, Response, Router, Scope, Send

_CREATE_KEYS = frozenset({"time", "timeEnd", "tags", "text", "dashboardUID", "panelId", "data"})
_PATCH_KEYS = frozenset({"time", "timeEnd", "tags", "text", "data"})
# 2001-09-09 in milliseconds: anything smaller is a time sent in seconds.
_MIN_MS = 1_000_000_000_000


@dataclass
class Annotation:
    id: int
    time: int
    time_end: int
    tags: list[str]
    text: str
    dashboard_uid: str | None = None
    panel_id: int | None = None
    patches: list[dict[str, Any]] = field(default_factory=list)


def _problem(body: Any, keys: frozenset[str], create: bool) -> str | None:
    """What is wrong with an annotation body, or None."""
    if not isinstance(body, dict):
        return "bad request data: expected a JSON object"
    unknown = sorted(set(body) - keys)
    if unknown:
        return f"bad request data: unknown field(s) {', '.join(unknown)}"
    for key in ("time", "timeEnd"):
        value = body.get(key)
        if value is None and not create:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return f"bad request data: {key} must be an integer (epoch milliseconds)"
        if value < _MIN_MS:
            return f"bad request data: {key} {value} is in seconds, not milliseconds"
    if "time" in body and "timeEnd" in body and body["timeEnd"] < body["time"]:
        return "bad request data: timeEnd is before time"
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        return "bad request data: tags must be a list of non-empty strings"
    text = body.get("text")
    if (create or "text" in body) and (not isinstance(text, str) or not text.strip()):
        return "text field should not be empty"
    if "dashboardUID" in body and not isinstance(body["dashboardUID"], str):
        return "bad request data: dashboardUID must be a string"
    panel = body.get("panelId")
    if panel is not None and (not isinstance(panel, int) or isinstance(panel, bool)):
        return "bad request data: panelId must be an integer"
    return None


class GrafanaReceiver:
    """Grafana's annotation endpoints, recording what it accepted."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[Recorded] = []
        self.annotations: dict[int, Annotation] = {}
        self.faults = Faults()
        self.router = Router()
        self.router.add("POST", "/api/annotations", self._create)
        self.router.add("PATCH", "/api/annotations/{annotation_id}", self._patch)
        self.router.add("GET", "/api/annotations", self._find)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def fail_next(self, status: int = 500, *, times: int = 1) -> None:
        self.faults.add(Response.json({"message": "Internal Server Error"}, status), times)

    def tagged(self, *tags: str) -> list[Annotation]:
        return [a for a in self.annotations.values() if set(tags) <= set(a.tags)]

    def _refused(self, request: Request) -> Response | None:
        """Record the request; a canned fault or a missing token answers it."""
        recorded = Recorded(request.method, request.path, dict(request.headers), request.body)
        self.requests.append(recorded)
        fault = self.faults.take()
        if fault is not None:
            return fault
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response.json({"message": "Unauthorized"}, 401)
        return None

    @staticmethod
    def _json(request: Request) -> tuple[Response | None, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return Response.json({"message": "bad request data: not JSON"}, 400), None
        try:
            return None, json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return Response.json({"message": "bad request data: not JSON"}, 400), None

    async def _create(self, request: Request, _: dict[str, str]) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        bad, body = self._json(request)
        if bad is not None:
            return bad
        problem = _problem(body, _CREATE_KEYS, create=True)
        if problem is not None:
            return Response.json({"message": problem}, 400)
        new = Annotation(
            len(self.annotations) + 1,
            body["time"],
            body["timeEnd"],
            list(body.get("tags", [])),
            body["text"],
            body.get("dashboardUID"),
            body.get("panelId"),
        )
        self.annotations[new.id] = new
        return Response.json({"message": "Annotation added", "id": new.id})

    async def _patch(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        bad, body = self._json(request)
        if bad is not None:
            return bad
        wanted = params["annotation_id"]
        found = self.annotations.get(int(wanted)) if wanted.isdigit() else None
        if found is None:
            return Response.json({"message": "Could not find annotation to update"}, 404)
        problem = _problem(body, _PATCH_KEYS, create=False)
        if problem is None and body.get("timeEnd", found.time_end) < body.get("time", found.time):
            problem = "bad request data: timeEnd is before time"
        if problem is not None:
            return Response.json({"message": problem}, 400)
        found.patches.append(body)
        found.time = body.get("time", found.time)
        found.time_end = body.get("timeEnd", found.time_end)
        found.tags = list(body.get("tags", found.tags))
        found.text = body.get("text", found.text)
        return Response.json({"message": "Annotation patched"})

    async def _find(self, request: Request, _: dict[str, str]) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        tags = list(request.query.get("tags", []))
        return Response.json(
            [
                {"id": a.id, "time": a.time, "timeEnd": a.time_end, "tags": a.tags, "text": a.text}
                for a in self.tagged(*tags)
            ]
        )
