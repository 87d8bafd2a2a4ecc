"""The ``cloudflare`` source in ``mode: versions``: a Worker's invocations per version,
for canary rules that judge a gradual deployment's new version against its old one.

``api: telemetry`` (default) asks the Workers Observability telemetry query API
(``POST /accounts/{a}/workers/observability/telemetry/query``, view ``calculations``)
for ``count`` and ``p95`` of ``$workers.wallTimeMs``, filtered on
``$workers.scriptName`` and on invocation events (``$metadata.type`` ``cf-worker-event``:
a line the Worker logs is an event of its own, without an outcome, and counting it
would make a release that logs more look like one that fails), grouped by
``$workers.scriptVersion.id`` and ``$workers.outcome``. Errors are invocations whose
outcome is neither ``ok`` nor ``canceled`` (a client that went away): thrown
exceptions and exceeded limits, not 5xx a Worker returns on purpose. Before the first
query it asks
``.../telemetry/keys`` whether ``$workers.scriptVersion.id`` (two spellings circulate)
and ``$metadata.type`` exist; a missing key is an error naming it.

A signal that a latency canary uses carries its bound (``slower_than``, put there by
``rules.merge``): per bound, a second query counts each version's events with
``$workers.wallTimeMs`` ``gt`` the bound in milliseconds (a filter applies to a whole
query, so it cannot share the first one), and the sample's ``VersionCounts`` carry
``slow`` and ``slow_over_s``. Filter shape ``{key, operation: "gt", type: "number",
value}``: ``ParametersFilter`` in cloudflare-python's ``telemetry_query_params.py``.

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
from dataclasses import replace
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
# Workers Logs stores each line a Worker logs as an event of its own (``cf-worker``,
# without an outcome); invocations are ``cf-worker-event``. Only those are requests.
TYPE_KEY = "$metadata.type"
INVOCATIONS = {"key": TYPE_KEY, "operation": "eq", "type": "string", "value": "cf-worker-event"}
OUTCOME_KEY = "$workers.outcome"
WALL_KEY = "$workers.wallTimeMs"
NO_SLOW_IN_GRAPHQL = (
    "Cloudflare GraphQL has wall-time quantiles only, no count of requests over a bound: "
    "a canary's slower_than needs api: telemetry"
)
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
        self._confirmed: set[str] = set()  # telemetry keys (or the GraphQL dimension) seen

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
        # A latency canary's bound reaches its signal from the rules (rules.merge).
        bounds = sorted({s.spec.slower_than for s in signals if s.spec.slower_than is not None})
        try:
            if self.spec.api == "telemetry":
                needed = (VERSION_KEY, OUTCOME_KEY, TYPE_KEY, *((WALL_KEY,) if bounds else ()))
                await self._check_keys(end, needed)
                versions = await self._telemetry(start, end)
                slow = {bound: await self._slow(start, end, bound) for bound in bounds}
            else:
                if bounds:
                    raise SourceError(NO_SLOW_IN_GRAPHQL)
                await self._introspect()
                versions, slow = await self._graphql(start, end), {}
        except SourceError as exc:
            return error_for_all(signals, now, str(exc))
        self._cursor = end
        out = {}
        for s in signals:
            bound = s.spec.slower_than
            counted = versions if bound is None else with_slow(versions, bound, slow[bound])
            out[s.name] = versions_sample(s.spec.field, counted, now, end)
        return out

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

    async def _check_keys(self, end: float, needed: tuple[str, ...]) -> None:
        """The keys seen in the script's events of the last day (``telemetry/keys``),
        asked until every key ``needed`` was seen once."""
        if self._confirmed.issuperset(needed):
            return
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
        missing = [k for k in needed if k not in keys]
        if missing:
            raise SourceError(
                f"Workers telemetry has no key {', '.join(missing)} in the script's events of "
                "the last day (is Workers Logs enabled, observability.enabled?); per-version "
                "counts need it"
            )
        self._confirmed.update(needed)

    def _query(
        self, start: float, end: float, more: list[dict[str, Any]], by: tuple[str, ...]
    ) -> dict[str, Any]:
        """A calculations query over the script's events in ``[start, end)``."""
        script = {
            "key": "$workers.scriptName",
            "operation": "eq",
            "type": "string",
            "value": self.spec.script,
        }
        return {
            "queryId": f"watchdog-{self.name}",
            "timeframe": {"from": int(start * 1000), "to": int(end * 1000)},
            "view": "calculations",
            "parameters": {
                "filters": [script, INVOCATIONS, *more],
                "groupBys": [{"type": "string", "value": key} for key in by],
                "calculations": [{"operator": "count", "alias": "invocations"}],
                "limit": 100,
            },
        }

    async def _telemetry(self, start: float, end: float) -> tuple[VersionCounts, ...]:
        payload = self._query(start, end, [], (VERSION_KEY, OUTCOME_KEY))
        payload["parameters"]["calculations"].append(
            {"operator": "p95", "key": WALL_KEY, "keyType": "number", "alias": "wall_p95"}
        )
        path = self._telemetry_path("query")
        body = await self._post(path, payload, "Workers telemetry query")
        return parse_telemetry(body)

    async def _slow(self, start: float, end: float, bound_s: float) -> dict[str, float]:
        """Events per version whose wall time exceeds ``bound_s``: a second query, as
        the API's filters apply to a whole query, not to one calculation."""
        ms = round(bound_s * 1000.0, 3)
        over = {"key": WALL_KEY, "operation": "gt", "type": "number", "value": ms}
        payload = self._query(start, end, [over], (VERSION_KEY,))
        path = self._telemetry_path("query")
        body = await self._post(path, payload, f"Workers telemetry query (slower than {ms:g}ms)")
        return parse_slow(body)

    # --- GraphQL ------------------------------------------------------------------------

    async def _introspect(self) -> None:
        if DIMENSIONS_TYPE in self._confirmed:
            return
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
        self._confirmed.add(DIMENSIONS_TYPE)

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


def parse_slow(body: object) -> dict[str, float]:
    """The slow query's answer as events per version (a version without any is absent)."""
    result = body.get("result") if isinstance(body, dict) else None
    calcs = result.get("calculations") if isinstance(result, dict) else None
    counted = next(
        (c for c in calcs or [] if isinstance(c, dict) and c.get("alias") == "invocations"), None
    )
    if not isinstance(calcs, list) or counted is None:
        raise SourceError("Workers telemetry query: no 'invocations' count in the slow answer")
    out: dict[str, float] = {}
    for groups, agg in _aggregates(counted):
        version = str(groups[VERSION_KEY])
        out[version] = out.get(version, 0.0) + agg["count"]
    return out


def with_slow(
    versions: tuple[VersionCounts, ...], bound_s: float, slow: dict[str, float]
) -> tuple[VersionCounts, ...]:
    """Each version's counts with its slow events (at most its events: the two queries
    may see a late event or two apart)."""
    return tuple(
        replace(v, slow=min(slow.get(v.version, 0.0), v.requests), slow_over_s=bound_s)
        for v in versions
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


def versions_sample(
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
