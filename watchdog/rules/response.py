"""What the rules file says to do about a breach: rollback targets, purges, notifiers,
the severity matrix, verification after a rollback, escalation, correlation, guards and
silences. The rules that detect a breach (sources, signals, rules) are in ``model``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from watchdog.rules.fields import (
    Duration,
    Model,
    Name,
    PositiveDuration,
    Severity,
    Share,
    ThresholdField,
)

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


class GrafanaNotifierSpec(Model):
    """Annotations through Grafana's HTTP API (a service-account token, Bearer). Without
    ``dashboard_uid`` they are organisation annotations, shown by tag on any dashboard."""

    type: Literal["grafana"]
    url: str
    token_secret: str = "grafana_token"
    dashboard_uid: str | None = None
    panel_id: int | None = Field(default=None, ge=1)
    tags: tuple[str, ...] = ("rollback-watchdog",)


class AlertmanagerNotifierSpec(Model):
    """The watchdog's own alerts pushed to Alertmanager's ``/api/v2/alerts``, re-sent
    every ``resend`` while the incident is open (each one ends ``4 x resend`` later
    unless renewed, as Prometheus does) and ended on resolve."""

    type: Literal["alertmanager"]
    url: str
    resend: PositiveDuration = 60.0
    token_secret: str | None = None
    generator_url: str | None = None  # where the alert links back (the console)


NotifierSpec = Annotated[
    SlackNotifierSpec
    | WebhookNotifierSpec
    | PagerDutyNotifierSpec
    | StatuspageNotifierSpec
    | SentryNotifierSpec
    | GrafanaNotifierSpec
    | AlertmanagerNotifierSpec,
    Field(discriminator="type"),
]
NOTIFIER_TYPES = (
    "slack",
    "webhook",
    "pagerduty",
    "statuspage",
    "sentry",
    "grafana",
    "alertmanager",
)

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


class SilencePolicy(Model):
    signal_duration: Duration = 3600.0
