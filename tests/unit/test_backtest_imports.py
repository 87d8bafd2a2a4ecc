"""A backtest of saved recordings loads no HTTP client: httpx (with its command-line
extra) and tenacity cost a tenth of a second at every start, and nothing in a replay
sends a request. The fetch path and the other commands import them where used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from watchdog.backtest.recordings import matrix_body

T0 = 1_790_000_000
RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  errors: {source: prom, query: "q", unit: ratio}
targets:
  worker: {type: cloudflare-worker, script: api}
notifiers:
  slack: {type: slack}
rules:
  - {name: errors-high, signal: errors, above: 5%, for: 1m, severity: critical,
     rollback: [worker]}
"""
PROGRAM = """
import json, sys
from watchdog.cli.main import main
code = main(["backtest", "--rules", sys.argv[1], "--series", sys.argv[2], "--format", "json"])
loaded = sorted(name for name in ("httpx", "tenacity") if name in sys.modules)
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_a_backtest_with_a_rollback_imports_no_http_client(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    series = tmp_path / "series"
    series.mkdir()
    values = [0.01] * 20 + [0.2] * 40 + [0.01] * 60
    points = [(float(T0 + 15 * i), v) for i, v in enumerate(values)]
    (series / "errors.json").write_text(json.dumps(matrix_body(points)))
    deploys = {"worker": [{"version": "v1", "at": T0 - 86400}, {"version": "v2", "at": T0}]}
    (series / "deployments.json").write_text(json.dumps(deploys))
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(rules), str(series)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in lines[:-1]]
    assert any(e["event"] == "firing" for e in events)
    assert events[-1]["rollbacks"] == 1  # the replay went through the rollback path
    assert json.loads(lines[-1]) == {"code": 0, "loaded": []}


def test_python_m_watchdog_keeps_the_output_and_the_exit_code(tmp_path: Path) -> None:
    """The entry point freezes the collector before exiting: the lines and the code
    are the command's."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    series = tmp_path / "series"
    series.mkdir()
    points = [(float(T0 + 15 * i), 0.2) for i in range(20)]
    (series / "errors.json").write_text(json.dumps(matrix_body(points)))
    argv = [sys.executable, "-m", "watchdog", "backtest", "--rules", str(rules)]
    done = subprocess.run(
        [*argv, "--series", str(series), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["event"] == "summary"
    missing = subprocess.run(
        [*argv, "--series", str(tmp_path / "none")], capture_output=True, check=False
    )
    assert missing.returncode == 1
