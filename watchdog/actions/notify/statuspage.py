"""Atlassian Statuspage: one public incident per watchdog incident, walked through the
runbook's phases Investigating → Identified → Monitoring → Resolved, with its wording.

The first event with a phase creates the incident as ``investigating`` (then moves it
on at once if the event is further along). Later events PATCH it. The Statuspage id
per watchdog incident is kept in memory and returned in
``ActionResult.data["statuspage_incident_id"]`` so the caller can persist it and hand
it back (``incidents=``) after a restart. 420 and 429 are both rate limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
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
from watchdog.actions.notify.event import IncidentEvent, StatusPhase
from watchdog.clock import Clock
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult

DEFAULT_URL = "https://api.statuspage.io/v1"
STATUSPAGE_POLICY = replace(
    NOTIFY_POLICY, retry_statuses=frozenset(NOTIFY_POLICY.retry_statuses) | {420}
)
IMPACT = {"critical": "critical", "high": "major", "medium": "minor", "low": "minor"}


def component_status(phase: StatusPhase, severity: str) -> str:
    """Component status while the incident is in ``phase``."""
    if phase in ("investigating", "identified"):
        return "major_outage" if severity == "critical" else "partial_outage"
    if phase == "monitoring":
        return "degraded_performance"
    return "operational"


class StatuspageNotifier:
    def __init__(
        self,
        name: str,
        page_id: str,
        api_key: SecretStr,
        http: httpx.AsyncClient,
        clock: Clock,
        component_id: str | None = None,
        url: str = DEFAULT_URL,
        incidents: Mapping[str, str] | None = None,
        policy: RetryPolicy = STATUSPAGE_POLICY,
    ) -> None:
        self.name = name
        self._page_id = page_id
        self._key = api_key
        self._http = http
        self._clock = clock
        self._component_id = component_id
        self._base = url.rstrip("/")
        self._policy = policy
        self._ids: dict[str, str] = dict(incidents or {})
        self._phases: dict[str, StatusPhase] = {}
        self._lock = asyncio.Lock()  # one create per incident, even for concurrent events

    @property
    def incident_ids(self) -> dict[str, str]:
        """watchdog incident id → Statuspage incident id (a copy)."""
        return dict(self._ids)

    def remember(self, incidents: Mapping[str, str]) -> None:
        """Adopt persisted watchdog incident id → Statuspage incident id pairs."""
        self._ids.update(incidents)

    def _path(self, incident: str | None = None) -> str:
        path = f"/pages/{self._page_id}/incidents"
        return path if incident is None else f"{path}/{incident}"

    def _components(self, phase: StatusPhase, severity: str) -> dict[str, Any]:
        if self._component_id is None:
            return {}
        return {
            "component_ids": [self._component_id],
            "components": {self._component_id: component_status(phase, severity)},
        }

    def create_body(self, event: IncidentEvent) -> dict[str, Any]:
        d = event.decision
        return {
            "incident": {
                "name": event.status_page_title(),
                "status": "investigating",
                "body": event.status_page_body("investigating"),
                "impact_override": IMPACT.get(d.severity, "major"),
                "deliver_notifications": True,
                "metadata": {"watchdog": {"incident": event.incident_id, "rule": d.rule}},
                **self._components("investigating", d.severity),
            }
        }

    def update_body(self, event: IncidentEvent, phase: StatusPhase) -> dict[str, Any]:
        return {
            "incident": {
                "status": phase,
                "body": event.status_page_body(phase),
                **self._components(phase, event.decision.severity),
            }
        }

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        phase = event.status_phase
        if phase is None:
            return skipped(self.name, f"no status-page change for {event.kind.value}")
        async with self._lock:
            return await self._send(event, phase, dry_run)

    async def _send(self, event: IncidentEvent, phase: StatusPhase, dry_run: bool) -> ActionResult:
        known = self._ids.get(event.incident_id)
        if known is None and phase == "resolved":
            return skipped(self.name, "no status-page incident to resolve")
        if known is not None and self._phases.get(event.incident_id) == phase:
            return sent(self.name, f"status page already {phase}", statuspage_incident_id=known)
        if dry_run:
            return self._dry_run(event, phase, known)
        try:
            if known is None:
                known = await self._create(event)
                self._ids[event.incident_id] = known
                self._phases[event.incident_id] = "investigating"
            if phase != "investigating":
                await self._call("PATCH", self._path(known), self.update_body(event, phase))
                self._phases[event.incident_id] = phase
        except ActionError as exc:
            result = failed(self.name, exc)
            if known is not None:
                result.data["statuspage_incident_id"] = known
            return result
        return sent(self.name, f"status page {phase}", statuspage_incident_id=known)

    def _dry_run(self, event: IncidentEvent, phase: StatusPhase, known: str | None) -> ActionResult:
        steps: list[dict[str, Any]] = []
        if known is None:
            steps.append({"method": "POST", "path": self._path(), "body": self.create_body(event)})
        if phase != "investigating":
            steps.append(
                {
                    "method": "PATCH",
                    "path": self._path(known or "{statuspage_incident_id}"),
                    "body": self.update_body(event, phase),
                }
            )
        request = {**steps[0], "then": steps[1:]}
        data = {} if known is None else {"statuspage_incident_id": known}
        return would(self.name, f"would set the status page to {phase}", request, **data)

    async def _create(self, event: IncidentEvent) -> str:
        answer = await self._call("POST", self._path(), self.create_body(event))
        incident_id = answer.get("id")
        if not isinstance(incident_id, str) or not incident_id:
            raise ActionError(f"statuspage notifier {self.name!r}: created incident has no id")
        return incident_id

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await send(
            self._http,
            method,
            self._base + path,
            what=f"statuspage notifier {self.name!r}",
            clock=self._clock,
            policy=self._policy,
            json=body,
            headers={"Authorization": f"OAuth {self._key.get_secret_value()}"},
            timeout_s=NOTIFY_TIMEOUT_S,
        )
        try:
            data = response.json()
        except ValueError:
            raise ActionError(
                f"statuspage notifier {self.name!r}: HTTP {response.status_code} is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise ActionError(f"statuspage notifier {self.name!r}: unexpected answer")
        return data
