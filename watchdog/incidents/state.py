"""An incident's typed state (what it decided, waits for and did) and its strict-JSON
form in the store, with the format before it still read.

Format 1 (written): ``{"format": 1, "state": {...}}``, every field of ``IncidentState``,
non-finite numbers as the strings ``"NaN"``/``"Infinity"``/``"-Infinity"`` (a manual
rollback's decision has no observed value). Format 0 (read only): the string-keyed dict
the watchdog kept before, no ``format`` key, NaN as a bare token; a closed incident
keeps it (the post-mortem reads it), an open one is rewritten at its next save.

A key this watchdog does not know is refused, naming the incident and the key: the
state says what was done (rolled back, refused, told), and a fact read wrongly or
dropped at the next save could repeat an action.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, NewType, get_args, get_type_hints

from pydantic import ConfigDict, TypeAdapter, ValidationError

from watchdog.core.decision import Decision
from watchdog.errors import StoreError
from watchdog.store.base import IncidentRecord

# A wall-clock moment (Unix seconds) an incident waits for or measures from: moved
# with the wall clock when it jumps (``IncidentState.shift``). Other times (a deploy's,
# a decision's) are facts about the past and stay.
Instant = NewType("Instant", float)

FORMAT = 1
# Strict JSON that still says NaN and infinity apart from a missing value.
_CONFIG = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

RolledBack = tuple[str, str, str]  # target, from version, to version


class Hold(StrEnum):
    """What holds an incident's rollback."""

    STORE_FAILED = "store_failed"  # its intent could not be written: refused, retried
    GUARDS = "guards"  # a guard blocked every target (escalated)
    SILENCED = "silenced"  # silences hold it: taken once none does


@dataclass(frozen=True)
class Blocked:
    """Why the incident's rollback is not being taken."""

    __pydantic_config__ = _CONFIG

    by: Hold
    why: str = ""  # STORE_FAILED: the store's error
    targets: dict[str, str] = field(default_factory=dict)  # GUARDS: per target, why


@dataclass
class IncidentState:
    """Everything an incident keeps beyond its columns; saved with every step."""

    __pydantic_config__ = _CONFIG

    decision: Decision  # the one driving it (a more urgent joining rule's replaces it)
    baselines: dict[str, float | None] = field(default_factory=dict)  # signal: before
    statuspage: dict[str, str] = field(default_factory=dict)  # notifier: its page incident
    joined_rules: list[str] = field(default_factory=list)
    deployed_at: dict[str, float] = field(default_factory=dict)  # target: live deploy's time
    rolled_back: list[RolledBack] = field(default_factory=list)
    verify: dict[str, str] = field(default_factory=dict)  # "signal:below|baseline": verdict
    escalation_sent: int = 0  # the highest ladder level told
    escalation_why: str = ""
    blocked: Blocked | None = None
    store_failure_told: bool = False
    grace_until: Instant | None = None
    escalate_at: Instant | None = None
    verify_started: Instant | None = None
    stable_until: Instant | None = None
    escalated_at: Instant | None = None
    rolled_back_at: Instant | None = None
    resume_at: Instant | None = None
    evidence_after: Instant | None = None  # set by a clock jump: evidence counts after it
    refused_at: Instant | None = None
    late_from: Instant | None = None

    def shift(self, seconds: float) -> None:
        """The wall clock jumped by ``seconds``: every moment set moves with it."""
        for name in INSTANTS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Instant(value + seconds))

    def to_json(self) -> str:
        """The stored form (format 1), strict JSON."""
        return _STORED.dump_json(_Stored(FORMAT, self)).decode()


def deadline(at: Instant | None) -> float:
    """A moment waited for; one not set never comes."""
    return math.inf if at is None else at


@dataclass
class _Stored:
    __pydantic_config__ = _CONFIG

    format: int
    state: IncidentState


def _instants() -> tuple[str, ...]:
    hints = get_type_hints(IncidentState)
    return tuple(f.name for f in fields(IncidentState) if Instant in get_args(hints[f.name]))


INSTANTS = _instants()  # the fields ``shift`` moves, found by their type
_STORED = TypeAdapter(_Stored)
_STATE = TypeAdapter(IncidentState)
_DECISION = TypeAdapter(Decision)
# What ``Decision.to_dict`` adds for people; format 0 stored it, no decision reads it.
_SHOWN = ("_iso", "_text")


def load_state(record: IncidentRecord) -> IncidentState:
    """The state of a stored incident, in either format; a ``StoreError`` naming the
    incident and the key when it does not read."""
    where = f"incident {record.id}"
    try:
        doc = json.loads(record.state_json)
    except ValueError as exc:
        raise StoreError(f"{where}: its stored state is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise StoreError(f"{where}: its stored state is not a JSON object")
    version = doc.get("format", 0)
    try:
        if version == FORMAT:
            unknown = sorted(set(doc) - {"format", "state"})
            if unknown:
                raise StoreError(
                    f"{where}: its stored state (format {version}) does not read: a key "
                    f"this watchdog does not know: {unknown[0]!r}"
                )
            return _STATE.validate_python(doc.get("state"))
        if version == 0:
            return _STATE.validate_python(_from_format0(doc))
    except ValidationError as exc:
        problems = _problems(exc)
        raise StoreError(
            f"{where}: its stored state (format {version}) does not read: {problems}"
        ) from exc
    raise StoreError(
        f"{where}: its stored state is format {version!r}; this watchdog reads formats 0 to "
        f"{FORMAT} (a newer watchdog wrote it: upgrade)"
    )


def decision_from(data: Mapping[str, Any]) -> Decision:
    """A decision from its JSON (``Decision.to_dict``, what people see included)."""
    return _DECISION.validate_python(_bare(data))


def _bare(decision: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if not k.endswith(_SHOWN)}


def _from_format0(doc: dict[str, Any]) -> dict[str, Any]:
    """Format 0's dict in format 1's shapes: the decision without what ``to_dict`` adds
    for people, and ``blocked`` (a store error's text, per-target guard reasons, or
    ``{"silenced": true}``) as a ``Blocked``. Any other key must be a field."""
    state = dict(doc)
    decision = state.get("decision")
    if isinstance(decision, dict):
        state["decision"] = _bare(decision)
    if "blocked" in state:
        blocked = state["blocked"]
        if isinstance(blocked, str):
            state["blocked"] = {"by": Hold.STORE_FAILED.value, "why": blocked}
        elif blocked == {"silenced": True}:
            state["blocked"] = {"by": Hold.SILENCED.value}
        elif isinstance(blocked, dict):
            state["blocked"] = {"by": Hold.GUARDS.value, "targets": blocked}
    return state


def _problems(exc: ValidationError) -> str:
    said = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "the state"
        if error["type"] == "unexpected_keyword_argument":
            said.append(f"a key this watchdog does not know: {path!r}")
        elif error["type"] in ("missing", "missing_argument"):
            said.append(f"{path!r} is missing")
        else:
            said.append(f"{path!r}: {error['msg']}")
    return "; ".join(said)
