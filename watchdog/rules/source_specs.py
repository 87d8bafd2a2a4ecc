"""The rules file's ``sources:`` entries as frozen pydantic models, one per ``type:``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from watchdog.rules.fields import Duration, Model, PositiveDuration
from watchdog.units import Unit

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
    # ``versions``: counts per Worker version (``sources.cloudflare_versions``), from the
    # Workers Observability telemetry query API or GraphQL (checked at start).
    mode: Literal["script", "versions"] = "script"
    api: Literal["telemetry", "graphql"] = "telemetry"


class CloudflareTailSourceSpec(Model):
    """A Worker's invocations per version, pushed by a Tail Worker (``deploy/tail-worker``)
    to ``POST /api/v1/tail/<name>`` seconds after each request. Nothing heard for
    ``staleness`` is no evidence (a canary goes blind)."""

    type: Literal["cloudflare-tail"]
    script: str
    staleness: PositiveDuration = 120.0
    timeout: PositiveDuration = 1.0  # reading what was pushed: no remote call
    interval: PositiveDuration | None = None


class FlowSourceSpec(Model):
    """A flow file (``rules.flows``) run against a Worker split's new and old version,
    each pinned by ``Cloudflare-Workers-Version-Overrides`` at ``url``."""

    type: Literal["flow"]
    url: str
    file: str  # relative to the rules file
    script: str
    account: str | None = None
    timeout: PositiveDuration = 10.0
    interval: PositiveDuration | None = None


class AlertmanagerSourceSpec(Model):
    """Alertmanager's webhook notifications, pushed to ``POST /api/v1/alertmanager/<name>``
    on the watchdog's listen address. No notification for ``staleness`` is no evidence
    (route an always-firing heartbeat alert here with a shorter ``repeat_interval``)."""

    type: Literal["alertmanager"]
    staleness: PositiveDuration = 600.0
    timeout: PositiveDuration = 1.0  # reading what was pushed: no remote call
    interval: PositiveDuration | None = None


SourceSpec = Annotated[
    PrometheusSourceSpec
    | ScrapeSourceSpec
    | ProbeSourceSpec
    | CloudflareSourceSpec
    | CloudflareTailSourceSpec
    | AlertmanagerSourceSpec
    | FlowSourceSpec,
    Field(discriminator="type"),
]
SOURCE_TYPES = (
    "prometheus",
    "scrape",
    "probe",
    "cloudflare",
    "cloudflare-tail",
    "alertmanager",
    "flow",
)

# Fields that a `source.field` shorthand may name, per source type, with their unit.
IMPLICIT_FIELDS: dict[str, dict[str, Unit]] = {
    "probe": {"up": "number", "latency": "seconds"},
    "cloudflare": {
        "error_rate": "ratio",
        "requests": "number",
        "wall_time_p50": "seconds",
        "wall_time_p99": "seconds",
        "cpu_time_p99": "seconds",
        "versions": "ratio",  # mode: versions; counts per version, for canary rules
    },
    # counts per version as a Tail Worker pushes them (the same fields as mode: versions)
    "cloudflare-tail": {"versions": "ratio", "error_rate": "ratio", "requests": "number"},
    "flow": {"versions": "ratio"},  # failed runs per version, for canary rules
}
