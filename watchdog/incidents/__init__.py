"""Incidents: what the watchdog does with a decision, safely.

A firing rule opens an incident (or joins the open one for the same targets). The
severity matrix decides: ``critical`` rolls back at once; ``high`` waits a grace
period and rolls back only if the breach is still there; ``medium`` notifies and
escalates if it lasts; ``low`` notifies. Before any rollback:

- deploy correlation: the live deploy must have gone live before the breach began
  and be younger than ``max_deploy_age``; otherwise a rollback would not help, so
  notify and escalate instead;
- guards: one automatic rollback per target per incident (the journal key), a
  cooldown per target, a global cap per hour;
- silences: a silenced action is recorded and notified as "would have rolled
  back", never taken.

After a rollback: purge, verify (below a value / back to the pre-incident baseline
within a time), then Monitoring, Resolved after a stable period and the all-clear;
not verified escalates along the ladder. Never a second rollback.

Every step is an event in the store; deadlines live in the incident's data, so a
restarted watchdog picks the incident up where it was. Time comes from the clock.

The modules, one job each:

- ``model``: phases, the incident, decisions to and from the store;
- ``recorder``: events, phases and notifications, written for every step;
- ``manager``: ``IncidentManager``, decisions in, opening and joining incidents;
- ``lifecycle``: the phases after opening, driven by ``tick``, up to closing;
- ``rollback``: planning and running a rollback, and what follows it;
- ``guards``: deploy correlation, cooldown and the hourly cap;
- ``verification``: goals, baselines and the checks after a rollback;
- ``escalation``: the ladder, and telling people when the watchdog cannot act;
- ``restore``: open incidents and unfinished actions back after a restart.
"""

from __future__ import annotations

from watchdog.incidents.manager import IncidentManager
from watchdog.incidents.model import (
    RESUME_AFTER_S,
    EngineView,
    Incident,
    Phase,
    decision_from,
    rollback_message,
)

__all__ = [
    "RESUME_AFTER_S",
    "EngineView",
    "Incident",
    "IncidentManager",
    "Phase",
    "decision_from",
    "rollback_message",
]
