"""Benchmark: backtest 30 days at a 15 s step (172,800 points a series) for 20 rules,
ours against ``promtool test rules`` on the same series and equivalent rules, in one
run, with identical firing times, wall time and peak memory (RSS) of both.

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
them; 20 = one series per rule, the most parsing per rule). Ours takes the columnar
replay (the ``fast`` extra); ``--step-path`` also times the sample-by-sample replay
(``backtest(columnar=False)``, in-process) on the same files and checks that its
timeline is the same. Peak RSS is each process's own (``wait4``).

The watchdog package is byte-compiled first, as ``pip install`` does: a checkout run
with ``PYTHONDONTWRITEBYTECODE`` (as here) would otherwise compile its hundred
modules at every start, about 0.2 s that an installed copy never pays (nor promtool,
a binary). ``--no-compile`` skips that and times the cold start.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
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


CPU: dict[str, float] = {}  # CPU seconds (user + system) of the last run of each program


def run_measured(argv: list[str], cwd: Path | None = None) -> tuple[float, int, str, str, int]:
    """Wall time, peak RSS (KiB, the process's own), stdout, stderr, exit code; its CPU
    time goes to ``CPU`` under the program's name."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        CPU[Path(argv[0]).name] = usage.ru_utime + usage.ru_stime
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            elapsed,
            usage.ru_maxrss,
            out.read().decode(),
            err.read().decode(),
            process.returncode,
        )


def compile_package() -> Path:
    """Byte-compile the ``watchdog`` package that ``python -m watchdog`` imports here
    (same interpreter, directory and environment); its directory."""
    found = subprocess.run(
        [sys.executable, "-c", "import watchdog; print(watchdog.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    package = Path(found.stdout.strip()).parent
    if not compileall.compile_dir(package, quiet=1):
        sys.exit(f"cannot byte-compile {package}")
    return package


def run_ours(directory: Path) -> tuple[float, int, str, dict[str, list[tuple[int, int]]]]:
    """Wall time and peak RSS of the CLI, its output, and each rule's firing intervals
    (evaluation indexes)."""
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
    elapsed, rss, stdout, stderr, code = run_measured(argv)
    if code != 0:
        sys.exit(f"our backtest failed:\n{stderr}")
    intervals: dict[str, list[tuple[int, int]]] = defaultdict(list)
    opened: dict[str, int] = {}
    last_index = 0
    for line in stdout.splitlines():
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
    summary = json.loads(stdout.splitlines()[-1])
    end = (_unix(summary["end"]) - T0) // STEP
    for rule, start in opened.items():
        intervals[rule].append((start, end))
    return elapsed, rss, stdout, intervals


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


def run_promtool(promtool: str, path: Path) -> tuple[float, int, str, int]:
    """Wall time, peak RSS (KiB), output and exit code of ``promtool test rules``."""
    elapsed, rss, out, err, code = run_measured([promtool, "test", "rules", path.name], path.parent)
    return elapsed, rss, out + err, code


def step_path(directory: Path, expected: str) -> float:
    """The sample-by-sample replay of the same files, in-process; its JSON lines must
    be ours."""
    from watchdog import logs
    from watchdog.backtest.recordings import load_recordings, read_matrix_file
    from watchdog.backtest.render import render_json
    from watchdog.backtest.run import run_backtest
    from watchdog.backtest.times import load_deployments
    from watchdog.rules.load import load_rules

    logs.configure("console", "error", cache=False)
    started = time.perf_counter()
    ruleset = load_rules([directory / "rules.yaml"])
    recordings, _ = load_recordings(directory / "series", ruleset, read_matrix_file)
    deployments = load_deployments(directory / "series" / "deployments.json")
    result = run_backtest(ruleset, recordings, deployments=deployments, columnar=False)
    lines = list(render_json(result))
    elapsed = time.perf_counter() - started
    if lines != expected.splitlines():
        sys.exit("the step path's timeline differs from the columnar one")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=4)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the generated files here")
    parser.add_argument(
        "--step-path", action="store_true", help="also time the sample-by-sample replay"
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="do not byte-compile the package first"
    )
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
        if args.no_compile:
            print("bytecode: not compiled first (each start compiles what it has no cache of)")
        else:
            print(f"bytecode: {compile_package()} byte-compiled first (as pip install does)")
        ours, our_rss, stdout, intervals = run_ours(work)
        fired = sum(len(v) for v in intervals.values())
        firing_evals = sum(e - s + 1 for v in intervals.values() for s, e in v)
        print(
            f"ours:     {ours:8.2f} s  peak RSS {our_rss / 1024:7.1f} MiB  "
            f"({fired} firing intervals, {firing_evals:,} evaluations)"
        )
        path, checks = write_promtool(work, data, specs, intervals)
        theirs, their_rss, output, code = run_promtool(promtool, path)
        print(
            f"promtool: {theirs:8.2f} s  peak RSS {their_rss / 1024:7.1f} MiB  "
            f"(checked {checks} count_over_time assertions)"
        )
        if code != 0:
            print("FIRING TIMES DIFFER: promtool test rules failed", file=sys.stderr)
            print(output[-4000:], file=sys.stderr)
            return 1
        print("identical firing times: promtool passed every assertion")
        ours_cpu, their_cpu = CPU[Path(sys.executable).name], CPU[Path(promtool).name]
        print(
            f"CPU time: ours {ours_cpu:.2f} s, promtool {their_cpu:.2f} s "
            f"({their_cpu / ours_cpu:.1f}x; a fairer figure on a busy machine)"
        )
        print(
            f"ratio:    {theirs / ours:8.1f}x faster than promtool (goal >= 50x: "
            f"{'met' if theirs / ours >= 50 else 'missed'}); peak RSS "
            f"{our_rss / their_rss:.2f}x promtool's (goal < 1: "
            f"{'met' if our_rss < their_rss else 'missed'})"
        )
        if args.step_path:
            slow = step_path(work, stdout)
            print(f"step path: {slow:7.2f} s in-process, same timeline ({slow / ours:.1f}x ours)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
