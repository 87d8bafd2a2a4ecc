"""The rules file format (``version: 1``) as frozen pydantic models.

Loading, location tracking and cross-reference checks live in ``load``; this
module only says what a valid file looks like. Units are parsed here, so the rest
of the program sees seconds and ratios, never ``"5m"`` or ``"5%"``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from watchdog.rules.fields import (
    Confidence,
    Duration,
    EffectField,
    Model,
    Name,
    PositiveDuration,
    RatioEffect,
    Severity,
    Share,
    Threshold,
    ThresholdField,
)
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
from watchdog.rules.source_specs import (
    IMPLICIT_FIELDS as IMPLICIT_FIELDS,
)
from watchdog.rules.source_specs import (
    SOURCE_TYPES as SOURCE_TYPES,
)
from watchdog.rules.source_specs import (
    AlertmanagerSourceSpec as AlertmanagerSourceSpec,
)
from watchdog.rules.source_specs import (
    CloudflareSourceSpec as CloudflareSourceSpec,
)
from watchdog.rules.source_specs import (
    CloudflareTailSourceSpec as CloudflareTailSourceSpec,
)
from watchdog.rules.source_specs import (
    FlowSourceSpec as FlowSourceSpec,
)
from watchdog.rules.source_specs import (
    ProbeSourceSpec as ProbeSourceSpec,
)
from watchdog.rules.source_specs import (
    PrometheusSourceSpec as PrometheusSourceSpec,
)
from watchdog.rules.source_specs import (
    ScrapeSourceSpec as ScrapeSourceSpec,
)
from watchdog.rules.source_specs import (
    SourceSpec as SourceSpec,
)
from watchdog.units import Unit

# --- signals ---------------------------------------------------------------------------

ScrapeKind = Literal["error_ratio", "quantile", "gauge", "rate", "slow_ratio"]
Reduce = Literal["max", "min", "sum", "avg"]


class SignalSpec(Model):
    """One time series the rules hold against a threshold.

    Which keys apply depends on the source's type: ``query`` (or ``errors_query`` and
    ``requests_query``) for prometheus, ``kind`` and ``metric`` for scrape, ``field``
    for probe and cloudflare.
    """

    source: Name
    unit: Unit | None = None
    interval: PositiveDuration | None = None
    # prometheus: a ``query`` (its value), or ``errors_query`` over ``requests_query``
    # (two counts the watchdog divides). ``requests_query`` beside a ``query`` is the
    # traffic behind it, for ``min_requests``.
    query: str | None = None
    errors_query: str | None = None
    requests_query: str | None = None
    reduce: Reduce | None = None
    # scrape
    kind: ScrapeKind | None = None
    metric: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    status_label: str = "code"
    error_status: str = "5.."
    quantile: float = Field(default=0.95, gt=0.0, lt=1.0)
    # slow_ratio: requests slower than this bucket bound over all (a latency histogram)
    slower_than: PositiveDuration | None = None
    # probe, cloudflare
    field: str | None = None
    # alertmanager: the alert's name; ``labels`` must match too (equality)
    alertname: str | None = None

    @model_validator(mode="after")
    def _check_regex(self) -> SignalSpec:
        try:
            re.compile(self.error_status)
        except re.error as exc:
            raise ValueError(f"error_status is not a valid regular expression: {exc}") from None
        return self


# --- rules -----------------------------------------------------------------------------


class RegressionSpec(Model):
    """After a deploy of the rule's targets: errors since it against the same service
    before it, by an anytime-valid sequential test (``core.regression``)."""

    min_effect: EffectField  # 2x (a ratio) or +1.5% (an absolute increase)
    confidence: Confidence = 0.99
    # The look back before the deploy; the engine keeps an hour of samples.
    baseline: PositiveDuration = Field(default=3600.0, le=3600.0)
    watch: PositiveDuration = 3600.0  # how long after a deploy the test runs


class CanarySpec(Model):
    """During a gradual deployment of ``target``: the new version's errors against the
    old version's over the same minutes, by an anytime-valid sequential test
    (``core.canary``). With ``slower_than`` the test counts requests slower than that
    bound instead of errors (the signal's source counts them: ``rules.merge``)."""

    min_effect: RatioEffect
    confidence: Confidence = 0.99
    target: Name | None = None  # the Worker whose split is judged (default: the rollback's)
    slower_than: PositiveDuration | None = None


class BurnWindow(Model):
    """One pair of the SRE workbook's windows: both must burn faster than ``factor``."""

    long: PositiveDuration
    short: PositiveDuration
    factor: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnWindow:
        if not self.short < self.long:
            raise ValueError("'short' must be shorter than 'long'")
        return self


class BurnRateSpec(Model):
    """Multiwindow, multi-burn-rate alerting on an SLO (``core.burn``)."""

    objective: Confidence  # like 99.9%: the error budget is the rest
    windows: tuple[BurnWindow, ...] = Field(min_length=1)
    # For low traffic: a pair breaches only while the lower bound of both windows' error
    # ratios (``core.evidence``'s interval at this confidence) is past its bar; while
    # only the point ratios are, the rule is inconclusive. None: the point ratios (the
    # SRE workbook's rule).
    confidence: Confidence | None = None


class RuleSpec(Model):
    name: Name
    signal: str
    above: ThresholdField | None = None
    below: ThresholdField | None = None
    for_: Duration = Field(default=0.0, alias="for")
    mode: Literal["consecutive", "share"] = "consecutive"
    share: Share | None = None
    keep_firing_for: Duration = 0.0
    severity: Severity
    rollback: tuple[Name, ...] = ()
    notify: tuple[Name, ...] | None = None
    min_requests: float = Field(default=0.0, ge=0.0)
    blind_after: Duration | None = None
    dry_run: bool = False
    description: str = ""
    # A confidence rule weighs the error and request counts of its trailing ``window``:
    # it breaches only while the ratio's interval lies wholly past the threshold.
    confidence: Confidence | None = None
    window: PositiveDuration | None = None
    regression: RegressionSpec | None = None
    burn_rate: BurnRateSpec | None = None
    canary: CanarySpec | None = None

    @model_validator(mode="after")
    def _check_canary(self) -> RuleSpec:
        if self.canary is None:
            return self
        if self.regression is not None or self.burn_rate is not None:
            raise ValueError("give one of 'canary', 'regression' or 'burn_rate'")
        if self.above is not None or self.below is not None:
            raise ValueError(
                "a 'canary' rule compares the new version with the old: no above/below"
            )
        if self.confidence is not None or self.min_requests > 0 or self.mode != "consecutive":
            raise ValueError(
                "a 'canary' rule weighs counts itself: no confidence, min_requests or mode"
            )
        if self.canary.target is None and len(self.rollback) != 1:
            raise ValueError(
                "a 'canary' rule judges one Worker's split: name it in 'canary.target' "
                "or roll back exactly one target"
            )
        return self

    @property
    def canary_target(self) -> str:
        """The target whose split a canary rule judges."""
        assert self.canary is not None
        return self.canary.target or self.rollback[0]

    @model_validator(mode="after")
    def _check_confidence(self) -> RuleSpec:
        if self.confidence is not None and self.burn_rate is not None:
            raise ValueError(
                "a 'burn_rate' rule's confidence goes inside 'burn_rate' "
                "(burn_rate: {objective: 99.9%, confidence: 99.9%, windows: [...]})"
            )
        if self.confidence is None:
            if self.window is not None:
                raise ValueError("'window' applies only with 'confidence' (like 99%)")
            return self
        if self.window is None:
            raise ValueError("'confidence' needs a 'window' whose counts it weighs (like 10m)")
        if self.mode != "consecutive":
            raise ValueError("'confidence' works with mode: consecutive only")
        if self.min_requests > 0:
            raise ValueError("'confidence' already weighs the traffic: drop 'min_requests'")
        return self

    @model_validator(mode="after")
    def _check_comparison(self) -> RuleSpec:
        # A canary rule is checked by _check_canary.
        return self if self.canary is not None else self._check_kinds()

    def _check_kinds(self) -> RuleSpec:
        if self.burn_rate is not None and self.regression is not None:
            raise ValueError("give one of 'burn_rate' or 'regression'")
        if self.burn_rate is not None:
            if self.above is not None or self.below is not None:
                raise ValueError(
                    "a 'burn_rate' rule's bar comes from its objective: no above/below"
                )
            if self.min_requests > 0 or self.mode != "consecutive":
                raise ValueError("a 'burn_rate' rule weighs counts itself: no min_requests or mode")
            return self
        if self.regression is not None:
            if self.above is not None or self.below is not None:
                raise ValueError(
                    "a 'regression' rule compares with before the deploy: no above/below"
                )
            if self.confidence is not None or self.min_requests > 0 or self.mode != "consecutive":
                raise ValueError(
                    "a 'regression' rule weighs counts itself: no confidence, min_requests or mode"
                )
            return self
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        if self.mode == "share" and self.share is None:
            raise ValueError("mode 'share' needs 'share' (like 80%)")
        if self.mode == "consecutive" and self.share is not None:
            raise ValueError("'share' applies only with mode: share")
        if self.mode == "share" and self.for_ <= 0:
            raise ValueError("mode 'share' needs a 'for' window longer than 0s")
        return self

    @property
    def threshold(self) -> Threshold:
        if self.burn_rate is not None:  # the error budget
            budget = 1.0 - self.burn_rate.objective
            return Threshold(value=budget, unit="ratio", text=f"{budget * 100:g}% budget")
        if self.canary is not None:  # the smallest effect the canary test aims at
            ratio = self.canary.min_effect
            return Threshold(value=ratio, unit="number", text=f"{ratio:g}x")
        if self.regression is not None:  # the smallest effect the test aims at
            effect = self.regression.min_effect
            unit: Unit = "ratio" if effect.absolute else "number"
            return Threshold(value=effect.value, unit=unit, text=effect.text)
        threshold = self.above if self.above is not None else self.below
        assert threshold is not None  # guaranteed by _check_comparison
        return threshold

    @property
    def comparison(self) -> Literal["above", "below"]:
        if self.canary is not None:
            return "above"
        return "above" if self.above is not None else "below"


class Defaults(Model):
    interval: PositiveDuration = 15.0
    blind_after: Duration = 300.0


class RulesFile(Model):
    """One file as written. Several files merge into ``RuleSet`` (see ``rules.py``)."""

    version: Literal[1]
    defaults: Defaults | None = None
    sources: dict[Name, SourceSpec] = Field(default_factory=dict)
    signals: dict[Name, SignalSpec] = Field(default_factory=dict)
    targets: dict[Name, TargetSpec] = Field(default_factory=dict)
    purges: dict[Name, PurgeSpec] = Field(default_factory=dict)
    notifiers: dict[Name, NotifierSpec] = Field(default_factory=dict)
    rules: tuple[RuleSpec, ...] = ()
    severities: dict[Severity, SeverityPolicy] | None = None
    notify: tuple[Name, ...] | None = None
    after_rollback: AfterRollback | None = None
    escalation: tuple[EscalationLevel, ...] | None = None
    correlation: Correlation | None = None
    guards: Guards | None = None
    silence: SilencePolicy | None = None


SINGLETON_SECTIONS = (
    "defaults",
    "severities",
    "notify",
    "after_rollback",
    "escalation",
    "correlation",
    "guards",
    "silence",
)
NAMED_SECTIONS = ("sources", "signals", "targets", "purges", "notifiers")


def dump_spec(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_defaults=True)
