"""What the evaluator and decider hand to the actions: an explicit, complete decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from watchdog.core.burn import BurnEvidence
from watchdog.core.evidence import Evidence
from watchdog.core.regression import RegressionEvidence
from watchdog.rules.fields import Severity
from watchdog.units import Unit, format_duration, format_value, iso


class DecisionKind(StrEnum):
    ROLLBACK = "rollback"  # roll back the targets
    NOTIFY = "notify"  # tell people, do not act
    BLIND = "blind"  # the watchdog has no evidence: tell people, never act
    RESOLVED = "resolved"  # the rule stopped breaching


@dataclass(frozen=True)
class Decision:
    """Everything a person needs to judge the call, and an action needs to carry it out."""

    kind: DecisionKind
    rule: str
    severity: Severity
    signal: str
    targets: tuple[str, ...]
    observed: float
    threshold: float
    comparison: str  # "above" | "below"
    unit: Unit
    window_s: float  # the rule's for:
    sample_count: int  # samples in the breach so far
    first_breach_at: float | None
    decided_at: float
    why: str
    requests: float | None = None
    dry_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # A confidence rule's counts, interval and threshold: what the verdict stood on.
    evidence: Evidence | None = None
    # A regression rule's counts before and since the deploy, effect and e-value.
    regression: RegressionEvidence | None = None
    # A burn-rate rule's pair of windows: both windows' counts against the pair's bar.
    burn: BurnEvidence | None = None

    @property
    def observed_text(self) -> str:
        return format_value(self.observed, self.unit)

    @property
    def threshold_text(self) -> str:
        return format_value(self.threshold, self.unit)

    def summary(self) -> str:
        """One line: ``error-rate: error_rate 7.2% > 5% for 5m (21 samples)``."""
        op = ">" if self.comparison == "above" else "<"
        line = (
            f"{self.rule}: {self.signal} {self.observed_text} {op} {self.threshold_text} "
            f"for {format_duration(self.window_s)} ({self.sample_count} samples)"
        )
        if self.regression is not None:
            return f"{self.rule}: {self.signal} regressed after a deploy; {self.regression.text()}"
        if self.burn is not None:
            return f"{self.rule}: {self.signal} error budget burning; {self.burn.text()}"
        return line if self.evidence is None else f"{line}; {self.evidence.text()}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["targets"] = list(self.targets)
        data["decided_at_iso"] = iso(self.decided_at)
        data["observed_text"] = self.observed_text
        data["threshold_text"] = self.threshold_text
        if self.first_breach_at is not None:
            data["first_breach_at_iso"] = iso(self.first_breach_at)
        if self.evidence is not None:
            data["evidence_text"] = self.evidence.text()
        if self.regression is not None:
            data["evidence_text"] = self.regression.text()
        if self.burn is not None:
            data["evidence_text"] = self.burn.text()
        return data
