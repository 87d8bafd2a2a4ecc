"""A local stand-in for Cloudflare's GraphQL Analytics API, Workers dataset only.

``WorkersAnalytics`` holds per-script, per-minute rows (requests, errors, wall/CPU
time quantiles in microseconds, as Cloudflare reports them); ``install`` serves
``POST /client/v4/graphql`` on a ``Router``. It reads the query's variables and the
few parts of the query text that change the answer (filter keys, ``limit``, the
fields under ``sum``/``quantiles``/``dimensions``); it does not implement GraphQL.

Like Cloudflare: a query for anything but ``workersInvocationsAdaptive`` gets a
GraphQL error with HTTP 200; an unknown field of that dataset is a 400 (apis.md §5);
a wrong token is 401, another account 403. Rows without dimensions are one group
over the whole window. Quantiles of several minutes are combined as a
request-weighted mean of the per-minute quantiles: exact for steady traffic, an
approximation otherwise (Cloudflare computes them from the raw sample).
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchdog.http.server import Request, Response, Router
from watchdog.units import iso

SUM_FIELDS = ("requests", "errors", "subrequests")
_QUANTILE_SUFFIXES = ("P25", "P50", "P75", "P90", "P99", "P999")
_QUANTILE_POINTS = {"P25": 0.25, "P50": 0.5, "P75": 0.75, "P90": 0.9, "P99": 0.99, "P999": 0.999}
QUANTILE_FIELDS = tuple(
    f"{metric}{suffix}" for metric in ("wallTime", "cpuTime") for suffix in _QUANTILE_SUFFIXES
)
DIMENSION_FIELDS = ("datetimeMinute", "scriptName")
DATASET = "workersInvocationsAdaptive"


@dataclass
class MinuteRow:
    """One script's invocations in one minute; quantiles in microseconds."""

    minute: int
    requests: int = 0
    errors: int = 0
    quantiles_us: dict[str, float] = field(default_factory=dict)


@dataclass
class _Failure:
    status: int
    message: str
    code: str | None
    retry_after: float | None


def _minute(at: float) -> int:
    return int(at // 60 * 60)


def _weighted(pairs: Sequence[tuple[float, float]]) -> float | None:
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if pairs and weight > 0 else None


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class WorkersAnalytics:
    """The analytics store behind the fake endpoint, with helpers to record traffic.

    ``token`` / ``account_id``, when set, are checked like the real API does."""

    def __init__(self, token: str | None = None, account_id: str | None = None) -> None:
        self.token = token
        self.account_id = account_id
        self.rows: dict[str, dict[int, MinuteRow]] = {}
        self.queries: list[dict[str, Any]] = []  # the variables of every query answered
        self._failures: list[_Failure] = []
        # (script, start, end) -> [(version, errors, requests)]: set to serve the
        # scriptVersion dimension (public code uses it; the docs do not list it).
        self.per_version: Callable[[str, float, float], list[tuple[str, int, int]]] | None = None

    # --- recording -------------------------------------------------------------------

    def record(
        self,
        script: str,
        at: float,
        *,
        requests: int,
        errors: int = 0,
        wall_time_p50_s: float | None = None,
        wall_time_p99_s: float | None = None,
        cpu_time_p50_s: float | None = None,
        cpu_time_p99_s: float | None = None,
    ) -> MinuteRow:
        """Add ``requests`` invocations (``errors`` of them failed) to the minute of ``at``."""
        given = {
            "wallTimeP50": wall_time_p50_s,
            "wallTimeP99": wall_time_p99_s,
            "cpuTimeP50": cpu_time_p50_s,
            "cpuTimeP99": cpu_time_p99_s,
        }
        quantiles = {key: value * 1e6 for key, value in given.items() if value is not None}
        return self._add(script, at, requests, errors, quantiles)

    def record_invocations(
        self,
        script: str,
        at: float,
        wall_times_s: Sequence[float],
        errors: int = 0,
        cpu_times_s: Sequence[float] | None = None,
    ) -> MinuteRow:
        """Add one invocation per wall time, with quantiles computed from them."""
        if not wall_times_s:
            raise ValueError("record_invocations needs at least one wall time")
        quantiles: dict[str, float] = {}
        for metric, values in (("wallTime", wall_times_s), ("cpuTime", cpu_times_s)):
            if values:
                for suffix, q in _QUANTILE_POINTS.items():
                    quantiles[f"{metric}{suffix}"] = quantile(values, q) * 1e6
        return self._add(script, at, len(wall_times_s), errors, quantiles)

    def fill(
        self,
        script: str,
        start: float,
        end: float,
        *,
        requests_per_minute: int,
        error_ratio: float = 0.0,
        wall_time_p50_s: float = 0.02,
        wall_time_p99_s: float = 0.1,
        cpu_time_p99_s: float | None = None,
    ) -> None:
        """Steady traffic for every minute in ``[start, end)``."""
        errors = round(requests_per_minute * error_ratio)
        for minute in range(_minute(start), math.ceil(end), 60):
            self.record(
                script,
                minute,
                requests=requests_per_minute,
                errors=errors,
                wall_time_p50_s=wall_time_p50_s,
                wall_time_p99_s=wall_time_p99_s,
                cpu_time_p99_s=cpu_time_p99_s,
            )

    def _add(
        self, script: str, at: float, requests: int, errors: int, quantiles: Mapping[str, float]
    ) -> MinuteRow:
        if requests < 0 or not 0 <= errors <= requests:
            raise ValueError(f"need 0 <= errors <= requests, got {errors} of {requests}")
        minutes = self.rows.setdefault(script, {})
        row = minutes.setdefault(_minute(at), MinuteRow(_minute(at)))
        for key, value in quantiles.items():
            before = row.quantiles_us.get(key)
            row.quantiles_us[key] = (
                value
                if before is None
                else (before * row.requests + value * requests) / max(row.requests + requests, 1)
            )
        row.requests += requests
        row.errors += errors
        return row

    # --- failures --------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 200,
        message: str = "unable to execute query",
        *,
        code: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` queries with an error (status 200 = GraphQL errors)."""
        self._failures.extend(_Failure(status, message, code, retry_after) for _ in range(times))

    def take_failure(self) -> _Failure | None:
        return self._failures.pop(0) if self._failures else None

    # --- querying --------------------------------------------------------------------

    def groups(
        self,
        script: str,
        start: float,
        end: float,
        *,
        include_start: bool = True,
        include_end: bool = True,
        by_minute: bool = False,
        limit: int = 10_000,
    ) -> list[tuple[int | None, int, int, dict[str, float | None]]]:
        """(minute or None, requests, errors, quantiles µs) per group in the window."""

        def inside(minute: int) -> bool:
            after = minute >= start if include_start else minute > start
            before = minute <= end if include_end else minute < end
            return after and before

        rows = [
            row
            for minute, row in sorted(self.rows.get(script, {}).items())
            if inside(minute) and row.requests > 0
        ]
        if not rows:
            return []
        if by_minute:
            per_minute: list[tuple[int | None, int, int, dict[str, float | None]]] = []
            for row in rows[:limit]:
                per_minute.append((row.minute, row.requests, row.errors, dict(row.quantiles_us)))
            return per_minute
        combined: dict[str, float | None] = {}
        for key in QUANTILE_FIELDS:
            pairs = [(r.quantiles_us[key], r.requests) for r in rows if key in r.quantiles_us]
            combined[key] = _weighted(pairs)
        return [(None, sum(r.requests for r in rows), sum(r.errors for r in rows), combined)]


# --- the endpoint ------------------------------------------------------------------------


def _errors(message: str, status: int = 200, code: str | None = None) -> Response:
    error: dict[str, Any] = {"message": message, "path": None, "extensions": {}}
    if code:
        error["extensions"]["code"] = code
    return Response.json({"data": None, "errors": [error]}, status)


def _selection(query: str, block: str) -> list[str] | None:
    match = re.search(rf"\b{block}\s*\{{([^{{}}]*)\}}", query)
    return match.group(1).split() if match else None


def _variable(query: str, key: str, variables: Mapping[str, Any]) -> Any:
    match = re.search(rf"\b{key}\s*:\s*\$(\w+)", query)
    return variables.get(match.group(1)) if match else None


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def install(router: Router, analytics: WorkersAnalytics) -> None:
    """Serve ``POST /client/v4/graphql`` from ``analytics`` on ``router``."""

    async def graphql(request: Request, params: dict[str, str]) -> Response:
        if analytics.token is not None:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {analytics.token}".encode()):
                return _errors("Unauthorized", 401)
        failure = analytics.take_failure()
        if failure is not None:
            response = _errors(failure.message, failure.status, failure.code)
            if failure.retry_after is not None:
                response.headers["retry-after"] = f"{failure.retry_after:g}"
            return response
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _errors('request body needs a "query" string', 400)
        return _answer(analytics, body["query"], body.get("variables") or {})

    router.add("POST", "/client/v4/graphql", graphql)


def _introspect(analytics: WorkersAnalytics, query: str) -> Response | None:
    """``__type(name: ...)``: the dimensions type lists its fields (``scriptVersion``
    only when ``analytics.per_version`` serves it: the docs do not list it)."""
    found = re.search(r'__type\s*\(\s*name\s*:\s*"(\w+)"', query)
    if found is None:
        return None
    if found.group(1) != "AccountWorkersInvocationsAdaptiveDimensions":
        return Response.json({"data": {"__type": None}, "errors": None})
    names = [*DIMENSION_FIELDS, "status", *(["scriptVersion"] if analytics.per_version else [])]
    fields = [{"name": n} for n in names]
    return Response.json({"data": {"__type": {"name": found.group(1), "fields": fields}}})


def _per_version(analytics: WorkersAnalytics, script: str, start: float, end: float) -> Response:
    assert analytics.per_version is not None
    rows = [
        {"sum": {"requests": n, "errors": e}, "dimensions": {"scriptVersion": v}}
        for v, e, n in analytics.per_version(script, start, end)
    ]
    data = {"viewer": {"accounts": [{DATASET: rows}]}}
    return Response.json({"data": data, "errors": None})


def _answer(analytics: WorkersAnalytics, query: str, variables: Mapping[str, Any]) -> Response:
    introspected = _introspect(analytics, query)
    if introspected is not None:
        return introspected
    if DATASET not in query:
        name = re.search(r"accounts\s*\([^)]*\)\s*\{\s*(\w+)", query)
        return _errors(f'unknown field "{name.group(1) if name else "?"}"')
    account = _variable(query, "accountTag", variables)
    script = _variable(query, "scriptName", variables)
    if not isinstance(account, str) or not isinstance(script, str):
        return _errors("the fake needs accountTag and scriptName passed as variables", 400)
    if analytics.account_id is not None and account != analytics.account_id:
        return _errors("not authorized for that account", 403)
    bounds: dict[str, float] = {}
    for op in ("geq", "gt", "leq", "lt"):
        raw = _variable(query, f"datetime_{op}", variables)
        if raw is not None:
            parsed = _parse_time(raw)
            if parsed is None:
                return _errors(f"datetime_{op}: cannot parse {raw!r} as a Time", 400)
            bounds[op] = parsed
    start = bounds.get("geq", bounds.get("gt"))
    end = bounds.get("leq", bounds.get("lt"))
    if start is None or end is None:
        return _errors("the fake needs datetime_geq|gt and datetime_leq|lt filters", 400)
    sums = _selection(query, "sum") or []
    quantiles = _selection(query, "quantiles") or []
    dimensions = _selection(query, "dimensions") or []
    if dimensions == ["scriptVersion"] and analytics.per_version is not None:
        return _per_version(analytics, script, start, end)
    for asked, known in ((sums, SUM_FIELDS), (quantiles, QUANTILE_FIELDS)):
        for item in asked:
            if item not in known:
                return _errors(f'unknown field "{item}"', 400)
    for item in dimensions:
        if item not in DIMENSION_FIELDS:
            return _errors(f'unknown field "{item}" (the fake groups by {DIMENSION_FIELDS})', 400)
    limit_match = re.search(r"\blimit\s*:\s*(\d+)", query)
    analytics.queries.append(dict(variables))
    groups = analytics.groups(
        script,
        start,
        end,
        include_start="geq" in bounds,
        include_end="leq" in bounds,
        by_minute="datetimeMinute" in dimensions,
        limit=int(limit_match.group(1)) if limit_match else 10_000,
    )
    rows = []
    for minute, requests, errors, qs in groups:
        row: dict[str, Any] = {}
        if sums:
            counts = {"requests": requests, "errors": errors, "subrequests": 0}
            row["sum"] = {key: counts[key] for key in sums}
        if quantiles:
            row["quantiles"] = {key: qs.get(key) for key in quantiles}
        if dimensions:
            dims = {
                "scriptName": script,
                "datetimeMinute": iso(minute) if minute is not None else None,
            }
            row["dimensions"] = {key: dims[key] for key in dimensions}
        rows.append(row)
    data = {"viewer": {"accounts": [{DATASET: rows}]}}
    return Response.json({"data": data, "errors": None})
