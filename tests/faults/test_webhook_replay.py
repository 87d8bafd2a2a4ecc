"""Fault matrix, signed webhooks: a captured delivery replayed later, or with its
timestamp swapped for a fresh one, is refused by the verifier and by the local
receiver; a fresh one verifies. The signature covers ``"{timestamp}.{body}"``."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from tests.helpers import InstantClock
from tests.notify_helpers import HMAC_KEY, T0, event, served
from watchdog.actions.notify.webhook import (
    MAX_AGE_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    sign,
    verify_signature,
)
from watchdog.demo.fakes.receivers import Receivers


async def test_a_replayed_delivery_is_refused_once_stale() -> None:
    """The same bytes and headers, posted again an hour later, get 401; within the
    freshness window the delivery still verifies."""
    async with served() as env:
        url = SecretStr(Receivers.webhook_url(env.url))
        notifier = WebhookNotifier("hook", url, SecretStr(HMAC_KEY), env.http, env.clock)
        body, headers = notifier.request(event())
        fresh = await env.http.post(url.get_secret_value(), content=body, headers=headers)
        assert fresh.status_code == 200, fresh.text
        await env.clock.sleep(3600)
        replayed = await env.http.post(url.get_secret_value(), content=body, headers=headers)
        assert replayed.status_code == 401, replayed.text
        assert [d.signature_ok for d in env.receivers.webhook.deliveries] == [True, False]


async def test_a_swapped_timestamp_breaks_the_signature() -> None:
    """An attacker cannot refresh a captured delivery: the timestamp is signed."""
    async with httpx.AsyncClient() as http:
        url, key = SecretStr("http://x.test/h"), SecretStr(HMAC_KEY)
        notifier = WebhookNotifier("hook", url, key, http, InstantClock())
        body, headers = notifier.request(event())
    later = T0 + 3600
    signature = headers[SIGNATURE_HEADER]
    assert verify_signature(body, signature, headers[TIMESTAMP_HEADER], HMAC_KEY, now=T0)
    assert not verify_signature(body, signature, headers[TIMESTAMP_HEADER], HMAC_KEY, now=later)
    assert not verify_signature(body, signature, str(int(later)), HMAC_KEY, now=later)


def test_the_freshness_window_is_five_minutes_either_way() -> None:
    """Documented window: 300 s of clock skew either way, not a second more."""
    body = b'{"a":1}'
    stamp = str(int(T0))
    header = sign(body, HMAC_KEY, stamp)
    assert MAX_AGE_S == 300.0
    assert verify_signature(body, header, stamp, HMAC_KEY, now=T0 + MAX_AGE_S)
    assert verify_signature(body, header, stamp, HMAC_KEY, now=T0 - MAX_AGE_S)
    assert not verify_signature(body, header, stamp, HMAC_KEY, now=T0 + MAX_AGE_S + 1)
    assert not verify_signature(body, header, stamp, HMAC_KEY, now=T0 - MAX_AGE_S - 1)
    assert not verify_signature(body, header, "-1", HMAC_KEY, now=T0)
    assert not verify_signature(body, header, "1e9", HMAC_KEY, now=T0)
