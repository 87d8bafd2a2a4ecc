"""Benchmark: ``backtest --sweep`` of one rule over 10 x 10 combinations (threshold and
``for:``), 30 days at a 15 s step (172,800 samples), the CLI end to end.

The series is the one ``bench/backtest.py`` makes (a noisy error ratio with incidents,
spikes and gaps), with a deploy every two days; labels.json names the recording's
longest breaches as known incidents, so the caught/missed columns are exercised too.
The goal: the whole sweep in under 30 s. Also prints the CLI's peak RSS.

    .venv/bin/python bench/sweep.py [--days 30] [--grid 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backtest import CPU, STEP, T0, run_measured, write_inputs

from watchdog.backtest.series_notation import Point


def write_labels(directory: Path, points: list[Point], count: int = 5) -> int:
    """The ``count`` longest runs above 6 % as labelled incidents."""
    runs: list[tuple[int, int]] = []
    start = None
    for k, value in enumerate([*points, 0.0]):
        high = isinstance(value, float) and value > 0.06
        if high and start is None:
            start = k
        elif not high and start is not None:
            runs.append((start, k))
            start = None
    longest = sorted(runs, key=lambda r: r[1] - r[0], reverse=True)[:count]
    incidents = [
        {"id": f"incident-{i}", "start": T0 + (s - 4) * STEP, "end": T0 + (e + 4) * STEP}
        for i, (s, e) in enumerate(sorted(longest))
    ]
    (directory / "labels.json").write_text(json.dumps({"incidents": incidents}))
    return len(incidents)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--grid", type=int, default=10, help="values per field")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    length = int(args.days * 86400 / STEP)
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        data, _ = write_inputs(work, 1, 1, length, args.seed)
        labelled = write_labels(work / "series", data[0])
        top = 2 + 0.5 * (args.grid - 1)
        argv = [
            sys.executable, "-m", "watchdog", "backtest",
            "--rules", str(work / "rules.yaml"), "--series", str(work / "series"),
            "--sweep", f"r0.above=2%..{top:g}%/0.5%",
            "--sweep", f"r0.for=1m..{args.grid}m/1m",
            "--format", "json",
        ]  # fmt: skip
        elapsed, rss, out, err, code = run_measured(argv)
        if code != 0:
            print(err, file=sys.stderr)
            return 1
        doc = json.loads(out)
        combos = doc["combinations"]
        best = [c["values"] for c in combos if c["best"]]
        print(
            f"{args.days:g} days at {STEP}s ({doc['samples']:,} samples), one rule, "
            f"{len(combos)} combinations ({args.grid} x {args.grid}, plus the file's own), "
            f"{labelled} labelled incidents"
        )
        print(
            f"sweep: {elapsed:.2f} s wall (the CLI end to end; "
            f"{doc['elapsed_s']:.2f} s in the sweep)"
        )
        print(
            f"       {elapsed / len(combos) * 1000:.0f} ms a combination, "
            f"peak RSS {rss / 1024:.1f} MiB"
        )
        cpu = CPU[Path(sys.executable).name]
        print(f"       CPU time {cpu:.2f} s (a fairer figure on a busy machine)")
        print(f"best (every incident caught, fewest false episodes): {best[:4]}")
        print(f"goal (< 30 s): {'met' if elapsed < 30 else 'missed'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
