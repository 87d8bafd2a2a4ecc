"""The prometheus source and range reader against a loopback server that answers the
real API envelopes (apis.md §10.1)."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from structlog.testing import capture_logs

from watchdog.clock import FakeClock
from watchdog.errors import BacktestError
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import PrometheusSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.prometheus import MAX_POINTS, PrometheusSource
from watchdog.sources.prometheus_range import parse_matrix, query_range

NOW = 1_790_000_000.0
HANG = "hang"


def vector(*values: str) -> dict[str, object]:
    """An instant-vector success envelope, one series per value."""
    result = [
        {"metric": {"instance": f"i{n}"}, "value": [NOW, value]} for n, value in enumerate(values)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def error_envelope(kind: str, message: str) -> dict[str, object]:
    return {"status": "error", "errorType": kind, "error": message}


@dataclass
class FakePrometheus:
    """Answers ``/api/v1/query`` per query text; records every request's parameters."""

    answers: dict[str, Response | str] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    barrier: int = 0
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def answer(self, query: str, body: object, status: int = 200) -> None:
        self.answers[query] = Response.json(body, status)

    def router(self) -> Router:
        router = Router()

        @router.route("GET", "/api/v1/query")
        async def query(request: Request, params: dict[str, str]) -> Response:
            args = {key: values[0] for key, values in request.query.items()}
            self.seen.append(args)
            self.in_flight += 1
            if self.barrier and self.in_flight >= self.barrier:
                self.all_arrived.set()
            if self.barrier:
                await self.all_arrived.wait()
            answer = self.answers.get(args["query"])
            if answer == HANG:
                await self.release.wait()
            if isinstance(answer, Response):
                return answer
            return Response.json(error_envelope("bad_data", "no answer set up"), 400)

        return router


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    async with serve(fake.router()) as server:
        fake.url = server.url
        yield fake
        fake.release.set()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def source(url: str, http: httpx.AsyncClient, timeout: float = 5.0) -> PrometheusSource:
    spec = PrometheusSourceSpec(type="prometheus", url=url, timeout=timeout)
    return PrometheusSource("prom", spec, SourceDeps(http=http, clock=FakeClock(NOW)))


def signal(name: str, **keys: object) -> ResolvedSignal:
    spec = PrometheusSourceSpec(type="prometheus", url="http://unused")
    signal_spec = SignalSpec.model_validate({"source": "prom", **keys})
    return ResolvedSignal(name, "prom", spec, signal_spec, "number", 15.0)


async def one(
    prom: FakePrometheus, http: httpx.AsyncClient, timeout_s: float = 5.0, **keys: object
) -> Sample:
    samples = await source(prom.url, http, timeout_s).sample([signal("s", **keys)], NOW)
    return samples["s"]


async def test_single_series_is_a_value_queried_at_now(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """One series gives its value; the query is sent with time = the sampling moment."""
    prom.answer("rate", vector("0.072"))
    sample = await one(prom, http, query="rate")
    assert sample.kind is SampleKind.VALUE
    assert sample.value == pytest.approx(0.072)
    assert sample.at == NOW
    assert prom.seen == [{"query": "rate", "time": f"{NOW:.3f}", "timeout": "5"}]


async def test_scalar_result_is_a_value(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """A scalar result (``scalar(...)``, a literal) is read like a one-series vector."""
    prom.answer("s", {"status": "success", "data": {"resultType": "scalar", "result": [NOW, "3"]}})
    assert (await one(prom, http, query="s")).value == 3.0


async def test_error_envelope_becomes_an_error_with_its_text(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """status:error → an error sample carrying errorType and the server's message."""
    prom.answer(
        "bad(", error_envelope("bad_data", "1:5: parse error: unclosed left parenthesis"), 400
    )
    sample = await one(prom, http, query="bad(")
    assert sample.kind is SampleKind.ERROR
    assert "bad_data" in sample.reason
    assert "unclosed left parenthesis" in sample.reason


@pytest.mark.parametrize(
    ("kind", "status"), [("execution", 422), ("timeout", 503), ("canceled", 499)]
)
async def test_every_error_type_is_an_error(
    prom: FakePrometheus, http: httpx.AsyncClient, kind: str, status: int
) -> None:
    """The error envelope is read whatever HTTP status carries it."""
    prom.answer("q", error_envelope(kind, "query failed"), status)
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.ERROR
    assert kind in sample.reason


async def test_nan_is_no_data(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """NaN (0/0 over an idle window) is missing evidence, never a value."""
    prom.answer("q", vector("NaN"))
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.NO_DATA
    assert sample.reason == "NaN"


@pytest.mark.parametrize("text", ["+Inf", "-Inf"])
async def test_infinite_value_is_an_error(
    prom: FakePrometheus, http: httpx.AsyncClient, text: str
) -> None:
    """±Inf comes from a broken ratio, not from production: an error sample."""
    prom.answer("q", vector(text))
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.ERROR
    assert text in sample.reason


async def test_empty_vector_is_no_data(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """An empty vector is "no series", not zero and not an error."""
    prom.answer("q", vector())
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.NO_DATA
    assert sample.reason == "no series"


async def test_several_series_without_reduce_is_an_error(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """Several series and no ``reduce`` → an error that says how to fix it."""
    prom.answer("q", vector("1", "2", "3"))
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.ERROR
    assert sample.reason == "3 series (set reduce: max|min|sum|avg)"


@pytest.mark.parametrize(
    ("reduce", "expected"), [("max", 3.0), ("min", 1.0), ("sum", 6.0), ("avg", 2.0)]
)
async def test_several_series_with_reduce(
    prom: FakePrometheus, http: httpx.AsyncClient, reduce: str, expected: float
) -> None:
    """``reduce`` folds several series into one value."""
    prom.answer("q", vector("1", "2", "3"))
    assert (await one(prom, http, query="q", reduce=reduce)).value == expected


async def test_reduce_treats_nan_like_promql(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """max skips a NaN series (as PromQL's max does); sum propagates it → no data."""
    prom.answer("q", vector("NaN", "2"))
    assert (await one(prom, http, query="q", reduce="max")).value == 2.0
    assert (await one(prom, http, query="q", reduce="sum")).kind is SampleKind.NO_DATA


async def test_html_page_with_200_is_an_error(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """A proxy's HTML login page (200) is an error, not a parse crash."""
    prom.answers["q"] = Response.text(
        "<!DOCTYPE html><html><body>Sign in</body></html>", content_type="text/html"
    )
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.ERROR
    assert "not JSON" in sample.reason
    assert "HTML" in sample.reason


async def test_html_gateway_error_names_the_status(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """A proxy's 502 HTML page → an error naming the status."""
    prom.answers["q"] = Response.text("<html>Bad Gateway</html>", 502, content_type="text/html")
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.ERROR
    assert sample.reason.startswith("HTTP 502")


async def test_plain_500_is_an_error(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """A 500 with a text body → an error with the status and an excerpt."""
    prom.answers["q"] = Response.text("internal server error", 500)
    sample = await one(prom, http, query="q")
    assert sample.kind is SampleKind.ERROR
    assert sample.reason == "HTTP 500: 'internal server error'"


async def test_matrix_and_native_histogram_are_errors(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """A range vector or a native histogram sample is not a number to compare."""
    prom.answer("m", {"status": "success", "data": {"resultType": "matrix", "result": []}})
    prom.answer(
        "h",
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "histogram": [NOW, {}]}]},
        },
    )
    assert "matrix" in (await one(prom, http, query="m")).reason
    assert "histogram_quantile" in (await one(prom, http, query="h")).reason


def refused_url() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_refused_connection_is_an_error(http: httpx.AsyncClient) -> None:
    """Prometheus down (connection refused) → an error sample for every signal."""
    src = source(refused_url(), http)
    samples = await src.sample([signal("a", query="x"), signal("b", query="y")], NOW)
    assert {s.kind for s in samples.values()} == {SampleKind.ERROR}
    assert samples["a"].reason == "connection refused"


async def test_slow_server_times_out(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """A query that takes longer than the source's timeout is an error sample."""
    prom.answers["q"] = HANG
    sample = await one(prom, http, timeout_s=0.2, query="q")
    assert sample.kind is SampleKind.ERROR
    assert sample.reason == "timed out after 200ms"


async def test_signals_are_queried_concurrently(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """The server answers only once all three queries are in flight at the same time."""
    prom.barrier = 3
    for name in "abc":
        prom.answer(name, vector("1"))
    samples = await source(prom.url, http, timeout=10).sample(
        [signal(name, query=name) for name in "abc"], NOW
    )
    assert [s.kind for s in samples.values()] == [SampleKind.VALUE] * 3


async def test_requests_query_fills_requests(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """``requests_query``'s value is the sample's traffic."""
    prom.answer("ratio", vector("0.01"))
    prom.answer("reqs", vector("1234"))
    sample = await one(prom, http, query="ratio", requests_query="reqs")
    assert sample.value == pytest.approx(0.01)
    assert sample.requests == 1234.0


async def test_failed_requests_query_makes_the_signal_an_error(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """A ratio whose traffic is unknown is not evidence: the requests failure wins."""
    prom.answer("ratio", vector("0.5"))
    prom.answer("reqs", error_envelope("execution", "boom"), 422)
    sample = await one(prom, http, query="ratio", requests_query="reqs")
    assert sample.kind is SampleKind.ERROR
    assert sample.reason.startswith("requests_query: ")


async def test_no_data_keeps_the_traffic(prom: FakePrometheus, http: httpx.AsyncClient) -> None:
    """NaN at zero requests stays no-data, and says there was no traffic."""
    prom.answer("ratio", vector("NaN"))
    prom.answer("reqs", vector("0"))
    sample = await one(prom, http, query="ratio", requests_query="reqs")
    assert sample.kind is SampleKind.NO_DATA
    assert sample.requests == 0.0


async def test_warnings_are_ignored_but_logged(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """Warnings with status:success don't change the value; they are logged at debug."""
    body = vector("2")
    body["warnings"] = ["PromQL info: metric might not be a counter"]
    prom.answer("q", body)
    with capture_logs() as logs:
        sample = await one(prom, http, query="q")
    assert sample.value == 2.0
    assert [e["log_level"] for e in logs if e["event"] == "prometheus annotations"] == ["debug"]


# --- parse_matrix / query_range ----------------------------------------------------------


def matrix(*series: list[list[object]]) -> dict[str, object]:
    result = [{"metric": {"i": str(n)}, "values": values} for n, values in enumerate(series)]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def test_parse_matrix_keeps_nan_and_inf() -> None:
    """NaN and +Inf in a recorded series are data, kept as floats."""
    points = parse_matrix(matrix([[1, "0.5"], [2, "NaN"], [3, "+Inf"]]))
    assert points[0] == (1.0, 0.5)
    assert math.isnan(points[1][1])
    assert points[2] == (3.0, math.inf)


def test_parse_matrix_accepts_bare_data_and_no_series() -> None:
    """The ``data`` object alone parses too; zero series is an empty list."""
    assert parse_matrix({"resultType": "matrix", "result": []}) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (vector("1"), "not a matrix"),
        (matrix([[1, "1"]], [[1, "2"]]), "several series (2"),
        (matrix([[2, "1"], [1, "2"]]), "timestamps not sorted"),
        (matrix([[1, "1"], [1, "2"]]), "duplicate timestamp"),
        (matrix([[1, 1.0]]), "expected [timestamp"),
        (error_envelope("bad_data", "exceeded maximum resolution"), "exceeded maximum resolution"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_parse_matrix_rejects_unusable_bodies(body: object, message: str) -> None:
    """Each kind of unusable range result is a BacktestError that says what is wrong."""
    with pytest.raises(BacktestError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_matrix(body)


@pytest.fixture
async def range_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A query_range endpoint that enforces Prometheus' 11,000-point limit."""
    seen: list[dict[str, str]] = []
    router = Router()

    @router.route("GET", "/api/v1/query_range")
    async def query_range_handler(request: Request, params: dict[str, str]) -> Response:
        args = {key: values[0] for key, values in request.query.items()}
        seen.append(args)
        start, end, step = float(args["start"]), float(args["end"]), float(args["step"])
        if (end - start) / step > 11_000:
            body = error_envelope(
                "bad_data", "exceeded maximum resolution of 11,000 points per timeseries"
            )
            return Response.json(body, 400)
        count = round((end - start) / step) + 1
        values = [[start + i * step, str(start + i * step)] for i in range(count)]
        return Response.json(matrix(values))

    async with serve(router) as server:
        yield server.url, seen


async def test_query_range_chunks_at_the_point_limit(
    range_server: tuple[str, list[dict[str, str]]], http: httpx.AsyncClient
) -> None:
    """25,001 points come back whole, in three requests the server accepts, no overlap."""
    url, seen = range_server
    points = await query_range(http, url, "up", 1000.0, 1000.0 + 25_000 * 15, 15.0, 5.0)
    assert len(points) == 25_001
    assert len(seen) == 3
    assert [p[0] for p in points] == [1000.0 + i * 15 for i in range(25_001)]
    assert all((float(a["end"]) - float(a["start"])) / 15 + 1 <= MAX_POINTS for a in seen)


async def test_query_range_failures_are_backtest_errors(http: httpx.AsyncClient) -> None:
    """No Prometheus, or a bad step, is a BacktestError that says so."""
    with pytest.raises(BacktestError, match="connection refused"):
        await query_range(http, refused_url(), "up", 0.0, 60.0, 15.0, 5.0)
    with pytest.raises(BacktestError, match="step"):
        await query_range(http, "http://unused", "up", 0.0, 60.0, 0.0, 5.0)


# --- errors over requests ---------------------------------------------------------------


def empty_vector() -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector", "result": []}}


async def test_no_error_series_with_traffic_is_zero_errors(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """Defect 4: no 5xx series while there is traffic is 0 errors, a value of 0 that
    carries its counts, not "no data"."""
    prom.answer("errs", empty_vector())
    prom.answer("reqs", vector("1200"))
    sample = await one(prom, http, errors_query="errs", requests_query="reqs")
    assert sample.kind is SampleKind.VALUE, sample
    assert sample.value == 0.0
    assert (sample.errors, sample.requests) == (0.0, 1200.0)


async def test_errors_are_divided_by_requests(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """The watchdog divides: 30 errors in 1200 requests is 2.5 %, with both counts."""
    prom.answer("errs", vector("30"))
    prom.answer("reqs", vector("1200"))
    sample = await one(prom, http, errors_query="errs", requests_query="reqs")
    assert sample.kind is SampleKind.VALUE
    assert sample.value == pytest.approx(0.025)
    assert (sample.errors, sample.requests) == (30.0, 1200.0)


@pytest.mark.parametrize("requests", [empty_vector(), vector("0")], ids=["no-series", "zero"])
async def test_no_traffic_is_blind_with_a_reason(
    prom: FakePrometheus, http: httpx.AsyncClient, requests: dict[str, object]
) -> None:
    """No requests (no series, or 0) is no evidence, whatever the errors say."""
    prom.answer("errs", empty_vector())
    prom.answer("reqs", requests)
    sample = await one(prom, http, errors_query="errs", requests_query="reqs")
    assert sample.kind is SampleKind.NO_DATA
    assert sample.reason.startswith("no traffic: requests_query"), sample.reason


async def test_failed_errors_query_is_an_error_that_keeps_the_traffic(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """An errors query that fails is not 0 errors: the sample is an error, named."""
    prom.answer("errs", error_envelope("execution", "boom"), 422)
    prom.answer("reqs", vector("1200"))
    sample = await one(prom, http, errors_query="errs", requests_query="reqs")
    assert sample.kind is SampleKind.ERROR
    assert sample.reason.startswith("errors_query: Prometheus error (execution): boom")
    assert sample.requests == 1200.0


async def test_more_errors_than_requests_reads_as_all_failing(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """increase() extrapolates each series on its own, so a total outage can count a
    few more errors than requests: that is 100 %, never blindness."""
    prom.answer("errs", vector("1203.5"))
    prom.answer("reqs", vector("1200"))
    sample = await one(prom, http, errors_query="errs", requests_query="reqs")
    assert sample.kind is SampleKind.VALUE
    assert sample.value == 1.0
    assert sample.errors == 1203.5


async def test_an_empty_ratio_query_says_how_to_count_it(
    prom: FakePrometheus, http: httpx.AsyncClient
) -> None:
    """A ratio `query` with no series stays no data (it cannot tell "no errors" from
    "no metric"), and the reason says what can."""
    prom.answer("ratio", empty_vector())
    spec = PrometheusSourceSpec(type="prometheus", url="http://unused")
    ratio = ResolvedSignal(
        "s", "prom", spec, SignalSpec(source="prom", query="ratio"), "ratio", 15.0
    )
    sample = (await source(prom.url, http).sample([ratio], NOW))["s"]
    assert sample.kind is SampleKind.NO_DATA
    assert "errors_query" in sample.reason
