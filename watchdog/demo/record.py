"""What a demo run did that the strict verdict judges, and the verdict itself."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from watchdog import strict_json


@dataclass
class RunRecord:
    """What a demo run did that the strict verdict judges, apart from its scenario's
    outcome: failed actions, logged errors and tracebacks, and blindness. Saved with
    ``demo --record FILE`` (JSON), so a recorded run can be judged again."""

    scenario: str
    virtual_time: bool
    acted_at: float | None = None  # seconds after the start, when the scenario acted
    failed_actions: list[str] = field(default_factory=list)
    failures_counted: int = 0  # watchdog_actions_total{outcome="failure"}
    logged: list[str] = field(default_factory=list)  # error lines and tracebacks
    blind_at_act: list[str] = field(default_factory=list)  # rules without evidence then
    went_blind: list[tuple[float, str]] = field(default_factory=list)  # (at, rule)
    blind_alarms: list[tuple[float, str]] = field(default_factory=list)  # (at, why)
    not_ready_at_act: str | None = None  # /readyz's reason when the scenario acted

    def to_json(self) -> str:
        return strict_json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        data["went_blind"] = [(float(at), str(rule)) for at, rule in data["went_blind"]]
        data["blind_alarms"] = [(float(at), str(why)) for at, why in data["blind_alarms"]]
        data.setdefault("not_ready_at_act", None)  # records saved before it was judged
        return cls(**data)


def strict_problems(record: RunRecord, may_blind: frozenset[str] = frozenset()) -> list[str]:
    """Everything that makes a run fail whatever its outcome: a failed action, a logged
    error or traceback, a rule with no evidence after the warm-up, a blind alarm."""
    problems = [f"action failed: {text}" for text in record.failed_actions]
    if record.failures_counted > len(record.failed_actions):
        problems.append(
            f"watchdog_actions_total counts {record.failures_counted} failed action(s), "
            f"{len(record.failed_actions)} of them reported"
        )
    for line, times in Counter(record.logged).items():
        problems.append(f"logged {line}" + (f" ({times} times)" if times > 1 else ""))
    problems += [
        f"rule {rule} was blind when the scenario began (no evidence in the warm-up)"
        for rule in record.blind_at_act
        if rule not in may_blind
    ]
    problems += [
        f"rule {rule} went blind at +{at:.1f}s"
        for at, rule in record.went_blind
        if rule not in may_blind and (record.acted_at is None or at >= record.acted_at)
    ]
    problems += [f"blind alarm at +{at:.1f}s: {why}" for at, why in record.blind_alarms]
    if record.not_ready_at_act is not None:  # a source erring all along, under idle rules
        problems.append(
            f"the watchdog was not ready when the scenario began: {record.not_ready_at_act}"
        )
    return problems
