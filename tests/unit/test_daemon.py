"""The daemon's sampling loops, reloads and HTTP face on a virtual clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from tests.factories import T0
from watchdog.api.app import build_app
from watchdog.clock import FakeClock
from watchdog.core.evaluator import State
from watchdog.metrics import Metrics
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal, load_rules
from watchdog.rules.model import SourceSpec
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import Source, SourceDeps

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 5m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", requests_query: "r", unit: ratio}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, min_requests: 100,
     severity: critical}
"""

Curve = Callable[[float], float | None]


class CurveSource:
    """A source whose value is a function of (virtual) time; None: the source fails."""

    def __init__(self, name: str, curve: Curve) -> None:
        self.name = name
        self.curve = curve
        self.calls: list[float] = []

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        self.calls.append(now)
        value = self.curve(now - T0)
        if value is None:
            return {s.name: Sample.error(now, "connection refused") for s in signals}
        return {s.name: Sample.of(now, value, 1000.0) for s in signals}

    async def aclose(self) -> None:
        return None


def make(
    tmp_path: Path, curve: Curve, text: str = RULES
) -> tuple[Watchdog, FakeClock, list[CurveSource]]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    clock = FakeClock(T0)
    built: list[CurveSource] = []

    def factory(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
        source = CurveSource(name, curve)
        built.append(source)
        return source

    deps = SourceDeps(http=httpx.AsyncClient(), clock=clock)
    watchdog = Watchdog(load_rules([path]), deps, Metrics(), [str(path)], source_factory=factory)
    return watchdog, clock, built


async def test_hours_of_sampling_in_virtual_time(tmp_path: Path) -> None:
    """Four hours at a 15 s interval: one sample per interval, a breach from the
    second hour fires exactly 5 minutes after it began."""
    watchdog, clock, sources = make(tmp_path, lambda t: 0.08 if t >= 3600 else 0.01)
    await watchdog.start()
    await clock.advance(4 * 3600)
    await watchdog.stop()
    (source,) = sources
    assert len(source.calls) == 4 * 3600 / 15 + 1
    assert all(b - a == 15 for a, b in zip(source.calls, source.calls[1:], strict=False))
    (decision,) = watchdog.decisions
    assert decision.decided_at == T0 + 3600 + 300
    assert watchdog.engine.states["error-rate"].state is State.FIRING


async def test_source_outage_is_blind_and_counted(tmp_path: Path) -> None:
    """A failing source: blind, one 'watchdog is blind' decision, errors counted."""
    watchdog, clock, _ = make(tmp_path, lambda t: None)
    await watchdog.start()
    await clock.advance(600)
    await watchdog.stop()
    assert [d.kind.value for d in watchdog.decisions] == ["blind"]
    registry = watchdog.metrics.registry
    assert (
        registry.get_sample_value(
            "watchdog_source_errors_total", {"source": "prom", "kind": "error"}
        )
        == 41
    )
    assert registry.get_sample_value("watchdog_rule_blind", {"rule": "error-rate"}) == 1
    assert (
        registry.get_sample_value("watchdog_rule_state", {"rule": "error-rate", "state": "blind"})
        == 1
    )
    assert math.isnan(
        registry.get_sample_value("watchdog_signal_value", {"signal": "error_rate"}) or 0.0
    )


async def test_reload_with_a_bad_file_keeps_the_old_rules(tmp_path: Path) -> None:
    """A broken rules file on reload: old rules stay, the failure is logged and counted."""
    watchdog, clock, _ = make(tmp_path, lambda t: 0.01)
    await watchdog.start()
    await clock.advance(60)
    (tmp_path / "rules.yaml").write_text("version: 1\nrules:\n  - {name: x, severity: nope}\n")
    assert await watchdog.reload() is False
    assert [r.name for r in watchdog.ruleset.rules] == ["error-rate"]
    assert watchdog.last_reload_error is not None
    assert "rules[0].signal: missing required key" in watchdog.last_reload_error
    registry = watchdog.metrics.registry
    assert registry.get_sample_value("watchdog_rules_reloads_total", {"result": "failure"}) == 1
    assert registry.get_sample_value("watchdog_rules_last_reload_successful") == 0
    await clock.advance(60)  # still sampling with the old rules
    assert watchdog.engine.states["error-rate"].state is State.INACTIVE
    await watchdog.stop()


async def test_reload_with_a_good_file_swaps_rules_and_keeps_sources(tmp_path: Path) -> None:
    """A good reload swaps in the new rules; an unchanged source is not rebuilt."""
    watchdog, clock, sources = make(tmp_path, lambda t: 0.03)
    await watchdog.start()
    await clock.advance(60)
    (tmp_path / "rules.yaml").write_text(RULES.replace("above: 5%", "above: 2%"))
    assert await watchdog.reload() is True
    await clock.advance(400)
    await watchdog.stop()
    assert len(sources) == 1
    assert watchdog.engine.states["error-rate"].state is State.FIRING
    assert (
        watchdog.metrics.registry.get_sample_value(
            "watchdog_rules_reloads_total", {"result": "success"}
        )
        == 1
    )


async def test_http_endpoints(tmp_path: Path) -> None:
    """/metrics, /healthz, /readyz (ready once sources answered) and /api/v1/status."""
    watchdog, clock, _ = make(tmp_path, lambda t: 0.01)
    app = build_app(watchdog, None)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    # Loopback without a token: the Host must name this machine (no DNS rebinding).
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        assert (await client.get("/healthz")).status_code == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert "prom" in not_ready.text
        await watchdog.start()
        await clock.advance(30)
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        for name in (
            "watchdog_build_info",
            "watchdog_signal_value",
            "watchdog_rule_state",
            "watchdog_evaluation_duration_seconds",
            "watchdog_rules_loaded",
        ):
            assert name in metrics
        status = (await client.get("/api/v1/status")).json()
        assert status["rules"][0]["rule"] == "error-rate"
        assert status["rules"][0]["state"] == "inactive"
        assert status["rules"][0]["value_text"] == "1%"
    await watchdog.stop()


@pytest.mark.parametrize(
    ("client", "headers", "status"),
    [
        (("127.0.0.1", 1), {}, 200),
        (("10.1.2.3", 1), {}, 403),
    ],
)
async def test_control_api_without_token_is_loopback_only(
    tmp_path: Path, client: tuple[str, int], headers: dict[str, str], status: int
) -> None:
    """Without WATCHDOG_API_TOKEN the control API answers loopback clients only."""
    watchdog, _, _ = make(tmp_path, lambda t: 0.01)
    transport = httpx.ASGITransport(app=build_app(watchdog, None), client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.get("/api/v1/status", headers=headers)).status_code == status
        assert (await http.get("/metrics")).status_code == 200
