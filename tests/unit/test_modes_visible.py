"""Dry-run and silenced are visible everywhere (issue 10, defect 7): the status JSON
(top level), the ``status`` header, ``/metrics`` gauges and the Grafana dashboard; and
``watchdog_rule_threshold`` is set by the daemon itself (defect 10: the dashboard's
threshold lines were empty)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.world import world
from watchdog.api.app import build_app
from watchdog.cli.main import main
from watchdog.http.server import serve

ROOT = Path(__file__).resolve().parents[2]
RULES = """
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical,
     min_requests: 100, rollback: [worker, frontend]}
  - {name: slow-p95, signal: p95, above: 5s, for: 5m, severity: critical, rollback: [worker],
     dry_run: true}
"""


async def _scrape_and_status(env: dict[str, str], tmp_path: Path) -> tuple[str, dict[str, Any]]:
    async with world(tmp_path, RULES, env=env) as w:
        app = build_app(
            w.runtime.watchdog,
            None,
            silences=w.runtime.silences,
            dry_run=w.runtime.settings.dry_run,
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            metrics = (await http.get("/metrics")).text
            status = (await http.get("/api/v1/status")).json()
    return metrics, status


def _value(metrics: str, series: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not exposed")


async def test_dry_run_and_silenced_in_status_json_and_metrics(tmp_path: Path) -> None:
    metrics, status = await _scrape_and_status(
        {"WATCHDOG_DRY_RUN": "1", "WATCHDOG_SILENCED": "1"}, tmp_path
    )
    assert status["dry_run"] is True
    assert status["silenced"] is True
    assert status["silences_active"] == 1
    assert status["dry_run_rules"] == ["slow-p95"]
    assert _value(metrics, "watchdog_dry_run") == 1
    assert _value(metrics, "watchdog_silenced") == 1
    assert _value(metrics, "watchdog_silences_active") == 1
    assert _value(metrics, 'watchdog_rule_dry_run{rule="slow-p95"}') == 1
    assert _value(metrics, 'watchdog_rule_dry_run{rule="error-rate"}') == 0


async def test_acting_normally_shows_zeros(tmp_path: Path) -> None:
    metrics, status = await _scrape_and_status({}, tmp_path)
    assert (status["dry_run"], status["silenced"], status["silences_active"]) == (False, False, 0)
    assert _value(metrics, "watchdog_dry_run") == 0
    assert _value(metrics, "watchdog_silenced") == 0


async def test_thresholds_are_exposed_by_the_daemon(tmp_path: Path) -> None:
    metrics, _ = await _scrape_and_status({}, tmp_path)
    series = 'watchdog_rule_threshold{comparison="above",rule="error-rate",signal="error_rate"}'
    assert _value(metrics, series) == pytest.approx(0.05)


async def test_status_header_says_dry_run_and_silenced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path, RULES, env={"WATCHDOG_DRY_RUN": "1", "WATCHDOG_SILENCED": "1"}) as w:
        app = build_app(w.runtime.watchdog, None, silences=w.runtime.silences, dry_run=True)
        async with serve(app) as server:
            code = await asyncio.to_thread(main, ["status", "--url", server.url])
    header = capsys.readouterr().out.split("RULE")[0]
    assert code == 0
    assert "DRY RUN: no mutating call is made (WATCHDOG_DRY_RUN / --dry-run)" in header
    assert "dry-run rules: slow-p95" in header
    assert "SILENCED: every action" in header


def test_the_dashboard_shows_dry_run_and_silenced() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "rollback-watchdog.json").read_text())
    panels = {p["title"]: p for p in dashboard["panels"]}
    for title, metric in (("Dry run", "watchdog_dry_run"), ("Silenced", "watchdog_silenced")):
        assert title in panels, sorted(panels)
        assert any(metric in t["expr"] for t in panels[title]["targets"])
