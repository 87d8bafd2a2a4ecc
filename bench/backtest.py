"""Benchmark: backtest 30 days at a 15 s step (172,800 points a series) for 20 rules,
ours against ``promtool test rules`` on the same series and equivalent rules, in one
run, with identical firing times.

Ours is the CLI end to end (``rollback-watchdog backtest --series DIR --format json``:
read the query_range files, replay through the live engine and incident manager,
print the timeline). promtool gets the same series in expanding notation (our gaps as
``stale``) and one alerting rule per rule (``s_i > threshold``, same ``for:``). The
promtool test file asserts, for every firing interval our backtest printed, that
``count_over_time(ALERTS{alertstate="firing"})`` over that interval counts every
evaluation in it, and that the whole 30 days count no more: promtool passes only if
it fired at exactly our evaluations.

    .venv/bin/python bench/backtest.py [--signals 4] [--rules 20] [--days 30]

``--signals`` is how many recorded series the 20 rules watch (rules are spread over
them; 20 = one series per rule, the most parsing per rule).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watchdog.backtest.recordings import matrix_body
from watchdog.backtest.series_notation import MISSING, STALE, Point, compact

STEP = 15
T0 = 1_790_000_000
FORS = ("1m", "2m", "5m", "10m")
SEVERITIES = ("critical", "high", "medium", "low")


def series(rng: random.Random, length: int) -> list[Point]:
    """An error ratio: a noisy baseline held in short runs, incidents of 2-30 minutes,
    spikes of a few samples, and now and then a few missing samples."""
    out: list[Point] = []
    while len(out) < length:
        roll = rng.random()
        if roll < 0.002:
            out += [rng.choice((0.06, 0.08, 0.12, 0.2))] * rng.randint(8, 120)
        elif roll < 0.01:
            out += [round(rng.uniform(0.03, 0.09), 3)] * rng.randint(1, 6)
        elif roll < 0.012:
            out += [MISSING] * rng.randint(1, 30)
        else:
            out += [round(rng.uniform(0.002, 0.015), 3)] * rng.randint(1, 40)
    return out[:length]


def write_inputs(
    directory: Path, signals: int, rules: int, length: int, seed: int
) -> tuple[list[list[Point]], list[dict[str, str | float]]]:
    rng = random.Random(seed)
    data = [series(rng, length) for _ in range(signals)]
    recordings = directory / "series"
    recordings.mkdir()
    for index, points in enumerate(data):
        recorded = [
            (float(T0 + k * STEP), value)
            for k, value in enumerate(points)
            if isinstance(value, float)
        ]
        (recordings / f"s{index}.json").write_text(json.dumps(matrix_body(recorded)))
    specs: list[dict[str, str | float]] = []
    for j in range(rules):
        specs.append(
            {
                "name": f"r{j}",
                "signal": f"s{j % signals}",
                "threshold": round(0.03 + 0.01 * (j // signals % 5), 3),
                "for": FORS[j % len(FORS)],
                "severity": SEVERITIES[j % len(SEVERITIES)],
            }
        )
    signal_lines = "\n".join(
        f"  s{i}: {{source: prom, query: q{i}, unit: ratio}}" for i in range(signals)
    )
    rule_lines = "\n".join(
        f"  - {{name: {s['name']}, signal: {s['signal']}, above: {s['threshold']}, "
        f"for: {s['for']}, severity: {s['severity']}, rollback: [worker]}}"
        for s in specs
    )
    (directory / "rules.yaml").write_text(
        "version: 1\n"
        "sources:\n  prom: {type: prometheus, url: 'http://127.0.0.1:9'}\n"
        "targets:\n  worker: {type: cloudflare-worker, script: api}\n"
        "notifiers:\n  slack: {type: slack}\n"
        f"signals:\n{signal_lines}\nrules:\n{rule_lines}\n"
    )
    # A deploy every two days, so deploy correlation lets some rollbacks through.
    deploys = [
        {"version": f"v{k}", "at": T0 + k * 2 * 86400 - 3600} for k in range(length // 11520 + 1)
    ]
    (recordings / "deployments.json").write_text(json.dumps({"worker": deploys}))
    return data, specs


def run_ours(directory: Path) -> tuple[float, dict[str, list[tuple[int, int]]]]:
    """Wall time of the CLI, and each rule's firing intervals (evaluation indexes)."""
    argv = [
        sys.executable,
        "-m",
        "watchdog",
        "backtest",
        "--rules",
        str(directory / "rules.yaml"),
        "--series",
        str(directory / "series"),
        "--format",
        "json",
    ]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"our backtest failed:\n{done.stderr}")
    intervals: dict[str, list[tuple[int, int]]] = defaultdict(list)
    opened: dict[str, int] = {}
    last_index = 0
    for line in done.stdout.splitlines():
        event = json.loads(line)
        if event["event"] == "summary":
            continue
        if "T" not in event["time"]:
            continue
        index = (_unix(event["time"]) - T0) // STEP
        last_index = max(last_index, index)
        rule = event["rule"]
        if event["event"] == "firing":
            opened[rule] = index
        elif event.get("from") == "firing" and rule in opened:
            intervals[rule].append((opened.pop(rule), index - 1))
    summary = json.loads(done.stdout.splitlines()[-1])
    end = (_unix(summary["end"]) - T0) // STEP
    for rule, start in opened.items():
        intervals[rule].append((start, end))
    return elapsed, intervals


def _unix(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp())


def write_promtool(
    directory: Path,
    data: list[list[Point]],
    specs: list[dict[str, str | float]],
    intervals: dict[str, list[tuple[int, int]]],
) -> tuple[Path, int]:
    groups = [
        {
            "name": "bench",
            "interval": f"{STEP}s",
            "rules": [
                {"alert": s["name"], "expr": f"{s['signal']} > {s['threshold']}", "for": s["for"]}
                for s in specs
            ],
        }
    ]
    (directory / "promtool_rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    last = len(data[0]) - 1
    tests = []
    checks = 0
    for spec in specs:
        name = str(spec["name"])
        selector = f'ALERTS{{alertname="{name}",alertstate="firing"}}'
        labels = f'{{alertname="{name}", alertstate="firing"}}'
        total = 0
        for start, end in intervals.get(name, []):
            width_ms = (end - start) * STEP * 1000 + STEP * 500
            tests.append(
                {
                    "expr": f"count_over_time({selector}[{width_ms}ms])",
                    "eval_time": f"{end * STEP}s",
                    "exp_samples": [{"labels": labels, "value": end - start + 1}],
                }
            )
            total += end - start + 1
            checks += 1
        whole = f"count_over_time({selector}[{(last + 1) * STEP}s])"
        expected = [{"labels": labels, "value": total}] if total else []
        tests.append({"expr": whole, "eval_time": f"{last * STEP}s", "exp_samples": expected})
        checks += 1
    input_series = [
        {"series": f"s{i}", "values": compact([STALE if p is MISSING else p for p in points])}
        for i, points in enumerate(data)
    ]
    test = {
        "rule_files": ["promtool_rules.yml"],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {"interval": f"{STEP}s", "input_series": input_series, "promql_expr_test": tests}
        ],
    }
    path = directory / "promtool_test.yml"
    path.write_text(yaml.safe_dump(test, width=10_000_000))
    return path, checks


def run_promtool(promtool: str, path: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=4)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the generated files here")
    args = parser.parse_args()
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not found (apt-get install prometheus)", file=sys.stderr)
        return 1
    length = int(args.days * 86400 / STEP)
    work = Path(tempfile.mkdtemp(prefix="bench-backtest-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        data, specs = write_inputs(work, args.signals, args.rules, length, args.seed)
        print(
            f"{args.days:g} days at {STEP}s: {length:,} points x {args.signals} series, "
            f"{args.rules} rules"
        )
        ours, intervals = run_ours(work)
        fired = sum(len(v) for v in intervals.values())
        firing_evals = sum(e - s + 1 for v in intervals.values() for s, e in v)
        print(f"ours:     {ours:8.2f} s  ({fired} firing intervals, {firing_evals:,} evaluations)")
        path, checks = write_promtool(work, data, specs, intervals)
        theirs, done = run_promtool(promtool, path)
        print(f"promtool: {theirs:8.2f} s  (checked {checks} count_over_time assertions)")
        if done.returncode != 0:
            print("FIRING TIMES DIFFER: promtool test rules failed", file=sys.stderr)
            print((done.stdout + done.stderr)[-4000:], file=sys.stderr)
            return 1
        print("identical firing times: promtool passed every assertion")
        print(f"ratio:    {theirs / ours:8.1f}x faster than promtool")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
