"""The scrape source against a real loopback server whose ``/metrics`` page changes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from watchdog.clock import FakeClock
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import ScrapeSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.histogram import bucket_quantile
from watchdog.sources.scrape import FIRST_SCRAPE, NO_REQUESTS, ScrapeSource
from watchdog.units import Unit

T0 = 1_790_000_000.0


@dataclass
class App:
    """What the fake app serves next; tests change it between scrapes."""

    body: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    accept: list[str] = field(default_factory=list)


@dataclass
class Env:
    app: App
    url: str
    deps: SourceDeps

    def source(self, **spec: Any) -> ScrapeSource:
        return ScrapeSource("app", ScrapeSourceSpec(type="scrape", url=self.url, **spec), self.deps)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    app = App()
    router = Router()

    async def metrics(request: Request, params: dict[str, str]) -> Response:
        app.accept.append(request.headers.get("accept", ""))
        return Response.text(app.body, app.status, headers=app.headers)

    router.add("GET", "/metrics", metrics)
    async with serve(router) as server, httpx.AsyncClient() as http:
        yield Env(app, f"{server.url}/metrics", SourceDeps(http=http, clock=FakeClock(T0)))


def signal(name: str, **spec: Any) -> ResolvedSignal:
    source = ScrapeSourceSpec(type="scrape", url="http://unused")
    unit: Unit = "seconds" if spec.get("kind") == "quantile" else "ratio"
    return ResolvedSignal(name, "app", source, SignalSpec(source="app", **spec), unit, 15.0)


ERRORS = signal("errors", kind="error_ratio", metric="http_requests_total")
P95 = signal("p95", kind="quantile", metric="http_request_duration_seconds", quantile=0.95)
RPS = signal("rps", kind="rate", metric="http_requests_total")


def requests_page(counts: Mapping[tuple[str, str], float]) -> str:
    lines = ["# HELP http_requests_total Requests.", "# TYPE http_requests_total counter"]
    lines += [
        f'http_requests_total{{route="{route}",code="{code}"}} {value}'
        for (route, code), value in counts.items()
    ]
    return "\n".join(lines) + "\n"


BOUNDS = ("0.1", "0.5", "1", "5", "+Inf")


def histogram_page(series: Mapping[str, Sequence[float]], with_inf: bool = True) -> str:
    """Cumulative bucket counts per route, for le in BOUNDS (the last one is +Inf)."""
    lines = ["# TYPE http_request_duration_seconds histogram"]
    for route, counts in series.items():
        for le, count in zip(BOUNDS, counts, strict=True):
            if le != "+Inf" or with_inf:
                lines.append(
                    f'http_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {count}'
                )
        lines.append(f'http_request_duration_seconds_count{{route="{route}"}} {counts[-1]}')
        lines.append(f'http_request_duration_seconds_sum{{route="{route}"}} 1.5')
    return "\n".join(lines) + "\n"


async def scrape(env: Env, source: ScrapeSource, body: str, at: float, *signals: ResolvedSignal
                 ) -> dict[str, Sample]:  # fmt: skip
    env.app.body = body
    return await source.sample(signals or (ERRORS,), at)


# --- error_ratio -----------------------------------------------------------------------


async def test_first_scrape_is_no_data_then_ratio_of_increases(env: Env) -> None:
    """The first scrape only records; the second gives Δerrors/Δrequests with the
    requests and errors behind it (the counts), errors being the series whose code
    fully matches 5..."""
    source = env.source()
    first = await scrape(env, source, requests_page({("/", "200"): 100, ("/", "500"): 5}), T0)
    assert first["errors"] == Sample.no_data(T0, FIRST_SCRAPE)
    page = requests_page({("/", "200"): 180, ("/", "500"): 25, ("/", "5000"): 9})
    second = await scrape(env, source, page, T0 + 15)
    # 80 + 20 + 9 (a new series counts from zero) requests; "5000" is not a full match.
    assert second["errors"] == Sample.of(T0 + 15, 20 / 109, requests=109, errors=20)


async def test_counter_reset_counts_new_value_as_increase(env: Env) -> None:
    """After an app restart the counters go down; each one's new value is its increase."""
    source = env.source()
    await scrape(env, source, requests_page({("/", "200"): 1000, ("/", "500"): 10}), T0)
    after = await scrape(env, source, requests_page({("/", "200"): 30, ("/", "500"): 6}), T0 + 15)
    assert after["errors"] == Sample.of(T0 + 15, 6 / 36, requests=36, errors=6)


async def test_zero_traffic_is_no_data(env: Env) -> None:
    """No requests between two scrapes is missing evidence, not a 0% error ratio."""
    source = env.source()
    page = requests_page({("/", "200"): 100, ("/", "503"): 1})
    await scrape(env, source, page, T0)
    idle = await scrape(env, source, page, T0 + 15)
    assert idle["errors"] == Sample.no_data(T0 + 15, NO_REQUESTS)


async def test_labels_filter_and_status_regex(env: Env) -> None:
    """``labels`` keeps only matching series; ``error_status`` is a full-match regex."""
    api_only = signal(
        "api", kind="error_ratio", metric="http_requests", labels={"route": "/api"},
        error_status="4..|5..",
    )  # fmt: skip
    source = env.source()
    before = {("/api", "200"): 0, ("/api", "404"): 0, ("/", "500"): 0}
    after = {("/api", "200"): 6, ("/api", "404"): 2, ("/", "500"): 50}
    await scrape(env, source, requests_page(before), T0, api_only)
    got = await scrape(env, source, requests_page(after), T0 + 15, api_only)
    assert got["api"] == Sample.of(T0 + 15, 0.25, requests=8, errors=2)


async def test_missing_status_label_is_an_error(env: Env) -> None:
    """A status_label no series carries would hide every error: an error sample says so."""
    wrong = signal(
        "errors", kind="error_ratio", metric="http_requests_total", status_label="status"
    )
    got = await scrape(env, env.source(), requests_page({("/", "500"): 1}), T0, wrong)
    assert got["errors"].kind is SampleKind.ERROR
    assert "has the label 'status'" in got["errors"].reason


async def test_missing_family_is_no_data(env: Env) -> None:
    """A metric the page does not expose is no data, named in the reason."""
    got = await scrape(env, env.source(), "other_metric 1\n", T0, ERRORS, P95)
    assert got["errors"] == Sample.no_data(T0, "metric http_requests_total not exposed")
    assert got["p95"] == Sample.no_data(T0, "metric http_request_duration_seconds not exposed")


# --- quantile --------------------------------------------------------------------------


async def test_quantile_sums_bucket_increases_across_series(env: Env) -> None:
    """Bucket increases are summed by le over the series, then histogram_quantile;
    requests is the increase of _count."""
    source = env.source()
    before = {"/a": [10, 20, 30, 40, 40], "/b": [0, 0, 0, 0, 0]}
    after = {"/a": [20, 60, 80, 100, 110], "/b": [5, 10, 10, 25, 30]}
    first = await scrape(env, source, histogram_page(before), T0, P95)
    assert first["p95"] == Sample.no_data(T0, FIRST_SCRAPE)
    got = await scrape(env, source, histogram_page(after), T0 + 15, P95)
    deltas = [(0.1, 15.0), (0.5, 50.0), (1.0, 60.0), (5.0, 85.0), (float("inf"), 100.0)]
    assert got["p95"] == Sample.of(T0 + 15, bucket_quantile(0.95, deltas), requests=100)
    assert got["p95"].value == pytest.approx(5.0)  # rank 95 is in +Inf: the largest bound


async def test_quantile_counter_reset_and_idle(env: Env) -> None:
    """A histogram reset counts its new buckets; an idle histogram is no data."""
    source = env.source()
    await scrape(env, source, histogram_page({"/": [100, 200, 300, 400, 400]}), T0, P95)
    reset = await scrape(env, source, histogram_page({"/": [2, 4, 4, 4, 4]}), T0 + 15, P95)
    assert reset["p95"] == Sample.of(T0 + 15, bucket_quantile(0.95, [
        (0.1, 2), (0.5, 4), (1, 4), (5, 4), (float("inf"), 4)]), requests=4)  # fmt: skip
    idle = await scrape(env, source, histogram_page({"/": [2, 4, 4, 4, 4]}), T0 + 30, P95)
    assert idle["p95"] == Sample.no_data(T0 + 30, NO_REQUESTS)


async def test_histogram_without_inf_bucket_is_an_error(env: Env) -> None:
    """Without an le="+Inf" bucket no quantile is defined: an error sample, not NaN."""
    page = histogram_page({"/": [1, 2, 3, 4, 5]}, with_inf=False)
    got = await scrape(env, env.source(), page, T0, P95)
    assert got["p95"].kind is SampleKind.ERROR
    assert 'no le="+Inf" bucket for {route="/"}' in got["p95"].reason


# --- gauge and rate --------------------------------------------------------------------


async def test_gauge_needs_exactly_one_series(env: Env) -> None:
    """A gauge is read as is; several matching series is an error naming them."""
    page = 'queue_depth{q="a"} 3\nqueue_depth{q="b"} 7\n'
    one = signal("depth", kind="gauge", metric="queue_depth", labels={"q": "b"})
    many = signal("all", kind="gauge", metric="queue_depth")
    got = await scrape(env, env.source(), page, T0, one, many)
    assert got["depth"] == Sample.of(T0, 7.0)
    assert got["all"].kind is SampleKind.ERROR
    assert "2 series of queue_depth match" in got["all"].reason
    assert '{q="a"}, {q="b"}' in got["all"].reason


async def test_rate_is_increase_per_second(env: Env) -> None:
    """A rate is Δcounter/Δt between the two scrapes; zero traffic is a real 0."""
    source = env.source()
    await scrape(env, source, requests_page({("/", "200"): 100}), T0, RPS)
    got = await scrape(env, source, requests_page({("/", "200"): 400}), T0 + 30, RPS)
    assert got["rps"] == Sample.of(T0 + 30, 10.0)
    idle = await scrape(env, source, requests_page({("/", "200"): 400}), T0 + 60, RPS)
    assert idle["rps"] == Sample.of(T0 + 60, 0.0)


# --- failures --------------------------------------------------------------------------


async def test_oversized_body_is_an_error(env: Env) -> None:
    """A page over max_bytes is cut off, whether its length is declared or chunked."""
    source = env.source(max_bytes=100)
    page = requests_page({("/" + "x" * 20, str(code)): 1 for code in range(200, 210)})
    got = await scrape(env, source, page, T0)
    assert got["errors"] == Sample.error(T0, "scrape source app: response over 100 bytes")
    env.app.headers = {"content-length": str(len(page))}
    declared = await scrape(env, source, page, T0 + 15)
    assert declared["errors"] == Sample.error(T0 + 15, "scrape source app: response over 100 bytes")


async def test_http_500_is_an_error_and_keeps_previous_scrape(env: Env) -> None:
    """A 500 is an error for every signal; the next good scrape still has a previous."""
    source = env.source()
    await scrape(env, source, requests_page({("/", "200"): 10, ("/", "500"): 0}), T0)
    env.app.status = 500
    failed = await scrape(env, source, "oops", T0 + 15, ERRORS, P95)
    assert failed == {
        "errors": Sample.error(T0 + 15, "scrape source app: HTTP 500 Internal Server Error"),
        "p95": Sample.error(T0 + 15, "scrape source app: HTTP 500 Internal Server Error"),
    }
    env.app.status = 200
    got = await scrape(env, source, requests_page({("/", "200"): 28, ("/", "500"): 2}), T0 + 30)
    assert got["errors"] == Sample.of(T0 + 30, 0.1, requests=20, errors=2)


async def test_parse_error_is_an_error_with_line_number(env: Env) -> None:
    """A malformed line of a wanted family makes an error sample naming the line."""
    page = "# TYPE http_requests_total counter\nhttp_requests_total{code=500} 1\n"
    got = await scrape(env, env.source(), page, T0)
    assert got["errors"].kind is SampleKind.ERROR
    assert got["errors"].reason.startswith("scrape source app: line 2, column 26: label 'code'")


async def test_refused_connection_is_an_error_without_the_url(env: Env) -> None:
    """A refused connection says so and names the source, never the URL or its secrets."""
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:s3cr3t@127.0.0.1:{port}/metrics?token=abc123"
    source = ScrapeSource("app", ScrapeSourceSpec(type="scrape", url=url), env.deps)
    got = await source.sample([ERRORS], T0)
    assert got["errors"] == Sample.error(T0, "scrape source app: connection refused")


async def test_asks_for_the_classic_text_format(env: Env) -> None:
    """The request's Accept header prefers text/plain version 0.0.4 (not OpenMetrics)."""
    await scrape(env, env.source(), requests_page({("/", "200"): 1}), T0)
    assert env.app.accept == ["text/plain;version=0.0.4;q=1,*/*;q=0.1"]


async def test_no_signals_does_not_fetch(env: Env) -> None:
    """Asked for nothing, the source does not scrape at all."""
    assert await env.source().sample([], T0) == {}
    assert env.app.accept == []


# --- slow_ratio (latency regression rules) ---------------------------------------------

SLOW = signal("slow", kind="slow_ratio", metric="http_request_duration_seconds", slower_than=0.5)


async def test_slow_ratio_counts_requests_above_a_bucket_bound(env: Env) -> None:
    """Summed bucket increases: requests above le="0.5" are the errors, all requests
    (the +Inf bucket) the requests: the counts a regression rule weighs."""
    source = env.source()
    before = {"/a": [10, 20, 30, 40, 40], "/b": [0, 0, 0, 0, 0]}
    after = {"/a": [20, 60, 80, 100, 110], "/b": [5, 10, 10, 25, 30]}
    await scrape(env, source, histogram_page(before), T0, SLOW)
    got = await scrape(env, source, histogram_page(after), T0 + 15, SLOW)
    # +Inf rose by 70 + 30 = 100; le=0.5 by 40 + 10 = 50: 50 slower than 500ms.
    assert got["slow"] == Sample.of(T0 + 15, 0.5, requests=100, errors=50)
    idle = await scrape(env, source, histogram_page(after), T0 + 30, SLOW)
    assert idle["slow"] == Sample.no_data(T0 + 30, NO_REQUESTS)


async def test_slow_ratio_needs_a_bucket_at_its_bound(env: Env) -> None:
    """Between two bounds a count would be a guess: an error sample naming the bounds."""
    off = signal("off", kind="slow_ratio", metric="http_request_duration_seconds", slower_than=0.3)
    source = env.source()
    await scrape(env, source, histogram_page({"/": [1, 2, 3, 4, 5]}), T0, off)
    got = await scrape(env, source, histogram_page({"/": [2, 4, 6, 8, 10]}), T0 + 15, off)
    assert got["off"].kind is SampleKind.ERROR
    assert "no bucket bound at 0.3s (the bounds: 0.1, 0.5, 1, 5)" in got["off"].reason
