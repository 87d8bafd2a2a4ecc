"""Prometheus range queries for the backtest: ``query_range`` in chunks the server
accepts, and ``parse_matrix`` for a ``/api/v1/query_range`` body (a recording's file)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watchdog.errors import BacktestError
from watchdog.http import bounded_read
from watchdog.sources import _transport
from watchdog.sources.prometheus import MAX_POINTS, RANGE_MAX_BYTES, _data, _decode, _point

if TYPE_CHECKING:
    import httpx


def _labels(series: object) -> str:
    metric = series.get("metric") if isinstance(series, dict) else None
    if not isinstance(metric, dict) or not metric:
        return "{}"
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def parse_matrix(body: object) -> list[tuple[float, float]]:
    """A range query's JSON (the envelope, or its ``data``) → ``[(ts, value), ...]``.

    Zero series is an empty list. NaN and ±Inf values are kept: they are data.
    Raises ``BacktestError`` for an error envelope, a result that is not a matrix,
    several series, or timestamps that are not strictly increasing."""
    data = _data(body, BacktestError)
    kind, result = data.get("resultType"), data.get("result")
    if kind != "matrix":
        raise BacktestError(f"not a matrix: resultType is {kind!r} (expected 'matrix')")
    if not isinstance(result, list):
        raise BacktestError("not a matrix: result is not a list")
    if not result:
        return []
    if len(result) > 1:
        shown = ", ".join(_labels(series) for series in result[:3])
        more = ", ..." if len(result) > 3 else ""
        raise BacktestError(
            f"several series ({len(result)}: {shown}{more}); "
            "aggregate the query to one series, e.g. sum(...) or max(...)"
        )
    series = result[0]
    if not isinstance(series, dict):
        raise BacktestError("not a matrix: the series is not an object")
    raw = series.get("values")
    if raw is None and "histograms" in series:
        raise BacktestError("the query returns native histograms; wrap it in histogram_quantile")
    if not isinstance(raw, list):
        raise BacktestError("not a matrix: the series has no 'values' list")
    points = _fast_points(raw)
    if points is None:  # something is off: the careful path names the point and why
        points = [_point(item, BacktestError, f"point {i}") for i, item in enumerate(raw)]
    _check_order(points)
    return points


_NUMBER_TYPES = (int, float)


def _fast_points(raw: list[Any]) -> list[tuple[float, float]] | None:
    """A month of points at C speed when every point is well-formed ``[number, "str"]``;
    None when any is not (then ``_point`` says which and why)."""
    try:
        if not all(
            type(item) is list
            and len(item) == 2
            and type(item[0]) in _NUMBER_TYPES
            and type(item[1]) is str
            for item in raw
        ):
            return None
        return [(float(ts), float(text)) for ts, text in raw]
    except (ValueError, OverflowError):
        return None


def _check_order(points: Sequence[tuple[float, float]]) -> None:
    for i in range(1, len(points)):
        before, ts = points[i - 1][0], points[i][0]
        if ts == before:
            raise BacktestError(f"duplicate timestamp {ts} at point {i}")
        if ts < before:
            raise BacktestError(f"timestamps not sorted: {ts} after {before} at point {i}")


async def query_range(
    http: httpx.AsyncClient,
    base_url: str,
    query: str,
    start: float,
    end: float,
    step: float,
    timeout: float,  # noqa: ASYNC109 (per request, and sent to Prometheus as its own timeout)
) -> list[tuple[float, float]]:
    """``query`` evaluated every ``step`` seconds from ``start`` to ``end`` (inclusive).

    Longer ranges are split into requests of at most ``MAX_POINTS`` points, each on
    the grid ``start + k*step`` so chunks neither overlap nor leave gaps. Raises
    ``BacktestError`` naming what failed (connection, HTTP, envelope, shape)."""
    import httpx  # here, not at load: the backtest imports this module, never httpx

    if not step > 0:
        raise BacktestError(f"step must be > 0 seconds, got {step!r}")
    if end < start:
        raise BacktestError(f"end ({end}) is before start ({start})")
    url = base_url.rstrip("/") + "/api/v1/query_range"
    last_step = math.floor((end - start) / step + 1e-9)
    points: list[tuple[float, float]] = []
    first = 0
    while first <= last_step:
        last = min(first + MAX_POINTS - 1, last_step)
        params = {
            "query": query,
            "start": f"{start + first * step:.3f}",
            "end": f"{start + last * step:.3f}",
            "step": f"{step:.3f}",
            "timeout": f"{timeout:g}",
        }
        try:
            response = await bounded_read.fetch(
                http, "GET", url, max_bytes=RANGE_MAX_BYTES, params=params, timeout=timeout
            )
        except httpx.TransportError as exc:
            reason = _transport.transport_failure(exc, timeout, url)
            raise BacktestError(f"Prometheus range query failed: {reason}") from None
        except bounded_read.BodyError as exc:
            raise BacktestError(f"Prometheus range query failed: {exc}") from None
        points.extend(parse_matrix(_decode(response, BacktestError)))
        first = last + 1
    _check_order(points)
    return points
