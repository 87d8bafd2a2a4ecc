"""Fault matrix, histograms whose buckets decrease: each page is well-formed, but one
bucket's counter was reset on its own (a buggy exporter, a partial restart), so the
increases between two scrapes go down as ``le`` grows. PromQL would repair that into
a p95; the scrape source takes it as a suspect sample (an error, so the rule is
blind, with the reason). A page whose own buckets decrease is a row of
``test_sources.py`` (``decreasing-buckets``)."""

from __future__ import annotations

import httpx

from tests.faults.servers import Hit, Reply, faulty_server
from watchdog.clock import FakeClock
from watchdog.model import SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import ScrapeSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.scrape import ScrapeSource

NOW = 1_790_000_000.0


def page(fast: int, slow: int) -> bytes:
    return (
        "# TYPE latency_seconds histogram\n"
        f'latency_seconds_bucket{{le="0.1"}} {fast}\n'
        f'latency_seconds_bucket{{le="0.5"}} {slow}\n'
        f'latency_seconds_bucket{{le="+Inf"}} {slow}\n'
        f"latency_seconds_count {slow}\n"
    ).encode()


async def test_bucket_increases_that_decrease_are_a_suspect_sample() -> None:
    pages = [page(100, 200), page(50, 210)]  # le=0.1 reset alone: +50 under 0.1 s, +10 in all

    def reply(hit: Hit) -> Reply:
        return Reply(body=pages.pop(0), content_type="text/plain")

    spec = ScrapeSourceSpec(type="scrape", url="", timeout=5.0)
    signal_spec = SignalSpec(source="app", kind="quantile", metric="latency_seconds", quantile=0.95)
    async with faulty_server(reply) as server, httpx.AsyncClient() as http:
        spec = spec.model_copy(update={"url": f"{server.url}/metrics"})
        signal = ResolvedSignal("p95", "app", spec, signal_spec, "seconds", 15.0)
        source = ScrapeSource("app", spec, SourceDeps(http=http, clock=FakeClock(NOW)))
        await source.sample([signal], NOW)
        sample = (await source.sample([signal], NOW + 15))["p95"]
    assert sample.kind is SampleKind.ERROR, sample
    assert "bucket increases decrease with le; a suspect sample" in sample.reason
