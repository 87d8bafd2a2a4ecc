"""A reload redoes only the per-rule gauges of rules that changed (10,000 rules must
reload in under 2 s), and still gets every series right: an edited threshold shows its
new value under its new labels, a removed rule's series go, a new rule's appear."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_daemon import make

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 5m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", requests_query: "r", unit: ratio}
  p95: {source: prom, query: "p", unit: seconds}
rules:
RULE_LINES
"""

KEEP = "  - {name: keep, signal: error_rate, above: 5%, for: 5m, severity: critical}"
EDIT = "  - {name: edit, signal: error_rate, above: 3%, for: 5m, severity: critical}"
GONE = "  - {name: gone, signal: p95, above: 2s, for: 5m, severity: low}"
EDITED = "  - {name: edit, signal: p95, below: 1s, for: 5m, severity: critical, dry_run: true}"
NEW = "  - {name: new, signal: p95, above: 4s, for: 5m, severity: low}"


def rules(*lines: str) -> str:
    return RULES.replace("RULE_LINES", "\n".join(lines))


async def test_a_reload_keeps_every_rule_gauge_right(tmp_path: Path) -> None:
    watchdog, _clock, _ = make(tmp_path, lambda t: 0.01, rules(KEEP, EDIT, GONE))
    registry = watchdog.metrics.registry

    def threshold(rule: str, signal: str, comparison: str) -> float | None:
        labels = {"rule": rule, "signal": signal, "comparison": comparison}
        return registry.get_sample_value("watchdog_rule_threshold", labels)

    def dry_run(rule: str) -> float | None:
        return registry.get_sample_value("watchdog_rule_dry_run", {"rule": rule})

    assert threshold("edit", "error_rate", "above") == 0.03
    (tmp_path / "rules.yaml").write_text(rules(KEEP, EDITED, NEW))
    assert await watchdog.reload() is True
    assert threshold("keep", "error_rate", "above") == 0.05
    assert threshold("edit", "error_rate", "above") is None
    assert threshold("edit", "p95", "below") == 1.0
    assert dry_run("edit") == 1
    assert threshold("gone", "p95", "above") is None
    assert dry_run("gone") is None
    assert threshold("new", "p95", "above") == 4.0
    assert dry_run("new") == 0
    assert dry_run("keep") == 0
