"""The watchdog's own alerts pushed to Alertmanager (``POST /api/v2/alerts``), so its
incidents route, group, inhibit and silence like every other alert a team has.

One alert per incident and target: labels ``alertname`` (``RollbackWatchdog``, or
``RollbackWatchdogBlind`` when it has no evidence), ``rule``, ``severity``, ``target``
and ``incident``; annotations with the headline, the decision and its evidence. A
firing alert ends ``4 x resend`` after it is sent: while the incident is open it is
re-sent every ``resend`` (``refresh``), so it never lapses, and a watchdog that died
stops renewing it and it resolves by itself, as Prometheus's own alerts do. The
incident's resolution sends ``endsAt`` = now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from watchdog.actions.notify.base import (
    NOTIFY_POLICY,
    NOTIFY_TIMEOUT_S,
    failed,
    sent,
    skipped,
    would,
)
from watchdog.actions.notify.event import EventKind, IncidentEvent
from watchdog.clock import Clock
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult
from watchdog.rules.response import AlertmanagerNotifierSpec
from watchdog.units import iso

ALERTNAME = "RollbackWatchdog"
BLIND_ALERTNAME = "RollbackWatchdogBlind"
# Alertmanager keeps an alert firing until its endsAt: four missed re-sends, as Prometheus.
LAPSE_FACTOR = 4


def alerts(event: IncidentEvent, ends_at: float, generator_url: str | None) -> list[dict[str, Any]]:
    """The postable alerts for ``event``: one per target (one without a target label
    for a notify-only rule), all ending at ``ends_at``."""
    d = event.decision
    name = BLIND_ALERTNAME if event.kind is EventKind.BLIND else ALERTNAME
    base = {"alertname": name, "rule": d.rule, "severity": d.severity}
    base["incident"] = event.incident_id
    annotations = {
        "summary": event.headline(),
        "description": event.summary(),
        "evidence": "\n".join(f"{label}: {value}" for label, value in event.facts()),
        "event": event.kind.value,
    }
    if event.rolled_back:
        annotations["rolled_back"] = "; ".join(event.rolled_back_lines())
    if event.message:
        annotations["message"] = event.message
    started = d.first_breach_at if d.first_breach_at is not None else d.decided_at
    out = []
    for target in d.targets or ("",):
        labels = dict(base, target=target) if target else dict(base)
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": iso(min(started, ends_at)),
            "endsAt": iso(ends_at),
        }
        if generator_url:
            alert["generatorURL"] = generator_url
        out.append(alert)
    return out


class AlertmanagerNotifier:
    def __init__(
        self,
        name: str,
        spec: AlertmanagerNotifierSpec,
        token: SecretStr | None,
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
        self._url = spec.url.rstrip("/") + "/api/v2/alerts"
        # The latest event per open incident: a re-send repeats what people last read.
        self._latest: dict[str, IncidentEvent] = {}
        self._next_refresh = 0.0

    def _ends(self, event: IncidentEvent) -> float:
        if event.kind is EventKind.RESOLVED:
            return event.occurred_at
        return self._clock.now() + LAPSE_FACTOR * self.spec.resend

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        body = alerts(event, self._ends(event), self.spec.generator_url)
        if dry_run:
            request = {"method": "POST", "url": self._url, "body": body}
            return would(self.name, "would push the alert to Alertmanager", request)
        if event.kind is EventKind.RESOLVED:
            self._latest.pop(event.incident_id, None)
        else:
            self._latest[event.incident_id] = event
        verb = "resolved" if event.kind is EventKind.RESOLVED else "pushed"
        return await self._post(body, f"{verb} {len(body)} alert(s) on Alertmanager")

    def refresh_due(self, now: float) -> bool:
        return now >= self._next_refresh

    async def refresh(self, events: Sequence[IncidentEvent]) -> ActionResult:
        """Re-send the open incidents (their latest event when this process sent one)."""
        self._next_refresh = self._clock.now() + self.spec.resend
        open_ids = {event.incident_id for event in events}
        for gone in set(self._latest) - open_ids:  # closed while another replica led
            del self._latest[gone]
        body: list[dict[str, Any]] = []
        for event in events:
            latest = self._latest.get(event.incident_id, event)
            body += alerts(latest, self._ends(latest), self.spec.generator_url)
        if not body:
            return skipped(self.name, "no open incident to re-send")
        return await self._post(body, f"re-sent {len(body)} firing alert(s) to Alertmanager")

    async def _post(self, body: list[dict[str, Any]], detail: str) -> ActionResult:
        headers = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        try:
            response = await send(
                self._http,
                "POST",
                self._url,
                what=f"alertmanager notifier {self.name!r}",
                clock=self._clock,
                policy=self._policy,
                json=body,
                headers=headers,
                timeout_s=NOTIFY_TIMEOUT_S,
            )
        except ActionError as exc:
            return failed(self.name, exc)
        return sent(self.name, f"{detail} (HTTP {response.status_code})")
