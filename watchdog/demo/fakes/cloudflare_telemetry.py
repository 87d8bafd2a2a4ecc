"""A local stand-in for Workers Observability and for a Worker's front door.

``Telemetry`` holds one row per served request (or per batch of identical ones) with
the keys the real telemetry carries (``$workers.scriptName``,
``$workers.scriptVersion.id``, ``$workers.outcome``, ``$workers.wallTimeMs``,
``$metadata.statusCode``) and answers the telemetry query API
``POST /accounts/{account}/workers/observability/telemetry/query`` (view
``calculations``: filters ``eq``/``neq``/``in`` and the numeric comparisons
``gt``/``gte``/``lt``/``lte``, ``groupBys``, operators ``count``, ``median``, ``p90``,
``p95``, ``p99``) and ``.../telemetry/keys``. A filter the SDK's ``ParametersFilter``
does not describe (no ``type``), an operation not served here, or a comparison that
is not ``type: number`` with a number ``value`` is refused (400), never read loosely.
Shapes: ``cloudflare/cloudflare-python`` ``types/workers/observability/telemetry_query_*``
(``result.calculations[].aggregates[]``: ``count``, ``interval``, ``sampleInterval``,
``value``, ``groups[{key, value}]``).

Like the real service: events become queryable ``delay_s`` after they happen (no
number is documented; a parameter here), and a ``head_sampling_rate`` below 1 keeps
each event with that probability; ``count`` is the events kept and
``sampleInterval`` is ``1 / rate`` (guess: how the real API reports the rate).

``WorkerEdge`` is the Worker's front door: each request goes to a version of the live
deployment by weight; ``Cloudflare-Workers-Version-Overrides: <script>="<id>"`` (an
RFC 8941 dictionary) pins it to that version when the version is in the deployment,
even at 0 %, and is silently ignored otherwise (version-overrides.mdx). The answer
names its version in a header, as the version metadata binding lets a Worker do.
With a ``tail`` (``cloudflare_tail.TailFeed``) attached, every invocation also goes to
the Tail Worker as a ``TraceItem``.
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from watchdog.clock import Clock
from watchdog.demo.fakes.cloudflare_tail import TailFeed
from watchdog.http.server import HTTPError, Request, Response, Router

QUERY_PATH = "/accounts/{account}/workers/observability/telemetry/query"
KEYS_PATH = "/accounts/{account}/workers/observability/telemetry/keys"
OVERRIDE_HEADER = "cloudflare-workers-version-overrides"
KEYS = {
    "$metadata.type": "string",
    "$workers.scriptName": "string",
    "$workers.scriptVersion.id": "string",
    "$workers.outcome": "string",
    "$workers.wallTimeMs": "number",
    "$metadata.statusCode": "number",
}
_QUANTILES = {"median": 0.5, "p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
_COMPARE = {
    **dict.fromkeys(("gt", ">"), float.__gt__),
    **dict.fromkeys(("gte", ">="), float.__ge__),
    **dict.fromkeys(("lt", "<"), float.__lt__),
    **dict.fromkeys(("lte", "<="), float.__le__),
}
_SERVED = frozenset({"eq", "=", "neq", "!=", "in", "IN", *_COMPARE})
_MEMBER = re.compile(r'^\s*([a-z*][a-z0-9_\-.*]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True, slots=True)
class Row:
    """``count`` identical invocations of one version at one moment."""

    at: float
    script: str
    version: str
    outcome: str  # "ok" or "exception" (a thrown error, HTTP 500 / error 1101)
    wall_ms: float
    count: int = 1
    # ``cf-worker-event``: an invocation; ``cf-worker``: a line the Worker logged
    # (``console.log``), which Workers Logs stores as an event of its own.
    kind: str = "cf-worker-event"

    def key(self, name: str) -> str | float | None:
        values: dict[str, str | float] = {
            "$metadata.type": self.kind,
            "$workers.scriptName": self.script,
            "$workers.scriptVersion.id": self.version,
        }
        if self.kind == "cf-worker-event":  # a logged line has no outcome or wall time
            values["$workers.outcome"] = self.outcome
            values["$workers.wallTimeMs"] = self.wall_ms
            values["$metadata.statusCode"] = 200.0 if self.outcome == "ok" else 500.0
        return values.get(name)


class Telemetry:
    """Workers Logs of one account: rows in time order, late and sampled on query."""

    def __init__(
        self, clock: Clock, *, delay_s: float = 0.0, head_sampling_rate: float = 1.0, seed: int = 0
    ) -> None:
        if not 0.0 < head_sampling_rate <= 1.0:
            raise ValueError("head_sampling_rate must lie in (0, 1]")
        self.clock = clock
        self.delay_s = delay_s
        self.head_sampling_rate = head_sampling_rate
        self.rows: list[Row] = []
        self.queries = 0
        self._rng = random.Random(seed)

    def record(self, row: Row) -> None:
        """Keep the row's events that survive head sampling (rows stay in time order)."""
        kept = row.count
        if self.head_sampling_rate < 1.0:
            kept = sum(self._rng.random() < self.head_sampling_rate for _ in range(row.count))
        if kept:
            kept_row = replace(row, count=kept)
            bisect.insort_right(self.rows, kept_row, key=lambda r: r.at)

    def visible(self, start: float, end: float) -> list[Row]:
        """Rows in ``[start, end)`` that the delay has made queryable by now."""
        horizon = min(end, self.clock.now() - self.delay_s)
        first = bisect.bisect_left(self.rows, start, key=lambda r: r.at)
        last = bisect.bisect_left(self.rows, horizon, key=lambda r: r.at)
        return self.rows[first:last]

    def per_version(self, script: str, start: float, end: float) -> list[tuple[str, int, int]]:
        """``[(version, errors, requests)]`` of ``script`` in ``[start, end)`` (GraphQL)."""
        totals: dict[str, list[int]] = {}
        for r in self.visible(start, end):
            if r.script == script and r.kind == "cf-worker-event":
                entry = totals.setdefault(r.version, [0, 0])
                entry[0] += r.count if r.outcome != "ok" else 0
                entry[1] += r.count
        return [(v, e, n) for v, (e, n) in sorted(totals.items())]

    def query(self, body: Any) -> dict[str, Any]:
        """The ``result`` of a telemetry query; ``ValueError`` names a bad field."""
        self.queries += 1
        if not isinstance(body, dict) or not isinstance(body.get("queryId"), str):
            raise ValueError("queryId: required string")
        frame = body.get("timeframe")
        if not isinstance(frame, dict) or not all(
            isinstance(frame.get(k), int | float) for k in ("from", "to")
        ):
            raise ValueError("timeframe: needs numbers 'from' and 'to' (epoch ms)")
        if body.get("view", "calculations") != "calculations":
            raise ValueError(f"view: only 'calculations' is served here, got {body.get('view')!r}")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise ValueError("parameters: expected an object")
        filters = [check_filter(f) for f in params.get("filters") or []]
        window = self.visible(frame["from"] / 1000.0, frame["to"] / 1000.0)
        how = params.get("filterCombination", "and")
        rows = [r for r in window if _matches(r, filters, how)]
        keys = [_group_key(g) for g in params.get("groupBys") or []]
        groups: dict[tuple[Any, ...], list[Row]] = {}
        for r in rows:
            groups.setdefault(tuple(r.key(k) for k in keys), []).append(r)
        interval = 1.0 / self.head_sampling_rate
        calcs = [
            _calculation(c, keys, groups, interval, (frame["to"] - frame["from"]) / 1000.0)
            for c in params.get("calculations") or []
        ]
        return {
            "run": {"id": body["queryId"], "status": "COMPLETED", "timeframe": frame},
            "statistics": {"elapsed": 0.001, "rows_read": len(rows), "bytes_read": 0},
            "calculations": calcs,
        }


def _group_key(group: Any) -> str:
    if not isinstance(group, dict) or not isinstance(group.get("value"), str):
        raise ValueError("groupBys: each needs {type, value: key}")
    return str(group["value"])


def check_filter(f: Any) -> dict[str, Any]:
    """The filter, or ``ValueError`` when the SDK's ``ParametersFilter`` does not
    describe it (or this stand-in does not serve its operation)."""
    if not isinstance(f, dict) or not all(isinstance(f.get(k), str) for k in ("key", "type")):
        raise ValueError("filters: each needs a key, an operation, a type and a value")
    op, kind, want = f.get("operation"), f["type"], f.get("value")
    if op not in _SERVED:
        raise ValueError(f"filters: operation {op!r} is not served here")
    if kind not in ("string", "number", "boolean"):
        raise ValueError(f"filters: type must be string, number or boolean, got {kind!r}")
    if want is not None and not isinstance(want, str | int | float | bool):
        raise ValueError(f"filters: value must be a string, number or boolean, got {want!r}")
    number = isinstance(want, int | float) and not isinstance(want, bool) and math.isfinite(want)
    if op in _COMPARE and (kind != "number" or not number):
        raise ValueError(
            f"filters: {op!r} on {f['key']} compares numbers: needs type number and a "
            f"finite number value, got type {kind!r} and value {want!r}"
        )
    return f


def _matches(row: Row, filters: Sequence[Any], combination: str) -> bool:
    results = []
    for f in filters:
        have, op, want = row.key(f["key"]), f["operation"], f.get("value")
        if op in ("eq", "="):
            results.append(have is not None and have == want)
        elif op in ("neq", "!="):
            results.append(have is not None and have != want)
        elif op in ("in", "IN"):
            values = want.split(",") if isinstance(want, str) else want
            results.append(have is not None and isinstance(values, list) and have in values)
        else:  # a comparison: an event without the key (or not a number) never matches
            results.append(isinstance(have, float) and _COMPARE[op](have, float(want)))
    if not results:
        return True
    return any(results) if str(combination).lower() == "or" else all(results)


def _calculation(
    calc: Any,
    keys: Sequence[str],
    groups: Mapping[tuple[Any, ...], list[Row]],
    sample_interval: float,
    span_s: float,
) -> dict[str, Any]:
    if not isinstance(calc, dict) or not isinstance(calc.get("operator"), str):
        raise ValueError("calculations: each needs an operator")
    op = calc["operator"].lower()
    if op != "count" and op not in _QUANTILES:
        raise ValueError(f"calculations: operator {calc['operator']!r} is not served here")
    aggregates = []
    for group, rows in groups.items():
        count = sum(r.count for r in rows)
        if op == "count":
            value = count * sample_interval
        else:
            value = _weighted_quantile(rows, calc.get("key", ""), _QUANTILES[op])
        aggregates.append(
            {
                "count": count,
                "interval": span_s,
                "sampleInterval": sample_interval,
                "value": value,
                "groups": [{"key": k, "value": v} for k, v in zip(keys, group, strict=True)],
            }
        )
    out: dict[str, Any] = {"calculation": calc["operator"], "aggregates": aggregates, "series": []}
    if calc.get("alias"):
        out["alias"] = calc["alias"]
    return out


def _weighted_quantile(rows: Sequence[Row], key: str, q: float) -> float:
    values = sorted((float(v), r.count) for r in rows if isinstance(v := r.key(key), float))
    if not values:
        return 0.0
    total = sum(c for _, c in values)
    rank = q * total
    seen = 0
    for value, count in values:
        seen += count
        if seen >= rank:
            return value
    return values[-1][0]


def install(
    router: Router, telemetry: Telemetry, prefix: str, account: Callable[[str], None]
) -> None:
    """Serve the telemetry query and keys endpoints on ``router`` (auth is the caller's)."""

    async def query(request: Request, params: dict[str, str]) -> Response:
        account(params["account"])
        try:
            result = telemetry.query(request.json())
        except ValueError as exc:
            raise HTTPError(400, f"bad telemetry query: {exc}") from None
        return Response.json({"success": True, "errors": [], "messages": [], "result": result})

    async def keys(request: Request, params: dict[str, str]) -> Response:
        """Like the real one: only keys that events in the timeframe carry."""
        account(params["account"])
        body = request.json() or {}
        frame = body.get("timeframe") if isinstance(body, dict) else None
        if isinstance(frame, dict) and all(
            isinstance(frame.get(k), int | float) for k in ("from", "to")
        ):
            start, end = frame["from"] / 1000.0, frame["to"] / 1000.0
        else:
            start, end = 0.0, float("inf")
        try:
            filters = [check_filter(f) for f in body.get("filters") or []]
            rows = [r for r in telemetry.visible(start, end) if _matches(r, filters, "and")]
        except ValueError as exc:
            raise HTTPError(400, f"bad keys query: {exc}") from None
        last = max((r.at for r in rows), default=0.0)
        items = [{"key": k, "type": t, "lastSeenAt": int(last * 1000)} for k, t in KEYS.items()]
        return Response.json(
            {"success": True, "errors": [], "messages": [], "result": items if rows else []}
        )

    router.add("POST", prefix + QUERY_PATH, query)
    router.add("POST", prefix + KEYS_PATH, keys)


# --- the Worker's front door ------------------------------------------------------------


@dataclass
class Behaviour:
    """How one version answers: the share of requests that throw, and wall time:
    ``wall_ms`` is the median, spread log-normally by ``wall_sigma`` (0: every request
    takes ``wall_ms``), and a ``slow_share`` of requests takes ``slow_factor`` times as
    long (a regression that hits some requests)."""

    error_ratio: float = 0.0
    wall_ms: float = 40.0
    broken_paths: tuple[str, ...] = ()  # a path holding one of these answers 500 (a broken step)
    wall_sigma: float = 0.0
    slow_share: float = 0.0
    slow_factor: float = 1.0
    log_lines: int = 0  # lines it logs per request (``console.log``): events of their own

    def wall(self, rng: random.Random) -> float:
        """One request's wall time in whole milliseconds (as Workers Logs reports it)."""
        ms = self.wall_ms * (math.exp(rng.gauss(0.0, self.wall_sigma)) if self.wall_sigma else 1)
        if self.slow_share and rng.random() < self.slow_share:
            ms *= self.slow_factor
        return float(max(0, round(ms)))


def parse_overrides(header: str) -> dict[str, str] | None:
    """An RFC 8941 dictionary of sf-strings, or None when malformed (then ignored)."""
    out: dict[str, str] = {}
    for member in header.split(","):
        found = _MEMBER.match(member)
        if found is None:
            return None
        out[found.group(1)] = found.group(2).replace('\\"', '"').replace("\\\\", "\\")
    return out


@dataclass
class WorkerEdge:
    """Routes a Worker's requests across its live deployment and records telemetry."""

    script: str
    live: Callable[[], list[tuple[str, float]]]  # FakeCloudflare.live_versions bound to script
    telemetry: Telemetry
    version_header: str = "x-worker-version"
    seed: int = 0
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    overridden: int = 0
    pinned: dict[str, int] = field(default_factory=dict)  # requests pinned, per version
    served: int = 0
    tail: TailFeed | None = None  # the Tail Worker attached (``tail_consumers``), if any

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.router = Router()
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            for pattern in ("/{a}", "/{a}/{b}", "/{a}/{b}/{c}"):
                self.router.add(method, pattern, self._serve)

    def route(self, override: str | None = None) -> str:
        """The version that answers one request (an override first, when it applies)."""
        versions = self.live()
        if not versions:
            raise HTTPError(503, f"the Worker {self.script} has no deployment")
        if override is not None:
            pinned = (parse_overrides(override) or {}).get(self.script)
            if pinned is not None and any(v == pinned for v, _ in versions):
                self.overridden += 1
                self.pinned[pinned] = self.pinned.get(pinned, 0) + 1
                return pinned
        draw = self._rng.random() * 100.0
        for version, pct in versions:
            draw -= pct
            if draw < 0:
                return version
        return versions[-1][0]

    def handle(
        self, at: float, override: str | None = None, path: str = "/", method: str = "GET"
    ) -> tuple[int, str]:
        version = self.route(override)
        b = self.behaviours.get(version, Behaviour())
        failed = self._rng.random() < b.error_ratio or any(p in path for p in b.broken_paths)
        outcome = "exception" if failed else "ok"
        wall = b.wall(self._rng)
        self.telemetry.record(Row(at, self.script, version, outcome, wall))
        self._log_lines(at, version, b.log_lines)
        if self.tail is not None:
            self.tail.record(version, outcome, at, wall, path=path, method=method)
        return (500 if failed else 200), version

    def _log_lines(self, at: float, version: str, lines: int) -> None:
        if lines:
            self.telemetry.record(Row(at, self.script, version, "ok", 0.0, lines, "cf-worker"))

    def simulate(self, at: float, requests: int) -> dict[str, tuple[int, int]]:
        """``requests`` routed by weight at ``at`` in one go: ``{version: (errors, n)}``."""
        per = Counter(self.route() for _ in range(requests))
        out, rng, tail = {}, self._rng, self.tail
        for version, n in per.items():
            b = self.behaviours.get(version, Behaviour())
            errors = sum(rng.random() < b.error_ratio for _ in range(n))
            for outcome, count in (("exception", errors), ("ok", n - errors)):
                fixed = not b.wall_sigma and not b.slow_share  # one row for them all
                walls = {b.wall_ms: count} if fixed else Counter(b.wall(rng) for _ in range(count))
                for wall, same in sorted(walls.items()):
                    if same:
                        self.telemetry.record(Row(at, self.script, version, outcome, wall, same))
                    if tail is not None:  # the Tail Worker sees each invocation
                        for _ in range(same):
                            tail.record(version, outcome, at, wall)
            self._log_lines(at, version, b.log_lines * n)
            out[version] = (errors, n)
        return out

    async def _serve(self, request: Request, params: dict[str, str]) -> Response:
        override = request.headers.get(OVERRIDE_HEADER)
        now = self.telemetry.clock.now()
        status, version = self.handle(now, override, request.path, request.method)
        self.served += 1  # a token and an id to capture, as a login and a new record give
        body = {"ok": status < 500, "version": version, "token": f"t{self.served}"}
        body["id"] = self.served
        return Response.json(body, status, {self.version_header: version})
