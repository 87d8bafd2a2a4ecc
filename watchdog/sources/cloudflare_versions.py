"""The ``cloudflare`` source in ``mode: versions``: a Worker's invocations per version,
for canary rules that judge a gradual deployment's new version against its old one.

``api: telemetry`` (default) asks the Workers Observability telemetry query API
(``POST /accounts/{a}/workers/observability/telemetry/query``, view ``calculations``)
for ``count`` and ``p95`` of ``$workers.wallTimeMs``, filtered on
``$workers.scriptName`` and grouped by ``$workers.scriptVersion.id`` and
``$workers.outcome``. Errors are invocations whose outcome is neither ``ok`` nor
``canceled`` (a client that went away): thrown exceptions and exceeded limits, not
5xx a Worker returns on purpose. Before the first query it asks
``.../telemetry/keys`` whether ``$workers.scriptVersion.id`` exists (two spellings
circulate); a missing key is an error naming it.

``api: graphql`` asks ``workersInvocationsAdaptive`` with the ``scriptVersion``
dimension, which Cloudflare's docs do not list: the schema is introspected first
and, without that dimension, every sample is an error saying so. Never a silent
fallback to whole-script numbers.

Analytics arrive late and sampled. Each read covers the minutes since the last one
up to ``now - delay`` (never twice, at most an hour back), so counts add up; the
sample says how fresh it is (``fresh_to``) and carries the events seen per version
with their ``sampleInterval`` (``VersionCounts.scale``): the canary test runs on the
events seen, never on scaled estimates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from watchdog.clock import Clock
from watchdog.errors import SourceError
from watchdog.model import Sample, SampleKind, VersionCounts
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareSourceSpec
from watchdog.sources import _transport
from watchdog.sources.base import SourceDeps, error_for_all
from watchdog.units import iso

VERSION_KEY = "$workers.scriptVersion.id"
OUTCOME_KEY = "$workers.outcome"
NOT_ERRORS = frozenset({"ok", "canceled"})
MAX_CATCH_UP_S = 3600.0  # after an outage, read at most the last hour
MAX_BYTES = 4 * 1024 * 1024
FIELDS = ("versions", "error_rate", "requests")
DIMENSIONS_TYPE = "AccountWorkersInvocationsAdaptiveDimensions"
INTROSPECT = f'{{ __type(name: "{DIMENSIONS_TYPE}") {{ name fields {{ name }} }} }}'
GRAPHQL_QUERY = """\
query WatchdogVersions($accountTag: string!, $scriptName: string!, $start: Time!, $end: Time!) {
  viewer {
    accounts(filter: {accountTag: $accountTag}) {
      workersInvocationsAdaptive(
        limit: 100
        filter: {scriptName: $scriptName, datetime_geq: $start, datetime_lt: $end}
      ) {
        sum { requests errors }
        dimensions { scriptVersion }
      }
    }
  }
}
"""


class CloudflareVersionsSource:
    """Per-version invocation counts of one Worker script."""

    def __init__(self, name: str, spec: CloudflareSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._http = deps.http
        self._clock: Clock = deps.clock
        self._api = deps.cloudflare_api_url.rstrip("/")
        self._token = deps.cloudflare_api_token
        self._account = spec.account or deps.cloudflare_account_id
        self._cursor: float | None = None
        self._checked = False  # the version key/dimension was confirmed

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        if self._token is None or not self._account:
            reason = "no Cloudflare API token or account id (CLOUDFLARE_API_TOKEN/_ACCOUNT_ID)"
            return error_for_all(signals, now, reason)
        end = now - self.spec.delay
        start = self._cursor if self._cursor is not None else end - self.spec.window
        start = max(start, end - MAX_CATCH_UP_S)
        if end <= start:
            return {s.name: Sample.no_data(now, "no new minutes delivered yet") for s in signals}
        try:
            if not self._checked:
                await (
                    self._check_keys(end) if self.spec.api == "telemetry" else self._introspect()
                )
                self._checked = True
            if self.spec.api == "telemetry":
                versions = await self._telemetry(start, end)
            else:
                versions = await self._graphql(start, end)
        except SourceError as exc:
            return error_for_all(signals, now, str(exc))
        self._cursor = end
        return {s.name: _field(s.spec.field, versions, now, end) for s in signals}

    # --- transport ----------------------------------------------------------------------

    async def _post(self, path: str, payload: dict[str, Any], what: str) -> Any:
        assert self._token is not None
        response = await _transport.post_json(
            self._http,
            self._api + path,
            payload,
            token=self._token,
            timeout_s=self.spec.timeout,
            max_bytes=MAX_BYTES,
            what=what,
        )
        try:
            body = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SourceError(f"{what}: {_transport.http_failure(response)}") from None
        if not response.is_success or (isinstance(body, dict) and body.get("success") is False):
            raise SourceError(f"{what}: HTTP {response.status_code}: {_messages(body)}")
        return body

    # --- telemetry ----------------------------------------------------------------------

    def _telemetry_path(self, leaf: str) -> str:
        return f"/accounts/{self._account}/workers/observability/telemetry/{leaf}"

    async def _check_keys(self, end: float) -> None:
        """The keys seen in the script's events of the last day (``telemetry/keys``)."""
        payload = {
            "timeframe": {"from": int((end - 86400) * 1000), "to": int(end * 1000)},
            "filters": [
                {
                    "key": "$workers.scriptName",
                    "operation": "eq",
                    "type": "string",
                    "value": self.spec.script,
                }
            ],
            "limit": 1000,
        }
        body = await self._post(self._telemetry_path("keys"), payload, "Workers telemetry keys")
        result = body.get("result") if isinstance(body, dict) else None
        keys = (
            {k.get("key") for k in result if isinstance(k, dict)}
            if isinstance(result, list)
            else set()
        )
        missing = [k for k in (VERSION_KEY, OUTCOME_KEY) if k not in keys]
        if missing:
            raise SourceError(
                f"Workers telemetry has no key {', '.join(missing)} in the script's events of "
                "the last day (is Workers Logs enabled, observability.enabled?); per-version "
                "counts need it"
            )

    async def _telemetry(self, start: float, end: float) -> tuple[VersionCounts, ...]:
        payload = {
            "queryId": f"watchdog-{self.name}",
            "timeframe": {"from": int(start * 1000), "to": int(end * 1000)},
            "view": "calculations",
            "parameters": {
                "filters": [
                    {
                        "key": "$workers.scriptName",
                        "operation": "eq",
                        "type": "string",
                        "value": self.spec.script,
                    }
                ],
                "groupBys": [
                    {"type": "string", "value": VERSION_KEY},
                    {"type": "string", "value": OUTCOME_KEY},
                ],
                "calculations": [
                    {"operator": "count", "alias": "invocations"},
                    {
                        "operator": "p95",
                        "key": "$workers.wallTimeMs",
                        "keyType": "number",
                        "alias": "wall_p95",
                    },
                ],
                "limit": 100,
            },
        }
        path = self._telemetry_path("query")
        body = await self._post(path, payload, "Workers telemetry query")
        return parse_telemetry(body)

    # --- GraphQL ------------------------------------------------------------------------

    async def _introspect(self) -> None:
        body = await self._post("/graphql", {"query": INTROSPECT}, "Cloudflare GraphQL schema")
        found = (body.get("data") or {}).get("__type") if isinstance(body, dict) else None
        fields = found.get("fields") if isinstance(found, dict) else None
        names = sorted(f["name"] for f in fields or [] if isinstance(f, dict) and "name" in f)
        if "scriptVersion" not in names:
            raise SourceError(
                f"Cloudflare GraphQL: {DIMENSIONS_TYPE} has no scriptVersion dimension on this "
                f"account (introspected: {', '.join(names) or 'no such type'}); per-version "
                "counts need it: use api: telemetry"
            )

    async def _graphql(self, start: float, end: float) -> tuple[VersionCounts, ...]:
        variables = {
            "accountTag": self._account,
            "scriptName": self.spec.script,
            "start": iso(start),
            "end": iso(end),
        }
        payload = {"query": GRAPHQL_QUERY, "variables": variables}
        body = await self._post("/graphql", payload, "Cloudflare GraphQL")
        if isinstance(body, dict) and body.get("errors"):
            raise SourceError(f"Cloudflare GraphQL error: {_messages(body)}")
        try:
            rows = body["data"]["viewer"]["accounts"][0]["workersInvocationsAdaptive"]
            out = {}
            for row in rows:
                version = row["dimensions"]["scriptVersion"]
                out[version] = VersionCounts(
                    version, float(row["sum"]["errors"]), float(row["sum"]["requests"])
                )
        except (KeyError, IndexError, TypeError, ValueError):
            raise SourceError(
                "Cloudflare GraphQL: no data.viewer.accounts[0].workersInvocationsAdaptive rows "
                "with dimensions.scriptVersion and sum.requests/errors"
            ) from None
        return tuple(out[v] for v in sorted(out))


def _messages(body: object) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return "no error message"
    items = errors if isinstance(errors, list) else [errors]
    return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in items)


def parse_telemetry(body: object) -> tuple[VersionCounts, ...]:
    """The telemetry answer as counts per version. Raises ``SourceError`` naming what
    is missing."""
    result = body.get("result") if isinstance(body, dict) else None
    calcs = result.get("calculations") if isinstance(result, dict) else None
    if not isinstance(calcs, list):
        raise SourceError("Workers telemetry query: no result.calculations in the answer")
    by_alias = {c.get("alias") or c.get("calculation"): c for c in calcs if isinstance(c, dict)}
    counted = by_alias.get("invocations")
    if counted is None:
        raise SourceError("Workers telemetry query: no 'invocations' count in the answer")
    totals: dict[str, list[float]] = {}  # version -> [errors, requests, scale]
    for groups, agg in _aggregates(counted):
        version, outcome = str(groups.get(VERSION_KEY)), str(groups.get(OUTCOME_KEY))
        entry = totals.setdefault(version, [0.0, 0.0, 1.0])
        entry[1] += agg["count"]
        entry[0] += 0.0 if outcome in NOT_ERRORS else agg["count"]
        entry[2] = max(entry[2], agg["sampleInterval"])
    p95: dict[str, float] = {}
    for groups, agg in _aggregates(by_alias.get("wall_p95") or {"aggregates": []}):
        if groups.get(OUTCOME_KEY) == "ok":
            p95[str(groups.get(VERSION_KEY))] = agg["value"] / 1000.0
    return tuple(
        VersionCounts(v, e, n, scale, p95.get(v)) for v, (e, n, scale) in sorted(totals.items())
    )


def _aggregates(calc: Any) -> list[tuple[dict[str, Any], dict[str, float]]]:
    out = []
    for agg in calc.get("aggregates") or []:
        try:
            groups = {g["key"]: g["value"] for g in agg.get("groups") or []}
            numbers = {k: float(agg[k]) for k in ("count", "sampleInterval", "value")}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SourceError(
                "Workers telemetry query: an aggregate without count, sampleInterval, value "
                "or groups[{key, value}]"
            ) from None
        if VERSION_KEY not in groups:
            raise SourceError(f"Workers telemetry query: an aggregate not grouped by {VERSION_KEY}")
        out.append((groups, numbers))
    return out


def _field(
    field: str | None, versions: tuple[VersionCounts, ...], now: float, end: float
) -> Sample:
    if field not in FIELDS:
        return Sample.error(
            now, f"unknown field {field!r} in mode versions (expected one of: {', '.join(FIELDS)})"
        )
    errors = sum(v.errors for v in versions)
    requests = sum(v.requests for v in versions)
    if field == "requests":
        scaled = sum(v.requests * v.scale for v in versions)
        return Sample(now, SampleKind.VALUE, scaled, requests, fresh_to=end)
    if field == "error_rate":  # the whole script, said so by its field name
        if requests <= 0:
            return Sample.no_data(now, "no invocations in the window")
        return Sample(
            now, SampleKind.VALUE, errors / requests, requests, errors=errors, fresh_to=end
        )
    ratio = errors / requests if requests > 0 else 0.0
    return Sample(
        now, SampleKind.VALUE, ratio, requests, errors=errors, versions=versions, fresh_to=end
    )
