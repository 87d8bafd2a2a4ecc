"""Bookkeeping: every step an event in the store, and the notifications that go with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watchdog.actions.ledger import Ledgers
from watchdog.actions.notify.event import EventKind, IncidentEvent, StatusPhase
from watchdog.actions.playbook import Playbook
from watchdog.clock import Clock
from watchdog.core.decision import Decision
from watchdog.incidents.model import Incident, Phase, log
from watchdog.model import ActionResult
from watchdog.rules.load import RuleSet
from watchdog.store.base import EventRecord, Store


class Recorder:
    """Writes an incident's phases and events and sends its notifications. Shared by
    the manager and its helpers; holds no incident state of its own."""

    def __init__(
        self,
        ruleset: Callable[[], RuleSet],
        playbook: Playbook,
        store: Store,
        clock: Clock,
        open_incidents: dict[str, Incident],
        dry_run: bool,
        on_event: Callable[[str, str, dict[str, Any]], None] | None,
    ) -> None:
        self._ruleset = ruleset
        self.playbook = playbook
        self.store = store
        self.clock = clock
        self.open = open_incidents  # the manager's dict: statuspage ids land on open ones
        self.dry_run = dry_run
        self.on_event = on_event
        # The version ledger of every target (the playbook's targets, after reloads too).
        self.ledgers = Ledgers(store, clock, lambda: self.playbook.targets)

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset()

    def dry(self, decision: Decision) -> bool:
        return self.dry_run or decision.dry_run

    async def save(self, incident: Incident) -> None:
        """Write the incident, its typed state as the store's JSON."""
        incident.record.state_json = incident.state.to_json()
        await self.store.save_incident(incident.record)

    async def set_phase(self, incident: Incident, phase: Phase) -> None:
        """The new phase, saved with the state (the caller sets its deadlines first)."""
        incident.record.phase = phase.value
        await self.save(incident)
        await self.event(incident.id, "phase", {"phase": phase.value})

    async def event(self, incident_id: str, kind: str, data: dict[str, Any]) -> None:
        await self.store.add_event(EventRecord(incident_id, self.clock.now(), kind, data))
        log.info(
            "incident event",
            incident=incident_id,
            step=kind,
            **{k: v for k, v in data.items() if k in ("why", "phase", "target")},
        )
        if self.on_event is not None:
            self.on_event(incident_id, kind, data)

    async def record_results(self, incident_id: str, results: list[ActionResult]) -> None:
        for result in results:
            await self.event(
                incident_id,
                "action",
                {
                    "action": result.action,
                    "target": result.target,
                    "ok": result.ok,
                    "would": result.would,
                    "detail": result.detail,
                },
            )
            incident = self.open.get(incident_id)
            page_id = result.data.get("statuspage_incident_id")
            if incident is not None and page_id:
                incident.state.statuspage[result.target] = str(page_id)

    def notifier_names(self, rule_name: str) -> list[str]:
        ruleset = self.ruleset
        try:
            rule = ruleset.rule(rule_name)
        except KeyError:
            return list(ruleset.notify)
        return list(rule.notify if rule.notify is not None else ruleset.notify)

    def incident_event(self, incident: Incident, kind: EventKind, **fields: Any) -> IncidentEvent:
        return IncidentEvent(
            kind=kind,
            incident_id=incident.id,
            decision=incident.decision,
            occurred_at=self.clock.now(),
            **fields,
        )

    async def notify(
        self,
        incident: Incident,
        kind: EventKind,
        phase: StatusPhase | None = None,
        message: str = "",
        rolled_back: Any = (),
        actions: Any = (),
        dry: bool | None = None,
    ) -> list[ActionResult]:
        event = self.incident_event(
            incident,
            kind,
            status_phase=phase,
            message=message,
            rolled_back=rolled_back,
            actions=actions,
        )
        dry_run = self.dry(incident.decision) if dry is None else dry
        results = await self.playbook.notify(
            event, self.notifier_names(incident.record.rule), dry_run
        )
        if kind not in (EventKind.ROLLING_BACK,):
            await self.record_results(incident.id, results)
        return results
