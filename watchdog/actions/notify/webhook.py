"""Generic JSON webhook with a versioned schema, signed with HMAC-SHA256.

``SCHEMA_DOC`` below is the contract receivers code against; the README quotes it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from pydantic import SecretStr

from watchdog import strict_json
from watchdog.actions.notify.base import NOTIFY_POLICY, NOTIFY_TIMEOUT_S, failed, sent, would
from watchdog.actions.notify.event import IncidentEvent
from watchdog.clock import Clock
from watchdog.errors import ActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult
from watchdog.units import iso

SCHEMA = "rollback-watchdog/v1"
SIGNATURE_HEADER = "X-Watchdog-Signature"
TIMESTAMP_HEADER = "X-Watchdog-Timestamp"
SCHEMA_HEADER = "X-Watchdog-Schema"
# A receiver refuses a delivery whose signed timestamp is further than this from its clock.
MAX_AGE_S = 300.0

SCHEMA_DOC = """\
POST <webhook_url>
Content-Type: application/json
X-Watchdog-Schema: rollback-watchdog/v1
X-Watchdog-Timestamp: <unix seconds; equals sent_at in the body>
X-Watchdog-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>", keyed with the
                      shared secret> (only when the notifier has an hmac_secret)

{
  "schema": "rollback-watchdog/v1",
  "event": "opened | rolling_back | rolled_back | would_rollback | verified |
            not_verified | escalated | resolved | blind | notice",
  "incident": {
    "id": "<watchdog incident id>",
    "dedup_key": "rollback-watchdog/<id>",      # stable for the whole incident
    "status_phase": "investigating | identified | monitoring | resolved | null",
    "escalation": {"level": 2, "name": "DevOps Lead"} | null
  },
  "headline": "<one line: what happened>",
  "summary": "<the decision in one line, and why>",
  "message": "<free text, may be empty>",
  "occurred_at": "<RFC 3339 UTC>",
  "decision": {
    "kind": "rollback | notify | blind | resolved",
    "rule": "error-rate", "severity": "critical", "signal": "error_rate",
    "targets": ["worker", "frontend"],
    "observed": 0.072, "observed_text": "7.2%",
    "threshold": 0.05, "threshold_text": "5%",
    "comparison": "above | below", "unit": "ratio | seconds | number",
    "window_s": 300.0, "sample_count": 21, "requests": 1500.0 | null,
    "first_breach_at": <unix seconds> | null, "decided_at": <unix seconds>,
    "why": "<text>", "dry_run": false, "extra": {...}
  },
  "rolled_back": [{"target": "worker", "from_version": "v42", "to_version": "v41"}],
  "actions": [{"action": "rollback", "target": "worker", "ok": true, "would": false,
               "detail": "<text>"}],
  "links": [{"text": "Grafana", "url": "https://..."}],
  "sent_at": <unix seconds, integer>
}

Receivers verify with verify_signature(raw_body, signature, timestamp, key): the
timestamp is signed with the body, and a timestamp more than 5 minutes (max_age_s) from
the receiver's clock is refused, so a captured delivery cannot be replayed later.
Fields may be added within v1; a breaking change bumps the schema to v2.
"""


def build_body(event: IncidentEvent, sent_at: int) -> dict[str, Any]:
    d = event.decision
    decision = {
        "kind": d.kind.value,
        "rule": d.rule,
        "severity": d.severity,
        "signal": d.signal,
        "targets": list(d.targets),
        "observed": d.observed,
        "observed_text": d.observed_text,
        "threshold": d.threshold,
        "threshold_text": d.threshold_text,
        "comparison": d.comparison,
        "unit": d.unit,
        "window_s": d.window_s,
        "sample_count": d.sample_count,
        "requests": d.requests,
        "first_breach_at": d.first_breach_at,
        "decided_at": d.decided_at,
        "why": d.why,
        "dry_run": d.dry_run,
        "extra": d.extra,
    }
    escalation = (
        None
        if event.escalation_level is None
        else {"level": event.escalation_level, "name": event.escalation_name}
    )
    return {
        "schema": SCHEMA,
        "event": event.kind.value,
        "incident": {
            "id": event.incident_id,
            "dedup_key": event.dedup_key(),
            "status_phase": event.status_phase,
            "escalation": escalation,
        },
        "headline": event.headline(),
        "summary": event.summary(),
        "message": event.message,
        "occurred_at": iso(event.occurred_at),
        "decision": decision,
        "rolled_back": [
            {"target": t, "from_version": old, "to_version": new}
            for t, old, new in event.rolled_back
        ],
        "actions": [
            {
                "action": a.action,
                "target": a.target,
                "ok": a.ok,
                "would": a.would,
                "detail": a.detail,
            }
            for a in event.actions
        ],
        "links": [{"text": text, "url": url} for text, url in event.links],
        "sent_at": sent_at,
    }


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (``default=str`` for odd ``extra`` values)."""
    return strict_json.dumpb(body, compact=True, sort_keys=True, default=str)


def _key_bytes(key: str | bytes | SecretStr) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return key.encode() if isinstance(key, str) else key


def signed_material(timestamp: int | str, body: bytes) -> bytes:
    """``"{timestamp}.{body}"``: the timestamp is signed too, so it cannot be swapped."""
    return f"{timestamp}.".encode("ascii") + body


def sign(body: bytes, key: str | bytes | SecretStr, timestamp: int | str) -> str:
    """``sha256=<hex>`` for the ``X-Watchdog-Signature`` header."""
    material = signed_material(timestamp, body)
    return "sha256=" + hmac.new(_key_bytes(key), material, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    key: str | bytes | SecretStr,
    *,
    now: float | None = None,
    max_age_s: float = MAX_AGE_S,
) -> bool:
    """For receivers: True when ``signature`` (the ``X-Watchdog-Signature`` header) is
    the HMAC-SHA256 of ``"{timestamp}.{body}"`` under ``key`` (constant-time compare)
    and ``timestamp`` (the ``X-Watchdog-Timestamp`` header, Unix seconds) is within
    ``max_age_s`` of ``now`` (default: this machine's clock) either way. A delivery
    captured on the way is refused once it is older than that: no replay."""
    if not signature or not signature.startswith("sha256=") or not timestamp:
        return False
    stamp = timestamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > max_age_s:
        return False
    return hmac.compare_digest(signature.strip(), sign(body, key, stamp))


class WebhookNotifier:
    def __init__(
        self,
        name: str,
        url: SecretStr,
        hmac_key: SecretStr | None,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy = NOTIFY_POLICY,
    ) -> None:
        self.name = name
        self._url = url
        self._key = hmac_key
        self._http = http
        self._clock = clock
        self._policy = policy

    def request(self, event: IncidentEvent) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers; the same for a real send and a dry run."""
        sent_at = int(self._clock.now())
        body = encode(build_body(event, sent_at))
        headers = {
            "Content-Type": "application/json",
            SCHEMA_HEADER: SCHEMA,
            TIMESTAMP_HEADER: str(sent_at),
        }
        if self._key is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._key, sent_at)
        return body, headers

    async def send(self, event: IncidentEvent, dry_run: bool = False) -> ActionResult:
        body, headers = self.request(event)
        if dry_run:
            request = {
                "method": "POST",
                "endpoint": "webhook",
                "headers": {k: v for k, v in headers.items() if k != SIGNATURE_HEADER},
                "body": json.loads(body),
            }
            return would(self.name, "would post the webhook", request)
        try:
            response = await send(
                self._http,
                "POST",
                self._url.get_secret_value(),
                what=f"webhook notifier {self.name!r}",
                clock=self._clock,
                policy=self._policy,
                content=body,
                headers=headers,
                timeout_s=NOTIFY_TIMEOUT_S,
            )
        except ActionError as exc:
            return failed(self.name, exc)
        signed = "signed" if self._key is not None else "unsigned"
        return sent(self.name, f"posted the webhook ({signed}, HTTP {response.status_code})")
