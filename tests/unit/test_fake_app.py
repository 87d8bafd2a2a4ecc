"""The simulated production app: traffic, metrics, health, admin purge, deploys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import InstantClock
from watchdog.demo.fakes.app import AppState, FakeApp, LatencyModel, drive
from watchdog.http.server import serve


@pytest.fixture
async def app_client() -> AsyncIterator[tuple[FakeApp, httpx.AsyncClient]]:
    app = FakeApp(state=AppState(error_ratio=0.1), admin_token="s3cret", seed=7, error_window=5000)
    async with serve(app.router) as server, httpx.AsyncClient(base_url=server.url) as client:
        yield app, client


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_simulated_traffic_lands_in_the_metrics(
    app_client: tuple[FakeApp, httpx.AsyncClient],
) -> None:
    """simulate(n) counts every request by code and observes every latency."""
    app, client = app_client
    summary = app.simulate(2000)
    assert 0.07 < summary.error_ratio < 0.13  # seeded draws around the configured 10%
    values = metric_values((await client.get("/metrics")).text)
    assert values[("http_requests_total", (("code", "500"), ("method", "GET")))] == summary.errors
    assert values[("http_requests_total", (("code", "200"), ("method", "GET")))] == (
        summary.requests - summary.errors
    )
    assert values[("http_request_duration_seconds_count", ())] == 2000
    assert values[("http_request_duration_seconds_bucket", (("le", "30.0"),))] <= 2000
    assert values[("error_rate", ())] == pytest.approx(summary.error_ratio)  # window > n


async def test_series_exist_before_any_traffic(
    app_client: tuple[FakeApp, httpx.AsyncClient],
) -> None:
    """Both code series are exported at 0 from the start, so rate() sees the first burst."""
    _, client = app_client
    values = metric_values((await client.get("/metrics")).text)
    assert values[("http_requests_total", (("code", "500"), ("method", "GET")))] == 0
    assert values[("http_requests_total", (("code", "200"), ("method", "GET")))] == 0


async def test_api_requests_answer_per_state(
    app_client: tuple[FakeApp, httpx.AsyncClient],
) -> None:
    """GET /api/... answers 200/500 per the error ratio and reports its drawn latency."""
    app, client = app_client
    app.deploy("v2", error_ratio=1.0)
    response = await client.get("/api/pitches/42")
    assert response.status_code == 500
    assert response.headers["x-app-version"] == "v2"
    assert float(response.headers["x-simulated-latency"]) > 0
    app.rollback()
    assert app.state.version == "v1"
    assert app.state.error_ratio == 0.1


async def test_health_follows_state(app_client: tuple[FakeApp, httpx.AsyncClient]) -> None:
    """/health is 200 while healthy and 503 after an unhealthy deploy."""
    app, client = app_client
    assert (await client.get("/health")).status_code == 200
    app.deploy("v3", healthy=False)
    response = await client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "version": "v3"}


async def test_cache_purge_needs_the_admin_token(
    app_client: tuple[FakeApp, httpx.AsyncClient],
) -> None:
    """DELETE /api/admin/cache: 401 without the bearer token, 200 with it."""
    app, client = app_client
    assert (await client.delete("/api/admin/cache")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.delete("/api/admin/cache", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer s3cret"}
    assert (await client.delete("/api/admin/cache", headers=right)).status_code == 200
    assert app.cache_purges == 1


def test_latency_model_hits_its_quantiles() -> None:
    """The log-normal is fitted so its median and p95 are the ones asked for."""
    model = LatencyModel(median_s=0.1, p95_s=0.8)
    assert model.quantile(0.5) == pytest.approx(0.1)
    assert model.quantile(0.95) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="median"):
        LatencyModel(median_s=1.0, p95_s=0.5)


async def test_drive_paces_requests_over_http(
    app_client: tuple[FakeApp, httpx.AsyncClient],
) -> None:
    """drive() sends rps x duration requests, paced on the given clock, and counts 5xx."""
    app, client = app_client
    clock = InstantClock()
    summary = await drive(str(client.base_url), rps=20, duration_s=2, client=client, clock=clock)
    assert summary.requests == 40
    assert len(summary.latencies) == 40
    counted = app.registry.get_sample_value("http_requests_total", {"code": "500", "method": "GET"})
    assert summary.errors == counted
    assert sum(clock.sleeps) == pytest.approx(39 / 20)
