"""Sentry is initialised only when SENTRY_DSN is set, and never with frame locals,
PII or HTTP breadcrumbs (their URLs can be secrets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk

from watchdog.service import init_sentry
from watchdog.settings import load_settings


@pytest.fixture
def no_sentry() -> Iterator[None]:
    yield
    sentry_sdk.init()  # back to a disabled client


def test_without_dsn_sentry_stays_off(no_sentry: None) -> None:
    """No SENTRY_DSN: no client."""
    settings = load_settings({"WATCHDOG_SECRETS_DIR": "/nonexistent"})
    assert init_sentry(settings) is False
    assert not sentry_sdk.get_client().is_active()


async def test_with_dsn_no_locals_no_pii_no_http_breadcrumbs(no_sentry: None) -> None:
    """With a DSN: on, without local variables or PII, dropping HTTP breadcrumbs."""
    settings = load_settings(
        {
            "WATCHDOG_SECRETS_DIR": "/nonexistent",
            "SENTRY_DSN": "http://public@127.0.0.1:9/1",
        }
    )
    assert init_sentry(settings) is True
    client = sentry_sdk.get_client()
    assert client.is_active()
    options = client.options
    assert options["include_local_variables"] is False
    assert not options.get("send_default_pii")  # its default: off
    scrub = options["before_breadcrumb"]
    assert scrub({"category": "httplib", "data": {"url": "https://hooks/secret"}}, {}) is None
    kept = {"category": "log", "message": "fine"}
    assert scrub(kept, {}) == kept
