"""The ``prometheus`` source: PromQL instant queries over the HTTP API (the range-query
reader the backtest uses is ``prometheus_range``).

Each signal is one instant query (``GET /api/v1/query``, ``time`` = the sampling
moment) of ``signal.spec.query``, plus ``signal.spec.requests_query`` when set (its
value is the traffic behind the ratio). All signals of one call run concurrently,
each bounded by the source's ``timeout``. What a query can come back as, and what it
becomes (see apis.md §10.1):

- one finite value (vector of one series, or a scalar) → a value sample;
- an empty vector → ``no_data: no series``; NaN (``0/0``, an idle histogram) →
  ``no_data: NaN``; both are missing evidence, never a breach;
- ±Inf → an error sample: it comes from a broken ratio, not from production;
- several series → an error unless the signal says how to reduce them
  (``reduce: max|min|sum|avg``, NaN handled as PromQL's aggregations do);
- the error envelope, a non-JSON body (a proxy's HTML), another HTTP error, a
  refused connection or a timeout → an error sample that says which;
- an answer stamped away from the query's ``time`` (Prometheus always echoes it: a
  cache or a replay in between) → an error sample: stale evidence is no evidence;
- an answer over the source's ``max_bytes`` → an error sample, read no further.

When ``requests_query`` is set, the signal is a value only if both queries gave
one: a ratio whose traffic is unknown cannot be held against ``min_requests``.

A signal given as ``errors_query`` and ``requests_query`` (two counts over the same
window, e.g. ``sum(increase(x{code=~"5.."}[1m]))`` and ``sum(increase(x[1m]))``) is
divided here (``divide``): an errors answer without series while there is traffic
is 0 errors (a 5xx series that does not exist yet is the healthy case), no traffic
is no data, and the sample carries both counts.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from watchdog.errors import ParseError, SourceError, WatchdogError
from watchdog.http import bounded_read
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import PrometheusSourceSpec, Reduce
from watchdog.sources import _transport
from watchdog.sources.base import SourceDeps
from watchdog.units import format_duration, iso

if TYPE_CHECKING:  # imported where a query is sent: the backtest never loads httpx
    import httpx

log = structlog.get_logger("watchdog.sources.prometheus")

# The server refuses a range query over 11,000 points per series
# ("exceeded maximum resolution of 11,000 points per timeseries").
MAX_POINTS = 11_000
# An instant query's points carry the query's ``time`` (to the millisecond).
STALE_AFTER_S = 1.0
# One range answer: 11,000 points of a few series is a few MB; a bomb is not.
RANGE_MAX_BYTES = 256 * 1024 * 1024


class PrometheusSource:
    """Samples signals whose ``query`` is PromQL, from one Prometheus server."""

    def __init__(self, name: str, spec: PrometheusSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._http = deps.http
        self._query_url = spec.url.rstrip("/") + "/api/v1/query"
        self._slots = deps.slots  # a thousand signals' queries queue there, not in httpcore

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        samples = await asyncio.gather(*(self._signal(signal, now) for signal in signals))
        return {signal.name: sample for signal, sample in zip(signals, samples, strict=True)}

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    async def _signal(self, signal: ResolvedSignal, now: float) -> Sample:
        spec = signal.spec
        reduce = spec.reduce
        try:
            async with asyncio.timeout(self.spec.timeout):
                if spec.errors_query is not None and spec.requests_query is not None:
                    errors, requests = await asyncio.gather(
                        self._instant(signal.name, spec.errors_query, reduce, now),
                        self._instant(signal.name, spec.requests_query, reduce, now),
                    )
                    return divide(errors, requests, now)
                if spec.query is None:  # the rules loader requires it; guard hand-built ones
                    return Sample.error(now, "signal has no 'query' for a prometheus source")
                if spec.requests_query is None:
                    value = await self._instant(signal.name, spec.query, reduce, now)
                    return answered(value, now, signal.unit)
                value, traffic = await asyncio.gather(
                    self._instant(signal.name, spec.query, reduce, now),
                    self._instant(signal.name, spec.requests_query, reduce, now),
                )
        except TimeoutError:
            return Sample.error(now, _transport.timed_out(self.spec.timeout))
        return with_requests(answered(value, now, signal.unit), answered(traffic, now))

    async def _instant(
        self, signal: str, query: str, reduce: Reduce | None, now: float
    ) -> Sample | None:
        """The query's sample at ``now``; None when the answer has no series."""
        import httpx

        params = {"query": query, "time": f"{now:.3f}", "timeout": f"{self.spec.timeout:g}"}
        try:
            response = await self._get(params)
        except httpx.TransportError as exc:
            return Sample.error(
                now, _transport.transport_failure(exc, self.spec.timeout, self._query_url)
            )
        except SourceError as exc:
            return Sample.error(now, str(exc))
        try:
            body = _decode(response, ParseError)
            _log_warnings(body, source=self.name, signal=signal)
            return read_instant(body, reduce, now)
        except SourceError as exc:
            return Sample.error(now, str(exc))

    async def _get(self, params: Mapping[str, str]) -> httpx.Response:
        """The answer, read up to ``max_bytes`` after decoding (a runaway query, a
        proxy or a decompression bomb must not fill memory); ``SourceError`` past
        that, without reading the rest."""
        try:
            async with self._slots:
                return await bounded_read.fetch(
                    self._http,
                    "GET",
                    self._query_url,
                    max_bytes=self.spec.max_bytes,
                    params=params,
                    timeout=self.spec.timeout,
                )
        except bounded_read.BodyError as exc:
            raise SourceError(str(exc)) from None


NO_SERIES = "no series"
# A ratio query (errors / requests) has no series when nothing failed: it cannot tell
# "no errors" from "no metric", so it stays missing evidence, and says what can.
_RATIO_HINT = (
    " (a ratio query is empty when nothing failed; errors_query + requests_query "
    "counts that as 0 errors)"
)
NO_TRAFFIC = "no traffic: requests_query has no series"


def answered(answer: Sample | None, at: float, unit: str = "number") -> Sample:
    """An answer as a sample: no series is no data."""
    if answer is not None:
        return answer
    return Sample.no_data(at, NO_SERIES + (_RATIO_HINT if unit == "ratio" else ""))


def divide(errors: Sample | None, requests: Sample | None, at: float) -> Sample:
    """``errors_query / requests_query`` as the live daemon, the backtest and rule
    tests read it (None is an answer without series). No error series while there is
    traffic is 0 errors; no traffic (no series, or 0) is no evidence; a failed or
    unreadable answer of either is missing evidence that says which."""
    if requests is None:
        return Sample.no_data(at, NO_TRAFFIC)
    if requests.kind is not SampleKind.VALUE:
        return Sample(at, requests.kind, reason=f"requests_query: {requests.reason}")
    traffic = requests.value
    if traffic < 0:
        return Sample.error(at, f"requests_query is {traffic:g}, not a count")
    if traffic == 0:
        return Sample.no_data(at, "no traffic: requests_query is 0")
    if errors is None:
        return Sample.ratio(at, 0.0, traffic)
    if errors.kind is not SampleKind.VALUE:
        return Sample(at, errors.kind, requests=traffic, reason=f"errors_query: {errors.reason}")
    if errors.value < 0:
        return Sample.error(at, f"errors_query is {errors.value:g}, not a count")
    return Sample.ratio(at, errors.value, traffic)


def with_requests(value: Sample, requests: Sample) -> Sample:
    """Join a signal's value with its ``requests_query`` result."""
    if value.kind is not SampleKind.VALUE:
        if requests.kind is SampleKind.VALUE:  # keep the traffic: "NaN at 0 requests" says why
            return Sample(value.at, value.kind, value.value, requests.value, value.reason)
        return value
    if requests.kind is not SampleKind.VALUE:
        return Sample(value.at, requests.kind, reason=f"requests_query: {requests.reason}")
    return Sample.of(value.at, value.value, requests.value)


# --- parsing ---------------------------------------------------------------------------


def _decode(response: httpx.Response, error: type[WatchdogError]) -> object:
    """The JSON body. Prometheus answers its error envelope with 4xx/5xx, so JSON is
    read whatever the status; a non-JSON body is reported with its status."""
    try:
        body: object = json.loads(response.content)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, a 5000-digit number, deep nesting
        if response.is_success:
            raise error(f"response is not JSON: {_transport.excerpt(response)}") from None
        raise error(_transport.http_failure(response)) from None
    if not response.is_success and (not isinstance(body, dict) or "status" not in body):
        raise error(_transport.http_failure(response))
    return body


def _data(body: object, error: type[WatchdogError]) -> Mapping[str, Any]:
    """``data`` of a success envelope (a bare ``data`` object is accepted too)."""
    if not isinstance(body, dict):
        raise error(f"expected a JSON object, got {type(body).__name__}")
    if "resultType" in body:
        return body
    status = body.get("status")
    if status == "error":
        kind = body.get("errorType") or "error"
        raise error(f"Prometheus error ({kind}): {body.get('error') or 'no message'}")
    if status != "success":
        raise error(f"not a Prometheus API response (status {status!r})")
    data = body.get("data")
    if not isinstance(data, dict) or "resultType" not in data:
        raise error("Prometheus response has no data.resultType")
    return data


def _point(raw: object, error: type[WatchdogError], where: str) -> tuple[float, float]:
    """``[1435781451.781, "1"]`` → (ts, value); values are strings so NaN/±Inf survive."""
    if not isinstance(raw, list) or len(raw) != 2:
        raise error(f'{where}: expected [timestamp, "value"], got {raw!r:.80}')
    ts, text = raw
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not isinstance(text, str):
        raise error(f'{where}: expected [timestamp, "value"], got {raw!r:.80}')
    try:
        return float(ts), float(text)
    except ValueError:
        raise error(f"{where}: value {text!r:.40} is not a number") from None
    except OverflowError:
        raise error(f"{where}: timestamp {ts!r:.40} is out of range") from None


def _fresh(point: tuple[float, float], at: float, where: str) -> float:
    """The point's value, if it is stamped at the query time ``at``."""
    ts, value = point
    if abs(ts - at) <= STALE_AFTER_S:
        return value
    if not (math.isfinite(ts) and abs(ts) < 1e11):
        raise ParseError(f"{where}: timestamp {ts!r} is not a time")
    side = "before" if ts < at else "after"
    raise ParseError(
        f"{where}: stale answer stamped {iso(ts)}, {format_duration(abs(at - ts))} {side} "
        "the query time (a cache or a replay in between?)"
    )


def _series_point(series: object, index: int) -> tuple[float, float]:
    if not isinstance(series, dict):
        raise ParseError(f"series {index} is not an object")
    if "value" not in series:
        if "histogram" in series:
            raise ParseError(
                "the query returns a native histogram; wrap it in histogram_quantile(...)"
            )
        raise ParseError(f"series {index} has no value")
    return _point(series["value"], ParseError, f"series {index}")


def _reduce(values: list[float], how: Reduce) -> float:
    """As PromQL aggregates: max/min skip NaN unless all are NaN; sum/avg propagate it."""
    if how in ("max", "min"):
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return math.nan
        return max(finite) if how == "max" else min(finite)
    total = math.fsum(values)
    return total if how == "sum" else total / len(values)


def parse_instant(body: object, reduce: Reduce | None, at: float) -> Sample:
    """An instant query's JSON → one sample (no series is no data). Raises
    ``SourceError`` for an error envelope and ``ParseError`` for a payload that is not
    what the API returns."""
    return answered(read_instant(body, reduce, at), at)


def read_instant(body: object, reduce: Reduce | None, at: float) -> Sample | None:
    """``parse_instant``, but None for a vector without series (for ``errors_query``
    that is 0 errors, for any other query no data)."""
    data = _data(body, ParseError)
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        value = _fresh(_point(result, ParseError, "scalar"), at, "scalar")
    elif kind == "vector":
        if not isinstance(result, list):
            raise ParseError("vector result is not a list")
        if not result:
            return None
        values = [
            _fresh(_series_point(series, index), at, f"series {index}")
            for index, series in enumerate(result)
        ]
        if len(values) > 1 and reduce is None:
            return Sample.error(at, f"{len(values)} series (set reduce: max|min|sum|avg)")
        value = _reduce(values, reduce) if reduce is not None else values[0]
    elif kind == "matrix":
        return Sample.error(at, "the query returns a range vector (matrix); give an instant one")
    else:
        return Sample.error(at, f"the query returns a {kind!r}, not a number")
    if math.isnan(value):
        return Sample.no_data(at, "NaN")
    if math.isinf(value):
        sign = "+Inf" if value > 0 else "-Inf"
        return Sample.error(at, f"value is {sign}, not a usable number (a division by zero?)")
    return Sample.of(at, value)


def _log_warnings(body: object, **context: str) -> None:
    if isinstance(body, dict):
        for key in ("warnings", "infos"):
            notes = body.get(key)
            if notes:
                log.debug("prometheus annotations", kind=key, notes=notes, **context)
