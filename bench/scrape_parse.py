"""Benchmark: pick a rule set's families out of a 100,000-line ``/metrics`` page.

Ours (``watchdog.sources.expfmt.parse_families``, selective, regex-driven) against
``prometheus_client.parser.text_string_to_metric_families`` (which has to parse
every line; we filter its families afterwards), in the same run, on the same text.
Both must give the same samples for the wanted families.

    .venv/bin/python bench/scrape_parse.py [--lines 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from watchdog.sources.expfmt import parse_families

# What a rule set reads: an error-ratio counter, a latency histogram, a gauge.
WANTED = ("http_requests_total", "http_request_duration_seconds", "error_rate")
# prometheus_client drops ``_total`` from a counter family's name.
CLIENT_FAMILY = {
    "http_requests": "http_requests_total",
    "http_request_duration_seconds": "http_request_duration_seconds",
    "error_rate": "error_rate",
}

BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30")
METHODS = ("GET", "POST", "PUT", "DELETE")
CODES = ("200", "201", "204", "304", "400", "401", "403", "404", "429", "500", "502", "503")
ROUTES = tuple(
    f"/api/v{v}/{noun}{suffix}"
    for v in (1, 2)
    for noun in ("users", "orders", "items", "carts", "sessions", "search", "reports", "files")
    for suffix in ("", "/{id}", "/{id}/history")
)

Key = tuple[str, tuple[tuple[str, str], ...], str, float | None]


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


def _histogram(
    out: list[str],
    name: str,
    series: list[list[tuple[str, str]]],
    rng: random.Random,
    help_text: str,
) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for labels in series:
        cumulative = 0
        for le in BUCKETS:
            cumulative += rng.randrange(0, 5000)
            out.append(f"{name}_bucket{_labels([*labels, ('le', le)])} {cumulative}")
        cumulative += rng.randrange(0, 50)
        out.append(f"{name}_bucket{_labels([*labels, ('le', '+Inf')])} {cumulative}")
        out.append(f"{name}_sum{_labels(labels)} {cumulative * rng.uniform(0.01, 0.4):.6f}")
        out.append(f"{name}_count{_labels(labels)} {cumulative}")


def generate(lines: int, seed: int = 42) -> str:
    """A realistic exposition of about ``lines`` lines: the wanted families are a
    tenth of it, the rest is other histograms, counters and gauges."""
    rng = random.Random(seed)
    out: list[str] = []
    http_series = [
        [("method", m), ("route", r), ("status", s)]
        for m in METHODS
        for r in ROUTES
        for s in ("2xx", "4xx", "5xx")
    ][: max(1, lines // 15 // 15)]
    _histogram(
        out, "http_request_duration_seconds", http_series, rng, "Time spent serving HTTP requests."
    )
    out += [
        "# HELP http_requests_total HTTP requests by route and status code.",
        "# TYPE http_requests_total counter",
    ]
    for m in METHODS:
        for r in ROUTES:
            for code in rng.sample(CODES, 6):
                out.append(
                    f"http_requests_total{_labels([('method', m), ('route', r), ('code', code)])} "
                    f"{rng.randrange(0, 10**7)}"
                )
    out += [
        "# HELP error_rate Share of failed requests over the last minute.",
        "# TYPE error_rate gauge",
        'error_rate{service="api"} 0.0125',
        'error_rate{service="web"} NaN',
        'error_rate{service="batch"} +Inf',
    ]

    family = 0
    while len(out) < lines:
        family += 1
        kind = family % 3
        name = f"app_subsystem_{family}"
        if kind == 0:
            series = [
                [("shard", str(s)), ("op", op), ("peer", f"db-{p}")]
                for s in range(8)
                for op in ("read", "write", "scan")
                for p in range(4)
            ]
            _histogram(out, f"{name}_duration_seconds", series, rng, "Operation latency.")
        elif kind == 1:
            out += [f"# HELP {name}_ops_total Operations.", f"# TYPE {name}_ops_total counter"]
            for s in range(40):
                for code in ("ok", "error", "timeout", "cancelled"):
                    out.append(
                        f"{name}_ops_total{_labels([('shard', str(s)), ('result', code)])} "
                        f"{rng.randrange(0, 10**9)}"
                    )
        else:
            out += [f"# HELP {name}_queue_depth Items waiting.", f"# TYPE {name}_queue_depth gauge"]
            for s in range(120):
                out.append(f"{name}_queue_depth{_labels([('queue', f'q{s}')])} {rng.random():.4f}")
    return "\n".join(out[:lines]) + "\n"


def _key(name: str, labels: dict[str, str], value: float, timestamp: float | None) -> Key:
    shown = "NaN" if math.isnan(value) else repr(float(value))
    return (name, tuple(sorted(labels.items())), shown, timestamp)


def ours(text: str) -> dict[str, list[Key]]:
    found = parse_families(text, WANTED)
    return {
        f: sorted(_key(s.name, s.labels, s.value, s.timestamp) for s in found[f]) for f in WANTED
    }


def client_select(text: str) -> dict[str, list[Any]]:
    """prometheus_client parses every family; keep the wanted ones."""
    found: dict[str, list[Any]] = {f: [] for f in WANTED}
    for metric in text_string_to_metric_families(text):
        family = CLIENT_FAMILY.get(metric.name)
        if family is not None:
            found[family] += metric.samples
    return found


def theirs(text: str) -> dict[str, list[Key]]:
    found = client_select(text)
    return {
        f: sorted(_key(s.name, s.labels, s.value, s.timestamp) for s in samples)
        for f, samples in found.items()
    }


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    text = generate(args.lines)
    ours_result, theirs_result = ours(text), theirs(text)
    if ours_result != theirs_result:
        for family in WANTED:
            if ours_result[family] != theirs_result[family]:
                print(
                    f"MISMATCH in {family}: ours {len(ours_result[family])} samples, "
                    f"prometheus_client {len(theirs_result[family])}"
                )
        return 1
    wanted_lines = sum(len(v) for v in ours_result.values())
    print(
        f"exposition: {text.count(chr(10)):,} lines, {len(text) / 1e6:.1f} MB; "
        f"wanted families {', '.join(WANTED)}: {wanted_lines:,} samples (identical in both)"
    )

    ours_s = best_of(args.repeat, lambda: parse_families(text, WANTED))
    theirs_s = best_of(args.repeat, lambda: client_select(text))
    for label, seconds, note in (
        ("watchdog.sources.expfmt.parse_families", ours_s, ""),
        ("prometheus_client text_string_to_metric_families", theirs_s, ", then filtered"),
    ):
        print(f"{label + ':':<51}{seconds * 1000:9.1f} ms (best of {args.repeat}{note})")
    ratio = theirs_s / ours_s
    print(f"ratio: {ratio:.1f}x faster (goal >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
    return 0 if ratio >= 10 else 2


if __name__ == "__main__":
    sys.exit(main())
