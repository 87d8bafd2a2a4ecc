"""Defect 4: the shipped error-ratio signal measures 0 % on healthy traffic.

A real ``prometheus`` scrapes an app that has served only 2xx so far: its 5xx series
does not exist yet, as in any real app before its first error. The shipped rules
files (pointed at this Prometheus) must read that as 0 errors over real traffic, not
as "no data" (which raises "watchdog is blind" every healthy stretch). Once 5xx
appear, the ratio is what PromQL says errors over requests are.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningPrometheus, StartPrometheus
from watchdog.cli.main import main
from watchdog.clock import SystemClock
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import SampleKind
from watchdog.rules.load import load_rules
from watchdog.sources.base import SourceDeps
from watchdog.sources.registry import build_source

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "rules/example.yaml": "http://prometheus:9090",
    "deploy/kubernetes/rules/production.yaml": "http://prometheus-operated.monitoring.svc:9090",
}


@dataclass
class CountingApp:
    """/metrics with a request counter that grows on every scrape; 5xx only once
    ``failing`` (the series appears then, as client libraries create it)."""

    ok: int = 0
    errors: int = 0
    failing: bool = False
    router: Router = field(default_factory=Router)

    def __post_init__(self) -> None:
        self.router.add("GET", "/metrics", self.metrics)

    async def metrics(self, request: Request, params: dict[str, str]) -> Response:
        self.ok += 50
        lines = [
            "# TYPE http_requests_total counter",
            f'http_requests_total{{code="200"}} {self.ok}',
        ]
        if self.failing:
            self.errors += 5
            lines.append(f'http_requests_total{{code="503"}} {self.errors}')
        return Response.text("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


@dataclass
class Scene:
    app: CountingApp
    prom: RunningPrometheus
    http: httpx.AsyncClient


@pytest.fixture
async def scene(start_prometheus: StartPrometheus) -> AsyncIterator[Scene]:
    app = CountingApp()
    async with serve(app.router) as server, httpx.AsyncClient() as http:
        prom = await start_prometheus([f"{server.host}:{server.port}"])
        yield Scene(app, prom, http)


def _positive(value: float) -> bool:
    return value > 0


@pytest.mark.parametrize("shipped", list(SHIPPED), ids=["example", "kubernetes"])
async def test_shipped_error_rate_is_zero_on_healthy_traffic(
    scene: Scene, tmp_path: Path, shipped: str
) -> None:
    text = (ROOT / shipped).read_text().replace(SHIPPED[shipped], scene.prom.url)
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    rules = load_rules([path])
    signal = rules.signals["error_rate"]
    prom = build_source(signal.source_name, signal.source, SourceDeps(scene.http, SystemClock()))
    await scene.prom.poll_until(scene.http, "sum(increase(http_requests_total[1m]))", _positive)

    healthy = (await prom.sample([signal], time.time()))["error_rate"]
    assert healthy.kind is SampleKind.VALUE, healthy
    assert healthy.value == 0.0
    assert healthy.requests is not None
    assert healthy.requests > 0
    assert healthy.errors == 0.0

    scene.app.failing = True
    errors_query = 'sum(increase(http_requests_total{code=~"5.."}[1m]))'
    await scene.prom.poll_until(scene.http, errors_query, _positive)
    now = time.time()
    failing = (await prom.sample([signal], now))["error_rate"]
    errors = await scene.prom.value(scene.http, errors_query, now)
    requests = await scene.prom.value(scene.http, "sum(increase(http_requests_total[1m]))", now)
    assert failing.kind is SampleKind.VALUE, failing
    assert (failing.errors, failing.requests) == (errors, requests)
    assert failing.value == pytest.approx(errors / requests, rel=1e-12)


async def test_record_and_backtest_of_a_healthy_stretch(
    scene: Scene, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`record` from a real Prometheus over a stretch without a single 5xx: the errors
    file has no series and record says it reads as 0 errors; the p95 query (this app
    has no histogram) has none and record says the rules on it would be blind. The
    backtest of those files measures 0 % (inactive the whole time, never blind) and
    notes both."""
    rules = tmp_path / "rules.yaml"
    example = (ROOT / "rules/example.yaml").read_text()
    rules.write_text(example.replace(SHIPPED["rules/example.yaml"], scene.prom.url))
    # Eleven seconds of traffic that Prometheus can count (a scrape a second).
    settled = "count_over_time(sum(increase(http_requests_total[1m]))[15s:1s])"
    await scene.prom.poll_until(scene.http, settled, _at_least(13), polls=600)
    end = int(time.time()) - 1
    window = ["--from", str(end - 10), "--to", str(end), "--step", "1s"]
    out = tmp_path / "rec"
    argv = ["record", "--rules", str(rules), "--prometheus", "", *window, "--out", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    said = capsys.readouterr()
    assert f"wrote {out / 'error_rate.requests.json'} (11 of 11 steps)" in said.out
    assert (
        f"wrote {out / 'error_rate.errors.json'}: no series: no errors, read as 0 errors "
        "wherever there was traffic (as live)"
    ) in said.out
    assert (
        f"wrote {out / 'p95_latency.json'}: no series: no data, so slow-p95, "
        "slow-p95-warning would be blind throughout (as live)"
    ) in said.out
    assert "cannot fetch health.up" in said.err

    argv = ["backtest", "--rules", str(rules), "--series", str(out), "--format", "json"]
    assert await asyncio.to_thread(main, argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_rule = {line["rule"]: line for line in lines if line["event"] == "rule_summary"}
    assert by_rule["error-rate"]["time_in_state"] == {
        "inactive": 10.0,
        "pending": 0,
        "firing": 0,
        "blind": 0,
        "inconclusive": 0,
    }
    assert by_rule["slow-p95"]["time_in_state"]["blind"] == 10.0
    notes = lines[-1]["notes"]
    assert any("error_rate.errors.json has no series" in note for note in notes), notes
    assert any("p95_latency.json has no series" in note for note in notes), notes


def _at_least(count: float) -> Callable[[float], bool]:
    def done(value: float) -> bool:
        return value >= count

    return done
