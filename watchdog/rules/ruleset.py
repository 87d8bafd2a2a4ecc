"""What loading yields: the merged, checked ``RuleSet`` and its ``ResolvedSignal``s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from watchdog.rules.fields import Severity
from watchdog.rules.model import Defaults, RuleSpec, SignalSpec, SourceSpec
from watchdog.rules.response import (
    AfterRollback,
    Correlation,
    EscalationLevel,
    Guards,
    NotifierSpec,
    PurgeSpec,
    SeverityPolicy,
    SilencePolicy,
    TargetSpec,
)
from watchdog.units import Unit


@dataclass(frozen=True, slots=True)
class Located:
    """Where a key path sits: file and 1-based line."""

    file: str
    line: int


@dataclass(frozen=True)
class ResolvedSignal:
    """A signal with its source and unit settled: what samplers and the evaluator use."""

    name: str
    source_name: str
    source: SourceSpec
    spec: SignalSpec
    unit: Unit
    interval: float


@dataclass(frozen=True)
class RuleSet:
    """All rules files merged and checked. Immutable: a reload builds a new one."""

    sources: Mapping[str, SourceSpec]
    signals: Mapping[str, ResolvedSignal]
    targets: Mapping[str, TargetSpec]
    purges: Mapping[str, PurgeSpec]
    notifiers: Mapping[str, NotifierSpec]
    rules: tuple[RuleSpec, ...]
    severities: Mapping[Severity, SeverityPolicy]
    notify: tuple[str, ...]
    after_rollback: AfterRollback
    escalation: tuple[EscalationLevel, ...]
    correlation: Correlation
    guards: Guards
    defaults: Defaults
    silence: SilencePolicy
    files: tuple[str, ...] = ()
    summaries: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def rules_by_name(self) -> Mapping[str, RuleSpec]:
        """Rules by name, built once (a reload of 10,000 rules looks each one up)."""
        return {rule.name: rule for rule in self.rules}

    def rule(self, name: str) -> RuleSpec:
        return self.rules_by_name[name]

    def blind_after(self, rule: RuleSpec) -> float:
        return rule.blind_after if rule.blind_after is not None else self.defaults.blind_after

    @cached_property
    def evidence_gap(self) -> float:
        """Silent longer than this (a rule going blind, or two intervals): no evidence,
        so a healthy run ends."""
        longest = max((s.interval for s in self.signals.values()), default=0.0)
        return max(self.defaults.blind_after, 2 * longest)
