"""The simulated production app: what the watchdog watches in tests and the demo.

``FakeApp.router`` is an ASGI app with:

- ``GET /api/<anything>`` (one or two path segments): 500 with probability
  ``state.error_ratio``, else 200; each request draws a latency from
  ``state.latency`` (seeded RNG);
- ``GET /metrics``: Prometheus text from the app's OWN ``CollectorRegistry``:
  ``http_requests_total{code,method}``, ``http_request_duration_seconds`` (buckets
  up to 30 s, so a 5 s p95 threshold sits well below the largest finite bucket,
  apis.md §10.2) and ``error_rate`` (5xx share of the last ``error_window`` API
  requests, the gauge the runbook greps for);
- ``GET /health``: 200, or 503 while ``state.healthy`` is false;
- ``DELETE /api/admin/cache``: needs ``Authorization: Bearer <admin_token>``.

Latency is **recorded, not served**: a request's drawn latency goes into the
histogram and the ``x-simulated-latency`` header, and the handler answers at once,
so tests stay fast and the histogram holds exactly the drawn distribution. Pass
``sleep=`` (e.g. ``asyncio.sleep``) to really wait, for a demo a probe should feel.
Only ``/api`` traffic is counted; ``/health``, ``/metrics`` and the admin endpoint
are not part of the simulated load.

``state`` is switchable at run time: ``deploy("v2", error_ratio=0.2)`` ships a bad
deploy, ``rollback()`` restores the previous deployment's behaviour.
"""

from __future__ import annotations

import hmac
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from watchdog.clock import Clock, SystemClock
from watchdog.http.server import HTTPError, Request, Response, Router

BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    15.0,
    30.0,
)
_Z95 = NormalDist().inv_cdf(0.95)


@dataclass(frozen=True)
class LatencyModel:
    """Log-normal latencies with a given median and p95 (equal: every request takes it)."""

    median_s: float = 0.05
    p95_s: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.median_s <= self.p95_s:
            raise ValueError(f"need 0 < median <= p95, got {self.median_s} and {self.p95_s}")

    @property
    def sigma(self) -> float:
        return (math.log(self.p95_s) - math.log(self.median_s)) / _Z95

    def draw(self, rng: random.Random) -> float:
        return rng.lognormvariate(math.log(self.median_s), self.sigma)

    def quantile(self, q: float) -> float:
        """The distribution's true ``q`` quantile, for comparing with measurements."""
        return math.exp(math.log(self.median_s) + self.sigma * NormalDist().inv_cdf(q))


@dataclass(frozen=True)
class AppState:
    """How the app behaves now; swapped whole, so a handler never sees half a change."""

    version: str = "v1"
    error_ratio: float = 0.0
    latency: LatencyModel = field(default_factory=LatencyModel)
    healthy: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_ratio <= 1.0:
            raise ValueError(f"error_ratio must be within [0, 1], got {self.error_ratio}")


@dataclass
class TrafficSummary:
    """What a batch of simulated requests did."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else math.nan


class FakeApp:
    """The app, its metrics and its switchable state."""

    def __init__(
        self,
        *,
        state: AppState | None = None,
        admin_token: str = "admin-token",  # noqa: S107 (a fake's test credential)
        seed: int = 1,
        error_window: int = 1000,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.state = state or AppState()
        self.history: list[AppState] = [self.state]
        self.admin_token = admin_token
        self.cache_purges = 0
        self.rng = random.Random(seed)
        self._sleep = sleep
        self._recent: deque[bool] = deque(maxlen=error_window)
        self.registry = CollectorRegistry()
        self.requests_total = Counter(
            "http_requests",
            "API requests by status code and method.",
            ["code", "method"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "API request latency in seconds.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.error_rate = Gauge(
            "error_rate",
            f"Share of 5xx among the last {error_window} API requests.",
            registry=self.registry,
        )
        # Create both series at 0 before any traffic: a counter series that first
        # appears with its final value has no increase for rate() to see.
        for code in ("200", "500"):
            self.requests_total.labels(code=code, method="GET")
        self.router = Router()
        self._routes()

    # --- state -----------------------------------------------------------------------

    def deploy(
        self,
        version: str,
        *,
        error_ratio: float | None = None,
        latency: LatencyModel | None = None,
        healthy: bool = True,
    ) -> AppState:
        """Ship ``version``; unspecified behaviour carries over from the current state."""
        self.state = AppState(
            version=version,
            error_ratio=self.state.error_ratio if error_ratio is None else error_ratio,
            latency=latency or self.state.latency,
            healthy=healthy,
        )
        self.history.append(self.state)
        return self.state

    def rollback(self) -> AppState:
        """Go back to the deployment before the current one (as a new deployment)."""
        if len(self.history) < 2:
            raise ValueError("nothing to roll back to: only one deployment so far")
        self.state = self.history[-2]
        self.history.append(self.state)
        return self.state

    # --- traffic ---------------------------------------------------------------------

    def handle(self, method: str = "GET") -> tuple[int, float]:
        """One API request: draw its outcome, record its metrics, return (status, latency)."""
        state = self.state
        failed = self.rng.random() < state.error_ratio
        latency = state.latency.draw(self.rng)
        status = 500 if failed else 200
        self.requests_total.labels(code=str(status), method=method).inc()
        self.duration.observe(latency)
        self._recent.append(failed)
        self.error_rate.set(sum(self._recent) / len(self._recent))
        return status, latency

    def simulate(self, n_requests: int) -> TrafficSummary:
        """``n_requests`` API requests in-process, synchronously (no event-loop turns,
        so a scrape sees all of them or none)."""
        summary = TrafficSummary()
        for _ in range(n_requests):
            status, latency = self.handle()
            summary.requests += 1
            summary.errors += status >= 500
            summary.latencies.append(latency)
        return summary

    # --- HTTP ------------------------------------------------------------------------

    def _routes(self) -> None:
        router = self.router

        @router.route("GET", "/metrics")
        async def metrics(request: Request, params: dict[str, str]) -> Response:
            body = generate_latest(self.registry)
            return Response(200, body, {"content-type": CONTENT_TYPE_LATEST})

        @router.route("GET", "/health")
        async def health(request: Request, params: dict[str, str]) -> Response:
            state = self.state
            status = "ok" if state.healthy else "unhealthy"
            return Response.json(
                {"status": status, "version": state.version}, 200 if state.healthy else 503
            )

        @router.route("DELETE", "/api/admin/cache")
        async def purge(request: Request, params: dict[str, str]) -> Response:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.admin_token}".encode()):
                raise HTTPError(401, "missing or wrong admin bearer token")
            self.cache_purges += 1
            return Response.json({"success": True, "purges": self.cache_purges})

        async def api(request: Request, params: dict[str, str]) -> Response:
            status, latency = self.handle(request.method)
            if self._sleep is not None:
                await self._sleep(latency)
            body = {"ok": status < 500, "version": self.state.version}
            headers = {"x-simulated-latency": f"{latency:.6f}", "x-app-version": self.state.version}
            return Response.json(body, status, headers)

        router.add("GET", "/api/{a}", api)
        router.add("GET", "/api/{a}/{b}", api)


async def drive(
    app_url: str,
    rps: float,
    duration_s: float,
    *,
    path: str = "/api/items",
    client: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
) -> TrafficSummary:
    """Send ``rps`` requests per second for ``duration_s`` over HTTP (paced on ``clock``).
    The outcome of each is whatever the app's state says at that moment."""
    if rps <= 0 or duration_s < 0:
        raise ValueError(f"need rps > 0 and duration >= 0, got {rps} and {duration_s}")
    clock = clock or SystemClock()
    owned = client is None
    http = client or httpx.AsyncClient(timeout=10.0)
    summary = TrafficSummary()
    started = clock.monotonic()
    try:
        for index in range(round(rps * duration_s)):
            delay = started + index / rps - clock.monotonic()
            if delay > 0:
                await clock.sleep(delay)
            response = await http.get(app_url.rstrip("/") + path)
            summary.requests += 1
            summary.errors += response.status_code >= 500
            latency = response.headers.get("x-simulated-latency")
            if latency is not None:
                summary.latencies.append(float(latency))
    finally:
        if owned:
            await http.aclose()
    return summary
