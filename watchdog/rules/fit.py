"""Does a rule suit its signal? The threshold's unit and range, the traffic behind
``min_requests``, both counts for the counted rule kinds (confidence, regression, burn),
counts per version for canary rules (and slow counts for a latency canary)."""

from __future__ import annotations

import re

from watchdog.rules.fields import Threshold
from watchdog.rules.ruleset import ResolvedSignal
from watchdog.units import Unit, threshold_problem


def counts_errors(signal: ResolvedSignal) -> bool:
    """Whether samples of ``signal`` carry both counts (for the counted rule kinds)."""
    spec = signal.spec
    if signal.source.type == "prometheus":
        return spec.errors_query is not None and spec.requests_query is not None
    if signal.source.type == "scrape":
        return spec.kind in ("error_ratio", "slow_ratio")
    if signal.source.type in ("cloudflare", "cloudflare-tail"):
        return spec.field == "error_rate"
    return False


def counts_versions(signal: ResolvedSignal) -> bool:
    """Whether samples of ``signal`` carry counts per Worker version (canary rules)."""
    source = signal.source
    if source.type in ("flow", "cloudflare-tail"):
        return signal.spec.field == "versions"
    return (
        source.type == "cloudflare"
        and source.mode == "versions"
        and signal.spec.field == "versions"
    )


def counts_slow(signal: ResolvedSignal) -> bool:
    """Whether the source of ``signal`` can count a version's requests over a wall-time
    bound (a canary's ``slower_than``): the telemetry query API filters on
    ``$workers.wallTimeMs``, a Tail Worker sends each invocation's ``wallTime``;
    GraphQL has quantiles only, a flow one run per version."""
    source = signal.source
    if source.type == "cloudflare-tail":
        return signal.spec.field == "versions"
    return (
        source.type == "cloudflare"
        and source.mode == "versions"
        and source.api == "telemetry"
        and signal.spec.field == "versions"
    )


_RANGE = re.compile(r"\[((?:\d+(?:ms|[smhdwy]))+)(?::[^\]]*)?\]")
_PROMQL_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def overlapping_range(signal: ResolvedSignal) -> str | None:
    """Why a counted prometheus signal's samples overlap, or None. A window (or a
    test) adds up its samples' counts: with ``increase(...[5m])`` sampled every 15 s
    each request is counted twenty times, and the interval twenty times too sure."""
    spec = signal.spec
    for query in (spec.errors_query, spec.requests_query):
        for match in _RANGE.finditer(query or ""):
            seconds = sum(
                float(n) * _PROMQL_UNITS[u]
                for n, u in re.findall(r"(\d+)(ms|[smhdwy])", match.group(1))
            )
            if seconds > signal.interval * 1.01:
                return (
                    f"its query's range [{match.group(1)}] is longer than its interval "
                    f"({signal.interval:g}s): each sample counts requests the previous one "
                    "counted, which makes the counted rules overconfident; make the range "
                    "the interval (like [1m] with interval: 1m)"
                )
    return None


def reports_traffic(signal: ResolvedSignal) -> bool:
    """Whether samples of ``signal`` carry a request count (for ``min_requests``)."""
    spec = signal.spec
    if signal.source.type == "prometheus":
        return spec.requests_query is not None
    if signal.source.type == "scrape":
        return spec.kind in ("error_ratio", "quantile", "slow_ratio")
    if signal.source.type in ("cloudflare", "cloudflare-tail"):
        return spec.field in ("error_rate", "requests")
    return False


def threshold_fits(comparison: str, threshold: Threshold, signal: ResolvedSignal) -> str | None:
    if not units_fit(threshold.unit, signal.unit):
        return (
            f"threshold {threshold.text!r} is a {threshold.unit} but signal {signal.name!r} "
            f"is in {signal.unit}"
        )
    return threshold_problem(
        comparison, threshold.value, threshold.unit, threshold.text, signal.unit
    )


def units_fit(threshold: Unit, signal: Unit) -> bool:
    # A bare number fits any signal (0.05 for a ratio, 5 for seconds); units must agree.
    return threshold == "number" or threshold == signal
