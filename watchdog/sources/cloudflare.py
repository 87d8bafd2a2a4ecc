"""The ``cloudflare`` source: Workers invocation analytics over the GraphQL API.

One ``POST {api}/graphql`` per call asks ``workersInvocationsAdaptive`` (account
scope) for ``spec.script`` over ``[now - delay - window, now - delay]``: the newest
minutes are skipped because Cloudflare delivers analytics a few minutes late and a
partial minute would read as a traffic drop (apis.md §5.3). No dimensions are asked
for, so Cloudflare aggregates the whole window into one row and computes its
quantiles over the window itself. Fields:

- ``error_rate``: ``sum.errors / sum.requests`` (``Sample.requests`` = requests,
  ``Sample.errors`` = errors).
  ``sum.errors`` counts invocation failures (exceptions, exceeded limits, internal
  errors), not 5xx responses a Worker returns on purpose (apis.md §5.1);
- ``requests``: ``sum.requests``;
- ``wall_time_p50``, ``wall_time_p99``, ``cpu_time_p99``: the quantiles, which
  Cloudflare reports in **microseconds**, converted to seconds.

Latency is p99 wall time, not p95: Workers analytics has no P95 quantile (only
P25/P50/P75/P90/P99/P999, apis.md §5.1). Of the two neighbours, p99 is the one that
cannot hide a p95 breach (p99 ≥ p95), whereas p90 could; the price is that a
runbook "p95 > 5s" threshold held against p99 fires earlier than a true p95 would.
Use ``scrape`` or ``prometheus`` when an exact p95 matters.

The counts are Cloudflare's estimates from adaptive sampling, used as they come.
A 200 can carry GraphQL ``errors``; those, 401/403/429/5xx, non-JSON bodies and
transport failures are error samples. After a 429 the source stays quiet until
``Retry-After`` (default 5 minutes, how long Cloudflare blocks) instead of
prolonging the block. No rows in the window is ``no_data``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from watchdog.clock import Clock
from watchdog.errors import SourceError
from watchdog.http.client import parse_retry_after
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import IMPLICIT_FIELDS, CloudflareSourceSpec
from watchdog.sources import _transport
from watchdog.sources.base import SourceDeps, error_for_all
from watchdog.units import iso

# ``versions`` is mode: versions only (sources.cloudflare_versions).
FIELDS = tuple(f for f in IMPLICIT_FIELDS["cloudflare"] if f != "versions")
MICROSECONDS = 1_000_000.0
RATE_LIMIT_DEFAULT_S = 300.0
# The answer is a few totals for one window: far below this (read after decoding).
MAX_BYTES = 4 * 1024 * 1024

QUERY = """\
query WatchdogWorkerHealth($accountTag: string!, $scriptName: string!, $start: Time!, $end: Time!) {
  viewer {
    accounts(filter: {accountTag: $accountTag}) {
      workersInvocationsAdaptive(
        limit: 100
        filter: {scriptName: $scriptName, datetime_geq: $start, datetime_leq: $end}
      ) {
        sum { requests errors }
        quantiles { wallTimeP50 wallTimeP99 cpuTimeP99 }
      }
    }
  }
}
"""

_QUANTILE_KEYS = {
    "wall_time_p50": "wallTimeP50",
    "wall_time_p99": "wallTimeP99",
    "cpu_time_p99": "cpuTimeP99",
}


@dataclass(frozen=True)
class WindowTotals:
    """One window of one script; quantiles in seconds (None when not reported)."""

    requests: float
    errors: float
    quantiles_s: Mapping[str, float | None]


class CloudflareSource:
    """Samples Workers analytics for one script."""

    def __init__(self, name: str, spec: CloudflareSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._http = deps.http
        self._clock: Clock = deps.clock
        self._url = deps.cloudflare_api_url.rstrip("/") + "/graphql"
        self._token = deps.cloudflare_api_token
        self._account = spec.account or deps.cloudflare_account_id
        self._quiet_until = 0.0

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        if self._token is None:
            return error_for_all(signals, now, "no Cloudflare API token (CLOUDFLARE_API_TOKEN)")
        if not self._account:
            return error_for_all(
                signals, now, "no Cloudflare account id (source 'account' or CLOUDFLARE_ACCOUNT_ID)"
            )
        if self._clock.now() < self._quiet_until:
            return error_for_all(
                signals,
                now,
                f"rate limited by Cloudflare; next query after {iso(self._quiet_until)}",
            )
        try:
            totals = await self.fetch(now)
        except SourceError as exc:
            return error_for_all(signals, now, str(exc))
        return {signal.name: _field(totals, signal.spec.field, now) for signal in signals}

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    def window(self, now: float) -> tuple[float, float]:
        end = now - self.spec.delay
        return end - self.spec.window, end

    async def fetch(self, now: float) -> WindowTotals | None:
        """The window's totals, or None when Cloudflare has no rows for it.
        Raises ``SourceError`` with a reason for every kind of failure."""
        # Both checked by sample(); a direct caller without them gets a clear error.
        if self._token is None or not self._account:
            raise SourceError("no Cloudflare API token or account id configured")
        start, end = self.window(now)
        payload = {
            "query": QUERY,
            "variables": {
                "accountTag": self._account,
                "scriptName": self.spec.script,
                "start": iso(start),
                "end": iso(end),
            },
        }
        response = await _transport.post_json(
            self._http,
            self._url,
            payload,
            token=self._token,
            timeout_s=self.spec.timeout,
            max_bytes=MAX_BYTES,
            what="Cloudflare GraphQL",
        )
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("retry-after"), self._clock.now())
            self._quiet_until = self._clock.now() + (
                wait if wait is not None else RATE_LIMIT_DEFAULT_S
            )
        return parse_response(response)


def _graphql_errors(body: object) -> str | None:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return None
    parts = []
    for item in errors if isinstance(errors, list) else [errors]:
        message = item.get("message") if isinstance(item, dict) else item
        extensions = item.get("extensions") if isinstance(item, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        parts.append(f"{message}" + (f" ({code})" if code else ""))
    return "; ".join(parts)


_STATUS_HINTS = {
    401: "unauthorized: check the API token",
    403: "forbidden: the token needs Account Analytics: Read on this account",
    429: "rate limited by Cloudflare",
}


def parse_response(response: httpx.Response) -> WindowTotals | None:
    """The GraphQL answer → window totals (None: no rows). Raises ``SourceError``."""
    try:
        body: object = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    errors = _graphql_errors(body)
    if not response.is_success:
        hint = _STATUS_HINTS.get(response.status_code)
        detail = errors or (_transport.excerpt(response) if body is None else None)
        text = "; ".join(part for part in (hint, detail) if part)
        raise SourceError(f"Cloudflare GraphQL: HTTP {response.status_code}: {text or 'no body'}")
    if body is None:
        raise SourceError(
            f"Cloudflare GraphQL: response is not JSON: {_transport.excerpt(response)}"
        )
    if errors:
        raise SourceError(f"Cloudflare GraphQL error: {errors}")
    return _totals(_rows(body))


def _rows(body: object) -> list[Any]:
    try:
        accounts = body["data"]["viewer"]["accounts"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise SourceError("Cloudflare GraphQL: no data.viewer.accounts in the response") from None
    if not isinstance(accounts, list) or not accounts:
        raise SourceError("Cloudflare GraphQL: account not found or not visible to the token")
    rows = accounts[0].get("workersInvocationsAdaptive") if isinstance(accounts[0], dict) else None
    if not isinstance(rows, list):
        raise SourceError("Cloudflare GraphQL: no workersInvocationsAdaptive list in the response")
    return rows


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceError(f"Cloudflare GraphQL: {what} is not a number: {value!r:.40}")
    return float(value)


def _totals(rows: list[Any]) -> WindowTotals | None:
    """Sum the counts. Quantiles of several rows (Cloudflare gives one when no
    dimensions are asked for) are averaged weighted by requests, an approximation."""
    if not rows:
        return None
    requests = errors = 0.0
    weighted: dict[str, list[tuple[float, float]]] = {key: [] for key in _QUANTILE_KEYS}
    for row in rows:
        if not isinstance(row, dict):
            raise SourceError("Cloudflare GraphQL: a row is not an object")
        sums = row.get("sum") or {}
        quantiles = row.get("quantiles") or {}
        row_requests = _number(sums.get("requests"), "sum.requests") or 0.0
        requests += row_requests
        errors += _number(sums.get("errors"), "sum.errors") or 0.0
        for field, key in _QUANTILE_KEYS.items():
            micro = _number(quantiles.get(key), f"quantiles.{key}")
            if micro is not None:
                weighted[field].append((micro / MICROSECONDS, max(row_requests, 1.0)))
    quantiles_s: dict[str, float | None] = {}
    for field, pairs in weighted.items():
        weight = sum(w for _, w in pairs)
        quantiles_s[field] = sum(v * w for v, w in pairs) / weight if pairs else None
    return WindowTotals(requests, errors, quantiles_s)


def _field(totals: WindowTotals | None, field: str | None, now: float) -> Sample:
    if field not in FIELDS:
        known = ", ".join(FIELDS)
        return Sample.error(now, f"unknown cloudflare field {field!r} (expected one of: {known})")
    if totals is None:
        return Sample.no_data(now, "no invocations in the window")
    if field == "requests":
        return Sample.of(now, totals.requests, totals.requests)
    if field == "error_rate":
        if totals.requests <= 0:
            return Sample.no_data(now, "no requests in the window")
        return Sample.of(
            now, totals.errors / totals.requests, totals.requests, errors=totals.errors
        )
    value = totals.quantiles_s.get(field or "")
    if value is None or math.isnan(value):
        return Sample.no_data(now, f"Cloudflare reported no {field}")
    return Sample.of(now, value, totals.requests)
