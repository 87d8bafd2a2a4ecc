"""Fault matrix, metrics sources: a real loopback server misbehaves, the real source
reads it inside the live sampling loop, and the engine judges. Every row: the rule
goes blind and never fires (even when the bad answer carries a breaching number),
the source-error counter and the blind gauge move, a log line says why, and when the
fault ends the rule is back on evidence."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from tests.faults.servers import (
    AppMetrics,
    FaultyServer,
    Page,
    Prom,
    PrometheusBehaviour,
    faulty_server,
)
from tests.faults.support import (
    PROMETHEUS_RULES,
    SCRAPE_RULES,
    SOURCE,
    T0,
    SourceRig,
    log_text,
    source_rig,
)
from watchdog.clock import FakeClock
from watchdog.core.decision import DecisionKind
from watchdog.core.evaluator import State
from watchdog.metrics import Metrics
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal, load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps

FAULT_ROUNDS = 6  # 75 s of faults: past blind_after (1m)


async def run_row(
    rig: SourceRig,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    kind: SampleKind,
    reason: str,
) -> None:
    """Healthy, then the fault for ``FAULT_ROUNDS`` rounds, then healthy again."""
    for sample in await rig.rounds(2):
        assert sample.kind is SampleKind.VALUE, sample
    assert rig.state() is State.INACTIVE
    errors_before = rig.source_errors()

    with capture_logs() as logs:
        await start()
        during = await rig.rounds(FAULT_ROUNDS)
    for sample in during:
        assert sample.kind is kind, sample
        assert reason in sample.reason, sample.reason
    # Blind, never firing: no evidence is no breach.
    assert rig.state() is State.BLIND
    assert rig.decisions(DecisionKind.ROLLBACK) == []
    assert rig.decisions(DecisionKind.NOTIFY) == []
    (blind,) = rig.decisions(DecisionKind.BLIND)
    assert reason in blind.why
    assert "the watchdog is blind" in blind.why
    # The metric and the log line an operator would look for.
    assert rig.blind_gauge() == 1.0
    assert rig.source_errors() - errors_before == FAULT_ROUNDS
    text = log_text(logs)
    assert reason in text
    assert "kind=blind" in text
    if kind is SampleKind.ERROR:
        assert any(e["event"] == "source error" and e["log_level"] == "warning" for e in logs)

    await stop()
    after = await rig.rounds(2)
    assert after[-1].kind is SampleKind.VALUE
    assert rig.state() is State.INACTIVE
    assert rig.blind_gauge() == 0.0
    assert rig.decisions(DecisionKind.ROLLBACK) == []


# --- the prometheus source ---------------------------------------------------------------

PROMETHEUS_ROWS = [
    pytest.param(Prom.HANG, SampleKind.ERROR, "timed out after 300ms", id="timeout"),
    pytest.param(Prom.STATUS_500, SampleKind.ERROR, "HTTP 500", id="http-500"),
    pytest.param(Prom.NOT_JSON, SampleKind.ERROR, "response is not JSON", id="not-json"),
    pytest.param(
        Prom.ERROR_ENVELOPE,
        SampleKind.ERROR,
        "Prometheus error (execution): query processing would load too many samples",
        id="error-envelope",
    ),
    pytest.param(Prom.NAN, SampleKind.NO_DATA, "NaN", id="nan"),
    pytest.param(Prom.EMPTY, SampleKind.NO_DATA, "no series", id="empty-vector"),
    pytest.param(Prom.SEVERAL, SampleKind.ERROR, "2 series", id="several-series"),
    pytest.param(Prom.STALE, SampleKind.ERROR, "stale", id="stale-series"),
    pytest.param(Prom.HUGE, SampleKind.ERROR, "response over 1000000 bytes", id="50MB"),
    pytest.param(Prom.SLOW_LORIS, SampleKind.ERROR, "timed out after 300ms", id="slow-loris"),
]


@pytest.mark.parametrize(("mode", "kind", "reason"), PROMETHEUS_ROWS)
async def test_prometheus_fault(tmp_path: Path, mode: Prom, kind: SampleKind, reason: str) -> None:
    """A Prometheus that misbehaves (see the row id) while the app breaches: the rule
    goes blind, never fires, says why in a log line and the metrics, and recovers."""
    behaviour = PrometheusBehaviour()
    async with faulty_server(behaviour) as server:
        rules = PROMETHEUS_RULES.replace(
            "timeout: {timeout}", "timeout: {timeout}, max_bytes: 1000000"
        )
        async with source_rig(tmp_path, rules, server.url) as rig:

            async def start() -> None:
                behaviour.mode, behaviour.value = mode, 0.08  # a breach nobody may see

            async def stop() -> None:
                behaviour.mode, behaviour.value = Prom.OK, 0.01

            await run_row(rig, start, stop, kind, reason)


async def test_prometheus_connection_refused(tmp_path: Path) -> None:
    """Prometheus stops listening (connection refused) and comes back on the same
    port: blind with "connection refused", never fires, recovers."""
    async with (
        faulty_server(PrometheusBehaviour()) as server,
        source_rig(tmp_path, PROMETHEUS_RULES, server.url) as rig,
    ):

        async def start() -> None:
            server.refuse()

        await run_row(rig, start, server.accept, SampleKind.ERROR, "connection refused")


# --- the scrape source -------------------------------------------------------------------


def scrape_rules(signal: str = "errors", threshold: str = "5%") -> tuple[str, dict[str, str]]:
    return SCRAPE_RULES, {"signal": signal, "threshold": threshold}


SCRAPE_ROWS = [
    pytest.param(Page.HANG, "errors", "scrape source app: timed out after 300ms", id="timeout"),
    pytest.param(Page.STATUS_500, "errors", "scrape source app: HTTP 500", id="http-500"),
    pytest.param(
        Page.NO_INF,
        "p95",
        'histogram http_request_duration_seconds has no le="+Inf" bucket',
        id="histogram-without-inf",
    ),
    pytest.param(
        Page.DECREASING,
        "p95",
        "histogram http_request_duration_seconds: buckets decrease",
        id="decreasing-buckets",
    ),
    pytest.param(Page.HUGE, "errors", "scrape source app: response over 1000000 bytes", id="50MB"),
    pytest.param(
        Page.SLOW_LORIS, "errors", "scrape source app: timed out after 300ms", id="slow-loris"
    ),
]


@pytest.mark.parametrize(("mode", "signal", "reason"), SCRAPE_ROWS)
async def test_scrape_fault(tmp_path: Path, mode: Page, signal: str, reason: str) -> None:
    """An app /metrics page that misbehaves (see the row id) while errors breach: the
    rule goes blind, never fires, says why, and recovers when the page is fine."""
    app = AppMetrics()
    rules, fields = scrape_rules(signal, "5%" if signal == "errors" else "1s")
    async with (
        faulty_server(app) as server,
        source_rig(tmp_path, rules, server.url, **fields) as rig,
    ):

        async def start() -> None:
            app.mode, app.failed = mode, 200.0  # 17 % errors nobody may see

        async def stop() -> None:
            app.mode, app.failed = Page.OK, 5.0

        await run_row(rig, start, stop, SampleKind.ERROR, reason)


async def test_scrape_connection_refused(tmp_path: Path) -> None:
    """The app's /metrics port refuses connections, then listens again."""
    rules, fields = scrape_rules()
    async with (
        faulty_server(AppMetrics()) as server,
        source_rig(tmp_path, rules, server.url, **fields) as rig,
    ):

        async def start() -> None:
            server.refuse()

        await run_row(rig, start, server.accept, SampleKind.ERROR, "connection refused")


async def test_scrape_counter_reset(tmp_path: Path) -> None:
    """The app restarts (its counters start again from zero) with a little traffic:
    the increase is read as PromQL does (the new value is the increase), so the ratio
    is the true one after the restart, never negative and never a breach; the
    signal's gauge shows it and the next scrape is normal again."""
    app = AppMetrics()
    rules, fields = scrape_rules()
    async with (
        faulty_server(app) as server,
        source_rig(tmp_path, rules, server.url, **fields) as rig,
    ):
        for sample in await rig.rounds(3):
            assert sample.value == pytest.approx(5 / 1005)
        app.reset()
        app.ok, app.failed = 196.0, 4.0  # after the restart: 2 % errors
        (restarted,) = await rig.rounds(1)
        assert restarted.kind is SampleKind.VALUE
        assert restarted.value == pytest.approx(0.02)
        assert restarted.requests == pytest.approx(200.0)
        value = rig.metric("watchdog_signal_value", signal="errors")
        assert value == pytest.approx(0.02)
        app.ok, app.failed = 1000.0, 5.0
        (normal,) = await rig.rounds(1)
        assert normal.value == pytest.approx(5 / 1005)
        assert rig.state() is State.INACTIVE
        assert rig.decisions() == []


async def test_server_helper_refuses_for_real() -> None:
    """The rig's "connection refused" is the kernel's: a bound socket that does not
    listen (so the row tests what an operator would see)."""
    server = FaultyServer(PrometheusBehaviour())
    await server.start()
    try:
        server.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1.0)
        await server.accept()
        socket.create_connection(("127.0.0.1", server.port), timeout=1.0).close()
    finally:
        await server.close()


class RaisingSource:
    """A source with a bug: it raises (instead of answering an error sample) while
    ``broken`` is set."""

    def __init__(self) -> None:
        self.name = SOURCE
        self.broken = False

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        if self.broken:
            raise KeyError("resultType")
        return {s.name: Sample.of(now, 0.01) for s in signals}

    async def aclose(self) -> None:
        return None


async def test_a_source_that_raises_does_not_end_sampling(tmp_path: Path) -> None:
    """A source that raises (a bug, not a remote failure) gives error samples that
    name it (logged as source errors), make the rule blind, and sampling goes on:
    when it stops raising the rule is back on evidence (a dead loop would freeze the
    rule without ever going blind)."""
    source = RaisingSource()
    path = tmp_path / "rules.yaml"
    path.write_text(PROMETHEUS_RULES.format(url="http://127.0.0.1:9", timeout="1s"))
    clock = FakeClock(T0)
    async with httpx.AsyncClient() as http:
        watchdog = Watchdog(
            load_rules([path]),
            SourceDeps(http=http, clock=clock),
            Metrics(),
            source_factory=lambda name, spec, deps: source,
        )
        rig = SourceRig(watchdog, clock)
        watchdog.observers.append(rig._hook)
        await watchdog.start()
        try:
            await rig.round(first=True)

            async def start() -> None:
                source.broken = True

            async def stop() -> None:
                source.broken = False

            await run_row(rig, start, stop, SampleKind.ERROR, "source app failed: KeyError")
        finally:
            await watchdog.stop(timeout_s=1.0)
