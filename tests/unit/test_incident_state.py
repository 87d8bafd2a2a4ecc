"""The incident's typed state in the store: strict JSON with a ``format``, every field
read back as written, the clock-jump shift found by type, and a stored state this
watchdog cannot read refused naming the incident and the key."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from typing import Any

import pytest

from watchdog.errors import StoreError
from watchdog.incidents.model import manual_decision
from watchdog.incidents.state import (
    FORMAT,
    INSTANTS,
    Blocked,
    Hold,
    IncidentState,
    Instant,
    load_state,
)
from watchdog.store.base import IncidentRecord

T0 = 1_790_000_000.0
# The hand-kept list the typed state replaces (incidents/model.py before it).
OLD_CLOCK_FIELDS = {
    "grace_until",
    "escalate_at",
    "verify_started",
    "stable_until",
    "escalated_at",
    "rolled_back_at",
    "resume_at",
    "evidence_after",
    "refused_at",
    "late_from",
}


def everything_set() -> IncidentState:
    """A state with every field away from its default, NaN and infinity included."""
    decision = replace(manual_decision(["worker"], "bad v3", "ana", T0), threshold=-math.inf)
    state = IncidentState(
        decision,
        baselines={"p95": 0.4, "error_rate": None},
        statuspage={"status": "sp-1"},
        joined_rules=["slow-p95"],
        deployed_at={"worker": T0 - 600},
        rolled_back=[("worker", "v3", "v2")],
        verify={"p95:baseline": "passed: p95 400ms"},
        escalation_sent=2,
        escalation_why="the rollback did not help",
        blocked=Blocked(Hold.GUARDS, targets={"frontend": "cooldown"}),
        store_failure_told=True,
    )
    for n, name in enumerate(sorted(INSTANTS)):
        setattr(state, name, Instant(T0 + n))
    return state


def record(state_json: str, incident_id: str = "20260921T142335Z-error-rate") -> IncidentRecord:
    return IncidentRecord(
        incident_id, T0, "error-rate", "critical", "watching", ["worker"], state_json=state_json
    )


def refuse_constant(token: str) -> Any:
    raise AssertionError(f"not strict JSON: {token}")


def test_the_stored_state_is_strict_json_and_reads_back_field_by_field() -> None:
    state = everything_set()
    default = IncidentState(state.decision)
    for f in fields(IncidentState):
        assert f.name == "decision" or getattr(state, f.name) != getattr(default, f.name), f.name
    text = state.to_json()
    doc = json.loads(text, parse_constant=refuse_constant)
    assert doc["format"] == FORMAT == 1
    assert doc["state"]["decision"]["observed"] == "NaN"
    assert doc["state"]["decision"]["threshold"] == "-Infinity"
    back = load_state(record(text))
    assert math.isnan(back.decision.observed)
    assert back.decision.threshold == -math.inf
    assert replace(back, decision=state.decision) == state
    assert back.to_json() == text


@pytest.mark.parametrize("blocked", [Blocked(Hold.SILENCED), Blocked(Hold.STORE_FAILED, "full")])
def test_every_kind_of_hold_reads_back(blocked: Blocked) -> None:
    state = IncidentState(manual_decision(["worker"], "r", "a", T0), blocked=blocked)
    assert load_state(record(state.to_json())).blocked == blocked


def test_a_clock_jump_moves_every_moment_and_nothing_else() -> None:
    """The moments are found by their type (``Instant``), so the hand-kept list is gone;
    they are exactly the ones it named. A deploy's time and the decision's stay."""
    assert set(INSTANTS) == OLD_CLOCK_FIELDS
    state = everything_set()
    before = replace(state)
    state.grace_until = None
    state.shift(-3600.0)
    assert state.grace_until is None
    for name in set(INSTANTS) - {"grace_until"}:
        assert getattr(state, name) == getattr(before, name) - 3600.0, name
    assert state.deployed_at == before.deployed_at
    assert state.decision == before.decision


def legacy(**extra: object) -> str:
    """A format-0 row's data, as the code before wrote it (json.dumps of a dict)."""
    decision = manual_decision(["worker"], "r", "a", T0).to_dict()
    return json.dumps({"decision": decision, "statuspage": {}, "baselines": {}, **extra})


@pytest.mark.parametrize(
    ("state_json", "says"),
    [
        (legacy(rolled_back_twice=True), "a key this watchdog does not know: 'rolled_back_twice'"),
        (
            json.dumps({"format": 1, "state": {**json.loads(legacy()), "mystery": 1}}),
            "a key this watchdog does not know: 'mystery'",
        ),
        (
            json.dumps({"format": 1, "state": json.loads(legacy()), "note": "x"}),
            "a key this watchdog does not know: 'note'",
        ),
        (
            legacy(decision={**json.loads(legacy())["decision"], "confidence": 0.9}),
            "a key this watchdog does not know: 'decision.confidence'",
        ),
        (legacy(grace_until="soon"), "'grace_until': Input should be a valid number"),
        (json.dumps({"statuspage": {}}), "'decision' is missing"),
        (json.dumps({"format": 2, "state": {}}), "format 2; this watchdog reads formats 0 to 1"),
        ("[1]", "is not a JSON object"),
        ("{", "is not JSON"),
    ],
)
def test_a_state_it_cannot_read_is_refused_naming_the_incident_and_the_key(
    state_json: str, says: str
) -> None:
    """Refused, not dropped: the state says what was done (rolled back, refused, told),
    and a fact misread or lost at the next save could repeat an action."""
    with pytest.raises(StoreError) as caught:
        load_state(record(state_json, "20260921T142335Z-error-rate"))
    assert "incident 20260921T142335Z-error-rate" in str(caught.value)
    assert says in str(caught.value)
