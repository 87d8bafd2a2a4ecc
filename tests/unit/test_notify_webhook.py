"""Generic webhook: schema v1 and the HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from pydantic import SecretStr

from tests.helpers import InstantClock
from tests.notify_helpers import (
    ACTIONS,
    HMAC_KEY,
    LINKS,
    ROLLED_BACK,
    T0,
    event,
    in_process,
)
from watchdog.actions.notify.event import EventKind
from watchdog.actions.notify.webhook import (
    SCHEMA,
    SCHEMA_DOC,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    build_body,
    encode,
    sign,
    verify_signature,
)
from watchdog.demo.fakes.receivers import Receivers


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The header is sha256=<hex> of "{timestamp}.{body}", computable with the stdlib."""
    body = b'{"a":1}'
    material = f"{int(T0)}.".encode() + body
    expected = hmac.new(HMAC_KEY.encode(), material, hashlib.sha256).hexdigest()
    assert sign(body, HMAC_KEY, int(T0)) == f"sha256={expected}"
    assert sign(body, SecretStr(HMAC_KEY), int(T0)) == sign(body, HMAC_KEY.encode(), int(T0))


def test_verify_signature_rejects_tampering_wrong_key_and_missing_header() -> None:
    """Only the exact body and timestamp under the exact key verify."""
    body = b'{"a":1}'
    stamp = str(int(T0))
    header = sign(body, HMAC_KEY, stamp)
    assert verify_signature(body, header, stamp, HMAC_KEY, now=T0)
    assert not verify_signature(b'{"a":2}', header, stamp, HMAC_KEY, now=T0)
    assert not verify_signature(body, header, stamp, "other-key", now=T0)
    assert not verify_signature(body, None, stamp, HMAC_KEY, now=T0)
    assert not verify_signature(body, header, None, HMAC_KEY, now=T0)
    assert not verify_signature(body, header.removeprefix("sha256="), stamp, HMAC_KEY, now=T0)


def test_body_follows_schema_v1() -> None:
    """Every documented top-level key is present, and the decision is complete."""
    body = build_body(
        event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK, actions=ACTIONS, links=LINKS),
        sent_at=int(T0),
    )
    assert body["schema"] == SCHEMA == "rollback-watchdog/v1"
    assert body["event"] == "rolled_back"
    assert body["incident"] == {
        "id": "inc-20260801-error-rate",
        "dedup_key": "rollback-watchdog/inc-20260801-error-rate",
        "status_phase": "monitoring",
        "escalation": None,
    }
    assert body["decision"]["observed_text"] == "7.2%"
    assert body["decision"]["threshold_text"] == "5%"
    assert body["decision"]["window_s"] == 300.0
    assert body["decision"]["sample_count"] == 21
    assert body["rolled_back"][0] == {
        "target": "worker",
        "from_version": "v42-bad",
        "to_version": "v41-good",
    }
    assert body["actions"][1] == {
        "action": "purge",
        "target": "zone",
        "ok": False,
        "would": False,
        "detail": "cloudflare purge: HTTP 429",
    }
    assert body["links"][0] == {"text": "Grafana", "url": "https://grafana.example.com/d/errors"}
    assert body["sent_at"] == int(T0)
    for key in body:
        assert f'"{key}"' in SCHEMA_DOC, key
    for key in body["decision"]:
        assert f'"{key}"' in SCHEMA_DOC, key


async def test_request_headers_carry_timestamp_and_signature_of_the_exact_bytes() -> None:
    """The timestamp header equals sent_at and the signature covers the sent bytes."""
    async with httpx.AsyncClient() as http:
        url, key = SecretStr("http://x.test/h"), SecretStr(HMAC_KEY)
        body, headers = WebhookNotifier("hook", url, key, http, InstantClock()).request(event())
    assert headers[TIMESTAMP_HEADER] == str(int(T0))
    assert json.loads(body)["sent_at"] == int(T0)
    assert verify_signature(
        body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], HMAC_KEY, now=T0
    )
    assert body == encode(json.loads(body))


async def test_without_a_key_the_request_is_unsigned() -> None:
    """hmac_secret: null sends no signature header."""
    async with httpx.AsyncClient() as http:
        url = SecretStr("http://x.test/h")
        _, headers = WebhookNotifier("hook", url, None, http, InstantClock()).request(event())
    assert SIGNATURE_HEADER not in headers


async def test_receiver_verifies_and_records_the_delivery() -> None:
    """The local receiver checks the HMAC and keeps body and headers."""
    async with in_process() as env:
        url = SecretStr(Receivers.webhook_url(env.url))
        notifier = WebhookNotifier("hook", url, SecretStr(HMAC_KEY), env.http, env.clock)
        result = await notifier.send(event(EventKind.VERIFIED))
    assert result.ok, result.detail
    [delivery] = env.receivers.webhook.deliveries
    assert delivery.signature_ok is True
    assert delivery.json()["event"] == "verified"


async def test_wrong_key_is_rejected_by_the_receiver() -> None:
    """A receiver with another key answers 401; the notifier reports it, no retry."""
    async with in_process() as env:
        url = SecretStr(Receivers.webhook_url(env.url))
        notifier = WebhookNotifier("hook", url, SecretStr("wrong-key"), env.http, env.clock)
        result = await notifier.send(event())
    assert not result.ok
    assert "HTTP 401" in result.detail
    assert len(env.receivers.webhook.deliveries) == 1


async def test_dry_run_shows_body_and_headers_but_not_url_or_signature() -> None:
    """Dry-run sends nothing; the request shows what would be posted."""
    async with in_process() as env:
        url = SecretStr(Receivers.webhook_url(env.url, "secret-path"))
        notifier = WebhookNotifier("hook", url, SecretStr(HMAC_KEY), env.http, env.clock)
        result = await notifier.send(event(), dry_run=True)
    assert result.would
    assert result.request is not None
    assert result.request["body"]["schema"] == SCHEMA
    assert SIGNATURE_HEADER not in result.request["headers"]
    assert "secret-path" not in repr(result)
    assert env.receivers.webhook.deliveries == []
