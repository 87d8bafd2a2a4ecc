"""The watchdog's numbers agree with what a real Prometheus computes.

The simulated app serves on loopback; a real ``prometheus`` scrapes it every second.
Traffic with a known error ratio and latency distribution (seeded) is sent in one
burst between scrapes. Then the ``prometheus`` source (the runbook's error-ratio and
p95 queries) and the ``scrape`` source (the app's own /metrics, no Prometheus) are
compared with PromQL evaluated directly at the same instant.

Tolerances, and why:

- prometheus source vs PromQL: ``REL_EXACT`` (1e-12). Same server, same query, same
  evaluation time, and no traffic after the burst: any difference is a bug in how
  the source reads the JSON.
- scrape source vs PromQL, error ratio and p95: ``REL_FLOAT`` (1e-9). Every series
  exists at 0 before the burst and all come from one target (same scrape times), so
  ``rate()``'s extrapolation multiplies every non-zero increase by the same factor.
  That factor cancels in the ratio and in histogram_quantile's interpolation, so
  PromQL computes exactly what the scrape source computes from the raw increases;
  only float rounding differs.
- both vs the app's realised traffic: the error ratio equals errors/requests of the
  burst (``REL_FLOAT``, same cancellation); p95 must lie in the histogram bucket
  that holds the burst's true p95, since linear interpolation inside a bucket is
  all a classic histogram allows (apis.md §10.2).
- realised vs configured: the seeded draw is within ``CONFIGURED_ERROR_TOLERANCE``
  (0.02, over 5 binomial standard deviations at n=5000) of the configured 8 %.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories import ruleset
from tests.integration.conftest import RunningPrometheus, StartPrometheus
from watchdog.clock import SystemClock
from watchdog.demo.fakes.app import BUCKETS, AppState, FakeApp, LatencyModel, TrafficSummary
from watchdog.http.server import serve
from watchdog.model import SampleKind
from watchdog.rules.load import RuleSet
from watchdog.sources.base import Source, SourceDeps
from watchdog.sources.prometheus_range import query_range
from watchdog.sources.registry import build_source

pytestmark = pytest.mark.integration

ERROR_QUERY = 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
REQUESTS_QUERY = "sum(increase(http_requests_total[5m]))"
P95_QUERY = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
REL_EXACT = 1e-12
REL_FLOAT = 1e-9
CONFIGURED_ERROR_RATIO = 0.08
CONFIGURED_ERROR_TOLERANCE = 0.02
BURST = 5000

RULES = """
version: 1
sources:
  prom: {{type: prometheus, url: "{prom}", timeout: 2500ms}}  # fractional on purpose
  app: {{type: scrape, url: "{app}/metrics", timeout: 5s}}
signals:
  error_rate:
    source: prom
    query: '{error_query}'
    requests_query: '{requests_query}'
    unit: ratio
  p95_latency: {{source: prom, query: '{p95_query}', unit: seconds}}
  app_error_rate: {{source: app, kind: error_ratio, metric: http_requests_total}}
  app_p95_latency:
    source: app
    kind: quantile
    metric: http_request_duration_seconds
    quantile: 0.95
"""


@dataclass
class Scene:
    app: FakeApp
    prom: RunningPrometheus
    http: httpx.AsyncClient
    rules: RuleSet
    deps: SourceDeps

    def source(self, name: str) -> Source:
        return build_source(name, self.rules.sources[name], self.deps)

    async def wait_for_idle_scrape(self) -> None:
        """Prometheus holds the app's series at 0 (at least one scrape before traffic)."""
        await self.prom.poll_until(self.http, 'count(http_requests_total{job="app"})', _is(2))

    async def wait_for_burst_scrape(self, requests: int) -> None:
        """Prometheus has scraped the app after the burst."""
        await self.prom.poll_until(
            self.http, 'sum(http_requests_total{job="app"})', _is(float(requests))
        )


def _is(expected: float) -> Callable[[float], bool]:
    def done(value: float) -> bool:
        return value == expected

    return done


@pytest.fixture
async def scene(start_prometheus: StartPrometheus, tmp_path: Path) -> AsyncIterator[Scene]:
    state = AppState(
        error_ratio=CONFIGURED_ERROR_RATIO, latency=LatencyModel(median_s=0.12, p95_s=0.9)
    )
    app = FakeApp(state=state, seed=20260821)
    async with serve(app.router) as server, httpx.AsyncClient() as http:
        prom = await start_prometheus([f"{server.host}:{server.port}"])
        text = RULES.format(
            prom=prom.url,
            app=server.url,
            error_query=ERROR_QUERY,
            requests_query=REQUESTS_QUERY,
            p95_query=P95_QUERY,
        )
        rules = ruleset(tmp_path, text, base="")
        yield Scene(app, prom, http, rules, SourceDeps(http=http, clock=SystemClock()))


def bucket_of(value: float) -> tuple[float, float]:
    """The (lower, upper] histogram bucket that holds ``value``."""
    index = bisect_left(BUCKETS, value)
    lower = BUCKETS[index - 1] if index > 0 else 0.0
    upper = BUCKETS[index] if index < len(BUCKETS) else math.inf
    return lower, upper


def empirical_p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank


def check_realised(summary: TrafficSummary) -> None:
    assert summary.requests == BURST
    assert abs(summary.error_ratio - CONFIGURED_ERROR_RATIO) < CONFIGURED_ERROR_TOLERANCE


async def test_prometheus_source_agrees_with_promql(scene: Scene) -> None:
    """The prometheus source reports exactly PromQL's error ratio, traffic and p95,
    and those match the burst the app really served."""
    await scene.wait_for_idle_scrape()
    summary = scene.app.simulate(BURST)
    check_realised(summary)
    await scene.wait_for_burst_scrape(BURST)

    now = time.time()
    samples = await scene.source("prom").sample(
        [scene.rules.signals["error_rate"], scene.rules.signals["p95_latency"]], now
    )
    promql_ratio = await scene.prom.value(scene.http, ERROR_QUERY, now)
    promql_requests = await scene.prom.value(scene.http, REQUESTS_QUERY, now)
    promql_p95 = await scene.prom.value(scene.http, P95_QUERY, now)

    error_rate, p95 = samples["error_rate"], samples["p95_latency"]
    assert error_rate.kind is SampleKind.VALUE, error_rate
    assert p95.kind is SampleKind.VALUE, p95
    assert error_rate.value == pytest.approx(promql_ratio, rel=REL_EXACT)
    assert error_rate.requests == pytest.approx(promql_requests, rel=REL_EXACT)
    assert p95.value == pytest.approx(promql_p95, rel=REL_EXACT)

    assert error_rate.value == pytest.approx(summary.error_ratio, rel=REL_FLOAT)
    assert error_rate.requests is not None
    assert error_rate.requests >= BURST  # increase() extrapolates to the window's end
    lower, upper = bucket_of(empirical_p95(summary.latencies))
    assert lower <= p95.value <= upper

    series = 'sum(http_requests_total{job="app"})'
    points = await query_range(scene.http, scene.prom.url, series, now - 30, now, 1.0, 5.0)
    assert points[-1][1] == BURST
    assert [v for _, v in points if not math.isnan(v)] == sorted(
        v for _, v in points if not math.isnan(v)
    )


async def test_scrape_source_agrees_with_promql(scene: Scene) -> None:
    """The scrape source, reading /metrics itself before and after the burst, gets
    PromQL's error ratio and p95 to float precision."""
    pytest.importorskip("watchdog.sources.scrape")
    signals = [scene.rules.signals["app_error_rate"], scene.rules.signals["app_p95_latency"]]
    scrape = scene.source("app")
    await scene.wait_for_idle_scrape()
    first = await scrape.sample(signals, time.time())
    assert {s.kind for s in first.values()} == {SampleKind.NO_DATA}  # a rate needs two
    summary = scene.app.simulate(BURST)
    check_realised(summary)
    await scene.wait_for_burst_scrape(BURST)

    now = time.time()
    samples = await scrape.sample(signals, now)
    promql_ratio = await scene.prom.value(scene.http, ERROR_QUERY, now)
    promql_p95 = await scene.prom.value(scene.http, P95_QUERY, now)

    error_rate, p95 = samples["app_error_rate"], samples["app_p95_latency"]
    assert error_rate.kind is SampleKind.VALUE, error_rate
    assert p95.kind is SampleKind.VALUE, p95
    assert error_rate.value == pytest.approx(promql_ratio, rel=REL_FLOAT)
    assert p95.value == pytest.approx(promql_p95, rel=REL_FLOAT)
    assert error_rate.value == pytest.approx(summary.error_ratio, rel=REL_FLOAT)
    assert error_rate.requests == BURST  # the scrape source counts, it does not extrapolate
