"""The rules file format (``version: 1``) as frozen pydantic models.

Loading, location tracking and cross-reference checks live in ``rules.py``; this
module only says what a valid file looks like. Units are parsed here, so the rest
of the program sees seconds and ratios, never ``"5m"`` or ``"5%"``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from watchdog.units import (
    MAX_RULES_DURATION,
    Unit,
    parse_duration,
    parse_share,
    parse_threshold,
)

# Validation context of a file a person wrote: durations need a unit and stay below
# MAX_RULES_DURATION. Models built in code (already in seconds) are not held to it.
FILE_CONTEXT = {"file": True}


def _duration(value: object, info: ValidationInfo) -> float:
    from_file = bool(info.context and info.context.get("file"))
    seconds = parse_duration(value, need_unit=from_file)
    if from_file and seconds > MAX_RULES_DURATION:
        raise ValueError(
            f"{value} is longer than the {MAX_RULES_DURATION / 86400:g}d a rules file allows"
        )
    return seconds


def _positive_duration(value: object, info: ValidationInfo) -> float:
    seconds = _duration(value, info)
    if not seconds > 0:
        raise ValueError(f"must be longer than 0s, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]
# A timeout or a sampling interval: 0 would spin or never wait.
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Share = Annotated[float, BeforeValidator(parse_share)]


def _confidence(value: object) -> float:
    share = parse_share(value)
    if not 0.5 <= share < 1.0:
        raise ValueError(f"expected a confidence from 50% to below 100% (like 99%), got {value!r}")
    return share


Confidence = Annotated[float, BeforeValidator(_confidence)]


def _effect(value: object) -> float:
    """A relative effect: ``"2x"`` or ``2`` → 2.0, above 1."""
    text = str(value).strip()
    number = text[:-1] if text.endswith("x") else text
    try:
        effect = float(number)
    except ValueError:
        raise ValueError(f"expected an effect like 2x, got {value!r}") from None
    if not 1.0 < effect <= 1000.0:
        raise ValueError(f"an effect must be above 1x and at most 1000x, got {value!r}")
    return effect


Effect = Annotated[float, BeforeValidator(_effect)]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


def _threshold(value: object) -> Threshold:
    if isinstance(value, Threshold):
        return value
    number, unit = parse_threshold(value)
    return Threshold(value=number, unit=unit, text=str(value))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Threshold(Model):
    value: float
    unit: Unit
    text: str


ThresholdField = Annotated[Threshold, BeforeValidator(_threshold)]


# --- sources ---------------------------------------------------------------------------


class PrometheusSourceSpec(Model):
    type: Literal["prometheus"]
    url: str
    timeout: PositiveDuration = 5.0
    interval: PositiveDuration | None = None
    max_bytes: int = Field(default=20_000_000, gt=0)  # an answer is one number; cap it


class ScrapeSourceSpec(Model):
    type: Literal["scrape"]
    url: str
    timeout: PositiveDuration = 5.0
    interval: PositiveDuration | None = None
    max_bytes: int = Field(default=20_000_000, gt=0)


class ProbeSourceSpec(Model):
    type: Literal["probe"]
    url: str
    timeout: PositiveDuration = 5.0
    interval: PositiveDuration | None = None
    expect_status: tuple[int, ...] = (200,)


class CloudflareSourceSpec(Model):
    """Workers analytics over GraphQL. ``delay`` skips the newest, still-incomplete minutes."""

    type: Literal["cloudflare"]
    script: str
    account: str | None = None
    timeout: PositiveDuration = 10.0
    interval: PositiveDuration | None = None
    window: PositiveDuration = 300.0
    delay: Duration = 180.0


SourceSpec = Annotated[
    PrometheusSourceSpec | ScrapeSourceSpec | ProbeSourceSpec | CloudflareSourceSpec,
    Field(discriminator="type"),
]
SOURCE_TYPES = ("prometheus", "scrape", "probe", "cloudflare")

# Fields that a `source.field` shorthand may name, per source type, with their unit.
IMPLICIT_FIELDS: dict[str, dict[str, Unit]] = {
    "probe": {"up": "number", "latency": "seconds"},
    "cloudflare": {
        "error_rate": "ratio",
        "requests": "number",
        "wall_time_p50": "seconds",
        "wall_time_p99": "seconds",
        "cpu_time_p99": "seconds",
    },
}

# --- signals ---------------------------------------------------------------------------

ScrapeKind = Literal["error_ratio", "quantile", "gauge", "rate"]
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
    # probe, cloudflare
    field: str | None = None

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

    min_effect: Effect
    confidence: Confidence = 0.99
    # The look back before the deploy; the engine keeps an hour of samples.
    baseline: PositiveDuration = Field(default=3600.0, le=3600.0)
    watch: PositiveDuration = 3600.0  # how long after a deploy the test runs


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

    @model_validator(mode="after")
    def _check_confidence(self) -> RuleSpec:
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
        if self.burn_rate is not None and self.regression is not None:
            raise ValueError("give one of 'burn_rate' or 'regression'")
        if self.burn_rate is not None:
            if self.above is not None or self.below is not None:
                raise ValueError(
                    "a 'burn_rate' rule's bar comes from its objective: no above/below"
                )
            if self.confidence is not None or self.min_requests > 0 or self.mode != "consecutive":
                raise ValueError(
                    "a 'burn_rate' rule weighs counts itself: no confidence, min_requests or mode"
                )
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
        if self.regression is not None:  # the smallest effect the test aims at
            effect = self.regression.min_effect
            return Threshold(value=effect, unit="number", text=f"{effect:g}x")
        threshold = self.above if self.above is not None else self.below
        assert threshold is not None  # guaranteed by _check_comparison
        return threshold

    @property
    def comparison(self) -> Literal["above", "below"]:
        return "above" if self.above is not None else "below"


# --- targets ---------------------------------------------------------------------------


class WorkerTargetSpec(Model):
    type: Literal["cloudflare-worker"]
    script: str
    account: str | None = None
    on_secret_changed: Literal["refuse", "force"] = "refuse"
    purge: tuple[Name, ...] = ()


class PagesTargetSpec(Model):
    type: Literal["cloudflare-pages"]
    project: str
    account: str | None = None
    purge: tuple[Name, ...] = ()


class GithubWorkflowTargetSpec(Model):
    """Roll back by dispatching the runbook's ``rollback.yml`` in CI instead of calling the API."""

    type: Literal["github-workflow"]
    repo: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    workflow: str = "rollback.yml"
    ref: str = "main"
    component: Literal["worker", "frontend", "both"] = "both"
    token_secret: str = "github_token"
    api_url: str = "https://api.github.com"
    purge: tuple[Name, ...] = ()


TargetSpec = Annotated[
    WorkerTargetSpec | PagesTargetSpec | GithubWorkflowTargetSpec, Field(discriminator="type")
]
TARGET_TYPES = ("cloudflare-worker", "cloudflare-pages", "github-workflow")

# --- purges ----------------------------------------------------------------------------


class AppCachePurgeSpec(Model):
    """The runbook's ``DELETE /api/admin/cache`` with a bearer token."""

    type: Literal["app-admin"]
    url: str
    method: Literal["DELETE", "POST"] = "DELETE"
    token_secret: str = "app_admin_token"


class ZonePurgeSpec(Model):
    type: Literal["cloudflare-zone"]
    zone: str
    everything: bool = False
    tags: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> ZonePurgeSpec:
        kinds = [k for k in ("tags", "hosts", "prefixes", "files") if getattr(self, k)] + (
            ["everything"] if self.everything else []
        )
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of everything: true, tags, hosts, prefixes or files "
                f"(got {', '.join(kinds) or 'none'})"
            )
        return self


PurgeSpec = Annotated[AppCachePurgeSpec | ZonePurgeSpec, Field(discriminator="type")]
PURGE_TYPES = ("app-admin", "cloudflare-zone")

# --- notifiers -------------------------------------------------------------------------


class SlackNotifierSpec(Model):
    type: Literal["slack"]
    webhook_secret: str = "slack_webhook"


class WebhookNotifierSpec(Model):
    type: Literal["webhook"]
    url_secret: str = "webhook_url"
    hmac_secret: str | None = "webhook_hmac_key"


class PagerDutyNotifierSpec(Model):
    type: Literal["pagerduty"]
    routing_key_secret: str = "pagerduty_routing_key"
    url: str = "https://events.pagerduty.com/v2/enqueue"


class StatuspageNotifierSpec(Model):
    type: Literal["statuspage"]
    page_id: str
    component_id: str | None = None
    api_key_secret: str = "statuspage_api_key"
    url: str = "https://api.statuspage.io/v1"


class SentryNotifierSpec(Model):
    type: Literal["sentry"]


NotifierSpec = Annotated[
    SlackNotifierSpec
    | WebhookNotifierSpec
    | PagerDutyNotifierSpec
    | StatuspageNotifierSpec
    | SentryNotifierSpec,
    Field(discriminator="type"),
]
NOTIFIER_TYPES = ("slack", "webhook", "pagerduty", "statuspage", "sentry")

# --- policy ----------------------------------------------------------------------------


class SeverityPolicy(Model):
    act: Literal["rollback", "notify"]
    grace: Duration = 0.0
    escalate_after: Duration | None = None


def runbook_severities() -> dict[Severity, SeverityPolicy]:
    """The team runbook's decision matrix, used when a rules file has none."""
    return {
        "critical": SeverityPolicy(act="rollback"),
        "high": SeverityPolicy(act="rollback", grace=600.0),
        "medium": SeverityPolicy(act="notify", escalate_after=1800.0),
        "low": SeverityPolicy(act="notify"),
    }


class VerifyCheck(Model):
    """After a rollback: ``signal`` below a value, or back to its pre-incident baseline."""

    signal: str
    below: ThresholdField | None = None
    baseline: bool = False
    tolerance: Share = 0.2
    within: Duration

    @model_validator(mode="after")
    def _one_goal(self) -> VerifyCheck:
        if (self.below is None) == (not self.baseline):
            raise ValueError("give exactly one of 'below' or 'baseline: true'")
        return self


class AfterRollback(Model):
    purge: tuple[Name, ...] = ()
    verify: tuple[VerifyCheck, ...] = ()
    stable_for: Duration = 300.0


class EscalationLevel(Model):
    level: int = Field(ge=1, le=10)
    name: str = ""
    after: Duration = 0.0
    notify: tuple[Name, ...]


class Correlation(Model):
    """Roll back only a deploy that explains the breach."""

    enabled: bool = True
    max_deploy_age: Duration = 7200.0


class Guards(Model):
    cooldown: Duration = 1800.0
    max_rollbacks_per_hour: int = Field(default=3, ge=0)
    # A version that served this long with every rule inactive is verified healthy
    # (a preferred rollback target), as a passed verification makes it.
    healthy_after: Duration = Field(default=7200.0, gt=0)


class Defaults(Model):
    interval: PositiveDuration = 15.0
    blind_after: Duration = 300.0


class SilencePolicy(Model):
    signal_duration: Duration = 3600.0


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
