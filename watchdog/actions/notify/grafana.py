"""Grafana annotations: one per incident step (decision, rollback, verification, ...)
and per silence, through the HTTP API with a service-account token (Bearer).

``POST /api/annotations`` with ``time``/``timeEnd`` in epoch milliseconds, ``tags`` and
``text`` (plus ``dashboardUID``/``panelId`` when configured; without them it is an
organisation annotation that a dashboard shows through a query by tag). A decision
spans the breach (first breach to decision), a silence its window; other steps are
points. A silence expired early has its region cut short with ``PATCH
/api/annotations/{id}`` when this process made it, else a point marks the expiry.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from pydantic import SecretStr

from watchdog.actions.notify.base import NOTIFY_POLICY, NOTIFY_TIMEOUT_S, failed, sent, would
from watchdog.actions.notify.event import EventKind, IncidentEvent, SilenceEvent
from watchdog.clock import Clock
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult
from watchdog.rules.response import GrafanaNotifierSpec

# Tags are short labels in Grafana's UI; a name past this is cut.
_TAG_MAX = 100
_DECISIONS = frozenset({EventKind.OPENED, EventKind.NOTICE, EventKind.BLIND})
_MAX_MS = 253_402_300_799_000  # 9999-12-31: an endless (flag) silence ends here


def _ms(seconds: float) -> int:
    if not math.isfinite(seconds):
        return _MAX_MS
    return min(_MAX_MS, max(0, round(seconds * 1000)))


def _tag(key: str, value: str) -> str:
    return f"{key}:{value}"[:_TAG_MAX]


def event_tags(base: tuple[str, ...], event: IncidentEvent) -> list[str]:
    """The configured tags, then ``rule:``, ``severity:``, ``event:`` and one
    ``target:`` per target: a dashboard can show one rule's or one target's marks."""
    d = event.decision
    tags = [*base, _tag("rule", d.rule), _tag("severity", d.severity)]
    tags.append(_tag("event", event.kind.value))
    tags += [_tag("target", target) for target in d.targets]
    return list(dict.fromkeys(tags))


def silence_tags(base: tuple[str, ...], event: SilenceEvent) -> list[str]:
    """``silence`` plus a ``rule:``/``target:``/``severity:`` tag per equality matcher."""
    tags = [*base, "silence", _tag("event", f"silence_{event.change}")]
    tags += [_tag(name, value) for name, op, value in event.matchers if op == "="]
    return list(dict.fromkeys(tags))


def event_text(event: IncidentEvent) -> str:
    lines = [event.headline(), event.summary()]
    lines += event.rolled_back_lines()
    if event.message:
        lines.append(event.message)
    lines += [f"{label}: {value}" for label, value in event.facts()]
    return "\n".join(lines)


def event_window(event: IncidentEvent) -> tuple[float, float]:
    """A decision spans its breach; every other step is a point."""
    first = event.decision.first_breach_at
    if event.kind in _DECISIONS and first is not None and first < event.occurred_at:
        return first, event.occurred_at
    return event.occurred_at, event.occurred_at


class GrafanaNotifier:
    def __init__(
        self,
        name: str,
        spec: GrafanaNotifierSpec,
        token: SecretStr,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy = NOTIFY_POLICY,
    ) -> None:
        self.name = name
        self.spec = spec
        self._token = token
        self._http = http
        self._clock = clock
        self._policy = policy
        self._base = spec.url.rstrip("/")
        # Silence id -> (the annotation made for it, its end): to cut the region short
        # on an early expiry; forgotten once the silence has ended on its own.
        self._silences: dict[str, tuple[int, float]] = {}

    def body(self, start: float, end: float, tags: list[str], text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"time": _ms(start), "timeEnd": _ms(end), "tags": tags}
        body["text"] = text
        if self.spec.dashboard_uid is not None:
            body["dashboardUID"] = self.spec.dashboard_uid
            if self.spec.panel_id is not None:
                body["panelId"] = self.spec.panel_id
        return body

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        start, end = event_window(event)
        body = self.body(start, end, event_tags(self.spec.tags, event), event_text(event))
        if dry_run:
            return self._would(body)
        created = await self._post(body)
        if isinstance(created, ActionResult):
            return created
        return sent(self.name, f"annotated Grafana (id {created})", annotation_id=created)

    async def silence(self, event: SilenceEvent, dry_run: bool = False) -> ActionResult:
        tags = silence_tags(self.spec.tags, event)
        for ended in [k for k, (_, end) in self._silences.items() if end <= event.occurred_at]:
            del self._silences[ended]
        known = self._silences.get(event.silence_id, (None, 0.0))[0]
        if event.change == "expired" and known is not None:
            patch = {"timeEnd": _ms(event.occurred_at), "text": event.headline()}
            if dry_run:
                return self._would(patch, "PATCH", f"/api/annotations/{known}")
            try:
                await self._call("PATCH", f"/api/annotations/{known}", patch)
            except ActionError as exc:
                return failed(self.name, exc)
            self._silences.pop(event.silence_id, None)
            return sent(self.name, f"cut silence annotation {known} short at its expiry")
        if event.change == "created":
            window = (event.starts_at, event.ends_at)
        else:
            window = (event.occurred_at, event.occurred_at)
        body = self.body(*window, tags, event.headline())
        if dry_run:
            return self._would(body)
        created = await self._post(body)
        if isinstance(created, ActionResult):
            return created
        if event.change == "created":
            self._silences[event.silence_id] = (created, event.ends_at)
        return sent(self.name, f"annotated Grafana (id {created})", annotation_id=created)

    def _would(
        self, body: dict[str, Any], method: str = "POST", path: str = "/api/annotations"
    ) -> ActionResult:
        request = {"method": method, "url": f"{self._base}{path}", "body": body}
        return would(self.name, f"would {method} a Grafana annotation", request)

    async def _post(self, body: dict[str, Any]) -> int | ActionResult:
        """The new annotation's id, or the failure."""
        try:
            response = await self._call("POST", "/api/annotations", body)
        except ActionError as exc:
            return failed(self.name, exc)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        created = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(created, int) or isinstance(created, bool):
            return ActionResult(
                "notify",
                self.name,
                ok=False,
                detail=f"Grafana answered HTTP {response.status_code} without an annotation id",
            )
        return created

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await send(
            self._http,
            method,
            f"{self._base}{path}",
            what=f"grafana notifier {self.name!r}",
            clock=self._clock,
            policy=self._policy,
            json=body,
            headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            timeout_s=NOTIFY_TIMEOUT_S,
        )
