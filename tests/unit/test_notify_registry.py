"""The notifier registry: one factory per rules-file ``type:``, secrets checked at build."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import TypeAdapter

from tests.helpers import InstantClock
from tests.notify_helpers import settings
from watchdog.actions.notify.pagerduty import PagerDutyNotifier
from watchdog.actions.notify.registry import NOTIFIER_FACTORIES, build_notifier
from watchdog.actions.notify.sentry_event import SentryNotifier
from watchdog.actions.notify.slack import SlackNotifier
from watchdog.actions.notify.statuspage import StatuspageNotifier
from watchdog.actions.notify.webhook import WebhookNotifier
from watchdog.errors import ConfigError
from watchdog.rules.response import NOTIFIER_TYPES, NotifierSpec

SPEC = TypeAdapter(NotifierSpec)


def test_registry_covers_every_rules_file_type() -> None:
    """Every notifier type the rules file accepts has exactly one factory."""
    assert set(NOTIFIER_FACTORIES) == set(NOTIFIER_TYPES)


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        ({"type": "slack"}, SlackNotifier),
        ({"type": "webhook"}, WebhookNotifier),
        ({"type": "pagerduty"}, PagerDutyNotifier),
        ({"type": "statuspage", "page_id": "p1", "component_id": "c1"}, StatuspageNotifier),
        ({"type": "sentry"}, SentryNotifier),
    ],
)
async def test_builds_each_type(tmp_path: Path, raw: dict[str, str], cls: type) -> None:
    """Each type builds its notifier, named as in the rules file."""
    async with httpx.AsyncClient() as http:
        notifier = build_notifier(
            "n1", SPEC.validate_python(raw), settings(tmp_path), http, InstantClock()
        )
    assert isinstance(notifier, cls)
    assert notifier.name == "n1"


async def test_missing_secret_names_it_and_the_variable(tmp_path: Path) -> None:
    """A missing webhook secret is a ConfigError that says what to set."""
    spec = SPEC.validate_python({"type": "slack", "webhook_secret": "slack_devops_lead_webhook"})
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError) as caught:
            build_notifier("lead", spec, settings(tmp_path), http, InstantClock())
    assert str(caught.value).startswith(
        "notifier 'lead' needs secret slack_devops_lead_webhook "
        "(set WATCHDOG_SECRETS__SLACK_DEVOPS_LEAD_WEBHOOK)"
    )


async def test_missing_hmac_key_says_how_to_send_unsigned(tmp_path: Path) -> None:
    """The default hmac_secret must exist, or be switched off explicitly."""
    spec = SPEC.validate_python({"type": "webhook", "hmac_secret": "hook_key"})
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="hmac_secret: null"):
            build_notifier("hook", spec, settings(tmp_path), http, InstantClock())
        unsigned = SPEC.validate_python({"type": "webhook", "hmac_secret": None})
        built = build_notifier("hook", unsigned, settings(tmp_path), http, InstantClock())
    assert isinstance(built, WebhookNotifier)


async def test_statuspage_is_seeded_with_persisted_ids(tmp_path: Path) -> None:
    """Persisted Statuspage ids are handed back at build time."""
    spec = SPEC.validate_python({"type": "statuspage", "page_id": "p1"})
    async with httpx.AsyncClient() as http:
        built = build_notifier(
            "sp", spec, settings(tmp_path), http, InstantClock(), statuspage_incidents={"i1": "s1"}
        )
    assert isinstance(built, StatuspageNotifier)
    assert built.incident_ids == {"i1": "s1"}
