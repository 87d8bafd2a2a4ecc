"""One registry from the rules file's notifier ``type:`` to a factory.

Secrets are looked up here, at build time, so a missing one is a startup
``ConfigError`` that names it (and the variable to set), never a failure mid-incident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import httpx
from pydantic import SecretStr

from watchdog.actions.notify.alertmanager import AlertmanagerNotifier
from watchdog.actions.notify.base import Notifier
from watchdog.actions.notify.grafana import GrafanaNotifier
from watchdog.actions.notify.pagerduty import PagerDutyNotifier
from watchdog.actions.notify.sentry_event import SentryNotifier
from watchdog.actions.notify.slack import SlackNotifier
from watchdog.actions.notify.statuspage import StatuspageNotifier
from watchdog.actions.notify.webhook import WebhookNotifier
from watchdog.clock import Clock
from watchdog.errors import ConfigError
from watchdog.rules.response import (
    AlertmanagerNotifierSpec,
    GrafanaNotifierSpec,
    NotifierSpec,
    PagerDutyNotifierSpec,
    SentryNotifierSpec,
    SlackNotifierSpec,
    StatuspageNotifierSpec,
    WebhookNotifierSpec,
)
from watchdog.settings import Settings

Factory = Callable[[str, NotifierSpec, Settings, httpx.AsyncClient, Clock], Notifier]
SpecT = TypeVar("SpecT")


def _expect(name: str, spec: NotifierSpec, cls: type[SpecT]) -> SpecT:
    if not isinstance(spec, cls):
        raise ConfigError(
            f"notifier {name!r}: a {spec.type} spec reached the {cls.__name__} factory"
        )
    return spec


def require_secret(settings: Settings, owner: str, secret: str) -> SecretStr:
    """The named secret, or a ConfigError saying how to provide it."""
    value = settings.secret(secret)
    if value is None or not value.get_secret_value():
        raise ConfigError(
            f"{owner} needs secret {secret} (set WATCHDOG_SECRETS__{secret.upper()}), "
            f"or a file named {secret.lower()} in the secrets directory"
        )
    return value


def _slack(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, SlackNotifierSpec)
    url = require_secret(settings, f"notifier {name!r}", spec.webhook_secret)
    return SlackNotifier(name, url, http, clock)


def _webhook(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, WebhookNotifierSpec)
    url = require_secret(settings, f"notifier {name!r}", spec.url_secret)
    key = None
    if spec.hmac_secret is not None:
        try:
            key = require_secret(settings, f"notifier {name!r}", spec.hmac_secret)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; or set hmac_secret: null to send unsigned") from None
    return WebhookNotifier(name, url, key, http, clock)


def _pagerduty(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, PagerDutyNotifierSpec)
    key = require_secret(settings, f"notifier {name!r}", spec.routing_key_secret)
    source = f"rollback-watchdog@{settings.environment}"
    return PagerDutyNotifier(name, key, http, clock, url=spec.url, source=source)


def _statuspage(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, StatuspageNotifierSpec)
    key = require_secret(settings, f"notifier {name!r}", spec.api_key_secret)
    return StatuspageNotifier(
        name, spec.page_id, key, http, clock, component_id=spec.component_id, url=spec.url
    )


def _sentry(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, SentryNotifierSpec)
    return SentryNotifier(name)


def _grafana(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, GrafanaNotifierSpec)
    token = require_secret(settings, f"notifier {name!r}", spec.token_secret)
    return GrafanaNotifier(name, spec, token, http, clock)


def _alertmanager(
    name: str, spec: NotifierSpec, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Notifier:
    spec = _expect(name, spec, AlertmanagerNotifierSpec)
    token = None
    if spec.token_secret is not None:
        token = require_secret(settings, f"notifier {name!r}", spec.token_secret)
    return AlertmanagerNotifier(name, spec, token, http, clock)


NOTIFIER_FACTORIES: dict[str, Factory] = {
    "slack": _slack,
    "webhook": _webhook,
    "pagerduty": _pagerduty,
    "statuspage": _statuspage,
    "sentry": _sentry,
    "grafana": _grafana,
    "alertmanager": _alertmanager,
}


def build_notifier(
    name: str,
    spec: NotifierSpec,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
    *,
    statuspage_incidents: Mapping[str, str] | None = None,
) -> Notifier:
    """Build the notifier called ``name`` in the rules file. ``statuspage_incidents``
    (watchdog incident id → Statuspage incident id, as persisted from
    ``ActionResult.data["statuspage_incident_id"]``) seeds a statuspage notifier."""
    factory = NOTIFIER_FACTORIES.get(spec.type)
    if factory is None:  # the rules model's discriminator makes this unreachable
        raise ConfigError(f"notifier {name!r}: unknown type {spec.type!r}")
    notifier = factory(name, spec, settings, http, clock)
    if statuspage_incidents and isinstance(notifier, StatuspageNotifier):
        notifier.remember(statuspage_incidents)
    return notifier
