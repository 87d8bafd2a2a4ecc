"""After a restart or an election: the store's open incidents back in memory, and
actions a crash left at 'intent' reconciled with what is live."""

from __future__ import annotations

from watchdog.errors import StoreError
from watchdog.incidents.escalation import escalate
from watchdog.incidents.lifecycle import Lifecycle
from watchdog.incidents.model import Incident, Phase, log
from watchdog.incidents.recorder import Recorder
from watchdog.incidents.rollback import Rollbacks
from watchdog.incidents.state import load_state
from watchdog.model import TargetState
from watchdog.store.base import ActionRecord


async def restore(rec: Recorder, rollbacks: Rollbacks, lifecycle: Lifecycle) -> None:
    """Load open incidents and reconcile actions left at 'intent' by a crash."""
    for record in await rec.store.open_incidents():
        rec.open[record.id] = Incident(record, load_state(record))
    for action in await rec.store.unfinished_actions():
        await reconcile(rec, action)
    for incident in list(rec.open.values()):
        if incident.phase is not Phase.ROLLING_BACK:
            continue
        if incident.decision.extra.get("manual"):
            # A person's rollback whose command is gone (Ctrl-C, a lost session, a
            # killed CLI): nobody asks for it any more, and what is live may have moved.
            await interrupted_manual(rec, lifecycle, incident)
        else:
            # The process died mid-playbook: finish it (journalled steps are not redone).
            rollbacks.start(incident, resumed=True)
    if rec.open:
        log.info("incidents restored", open=sorted(rec.open))


async def reconcile(rec: Recorder, action: ActionRecord) -> None:
    """An action journalled as intent but never finished: read the remote state."""
    incident_id, kind, target, intent = (
        action.incident_id,
        action.kind,
        action.target,
        action.intent,
    )
    if kind == "rollback" and target in rec.playbook.targets:
        try:
            state = (await rec.playbook.inspect([target]))[target]
            other = await _sent_by_another(rec, action)
        except StoreError:
            return
        if not (
            isinstance(state, TargetState)
            and state.live is not None
            and (state.live.version == intent.get("to"))
        ):
            # It stays 'intent': the resumed playbook re-runs it, and the target
            # re-reads what is live before it posts anything.
            return
        if other is not None:
            # What is live is another incident's rollback, sent after this intent:
            # this one's request was never sent (its writer died first).
            detail = f"not sent: incident {other} rolled {target} back to {intent['to']} meanwhile"
            await rec.store.journal_outcome(
                action.key,
                "failed",
                {"ok": False, "detail": detail, "data": {"reconciled": True}},
                rec.clock.now(),
            )
            log.info(
                "an unsent rollback found done by another incident",
                incident=incident_id,
                target=target,
                by=other,
            )
            return
        await rec.store.journal_outcome(
            action.key,
            "done",
            {
                "ok": True,
                "detail": f"completed before a restart: live is {intent['to']}",
                "data": {"reconciled": True},
            },
            rec.clock.now(),
        )
        await rec.event(incident_id, "reconciled", {"target": target, "live": intent.get("to")})
        log.info(
            "reconciled a rollback that finished before the restart",
            incident=incident_id,
            target=target,
        )


async def _sent_by_another(rec: Recorder, action: ActionRecord) -> str | None:
    """The incident whose rollback of the same target to the same version was done
    after ``action``'s intent was written, if any: live is then its doing."""
    for row in await rec.store.rollbacks_since(action.created_at, action.target):
        if (
            row.incident_id != action.incident_id
            and row.state == "done"
            and row.intent.get("to") == action.intent.get("to")
        ):
            return row.incident_id
    return None


async def interrupted_manual(rec: Recorder, lifecycle: Lifecycle, incident: Incident) -> None:
    """A manual rollback found unfinished by a new process: never carried out by the
    daemon (a person decided, and only while their command ran). What its journal
    says was done is recorded (a version rolled away from stays so); the incident is
    escalated as interrupted and closed without an all-clear."""
    done: list[tuple[str, str, str]] = []
    undone: list[tuple[str, str, str]] = []
    for row in await rec.store.actions(incident.id):
        if row.kind != "rollback":
            continue
        step = (row.target, str(row.intent.get("from", "")), str(row.intent.get("to", "")))
        (done if row.state == "done" else undone).append(step)
    if done:
        await rec.ledgers.rolled_back(incident.id, done)
        incident.state.rolled_back = done
    said = [f"{t}: {f} -> {to} done" for t, f, to in done]
    said += [f"{t}: {f} -> {to} not done" for t, f, to in undone]
    why = (
        "a manual rollback was interrupted before it finished (its command is gone); the "
        "watchdog does not carry out a person's rollback on its own"
        + (f" ({'; '.join(said)})" if said else ": nothing was rolled back")
    )
    log.warning("interrupted manual rollback not resumed", incident=incident.id)
    await escalate(rec, incident, why)
    await lifecycle.close(incident, why)
