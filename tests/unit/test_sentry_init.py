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
    # Back to no client: ``sentry_sdk.init()`` without a DSN still leaves an active one,
    # which made the notifier's "not configured" test depend on the order.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


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


async def test_no_trace_propagation_to_third_parties(no_sentry: None) -> None:
    """With SENTRY_DSN set, a request to Slack, Prometheus or Cloudflare (here a
    loopback receiver that records headers) carries no ``sentry-trace`` and no
    ``baggage`` (which held the DSN's public key) (issue 11)."""
    import httpx

    from tests.recorder import recorder
    from watchdog.clock import SystemClock
    from watchdog.http.client import send

    settings = load_settings(
        {"WATCHDOG_SECRETS_DIR": "/nonexistent", "SENTRY_DSN": "http://publickey@127.0.0.1:9/1"}
    )
    assert init_sentry(settings) is True
    async with recorder() as (record, server), httpx.AsyncClient() as http:
        with sentry_sdk.start_transaction(name="incident"):  # as inside a traced task
            await http.get(f"{server.url}/api/v1/query")
            await send(http, "POST", f"{server.url}/hook", what="t", clock=SystemClock(), json={})
        await http.get(f"{server.url}/outside-a-transaction")
    assert len(record.requests) == 3
    for request in record.requests:
        names = {name.lower() for name in request.headers}
        assert "sentry-trace" not in names, request
        assert "baggage" not in names, request
        assert "publickey" not in str(request.headers)
