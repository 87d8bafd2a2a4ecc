"""``backtest --plot FILE``: one panel per signal, so a person sees at a glance why a
rollback would or would not have happened.

Each panel draws the replayed values, each rule's threshold as a dashed line, the
rule's pending / firing / blind spans shaded (one band per rule, under the line) and
the decisions marked: a red triangle where it would roll back, a black cross where a
rollback was suppressed (cooldown, cap, silence, deploy), a blue dot where it would
only notify, a grey diamond where it went blind.

matplotlib is an optional extra (``pip install 'rollback-watchdog[plot]'``); it is
imported only here, when a plot is asked for.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.backtest.timeline import BacktestResult, Event
from watchdog.core.evaluator import State
from watchdog.errors import BacktestError
from watchdog.rules.load import RuleSet
from watchdog.units import format_value

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = (".png", ".svg")
SHADES = {
    State.PENDING: "#f5b041",
    State.FIRING: "#e74c3c",
    State.BLIND: "#95a5a6",
    State.INCONCLUSIVE: "#d7bde2",
}
MARKS = {
    "rollback": ("v", "#c0392b", "would roll back"),
    "suppressed": ("x", "#17202a", "rollback suppressed"),
    "notify": ("o", "#2e86c1", "notify only"),
    "blind": ("D", "#7f8c8d", "blind alert"),
}
THRESHOLD_COLOURS = ("#8e44ad", "#d35400", "#16a085", "#2c3e50", "#b7950b", "#1f618d")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise BacktestError(
            "--plot needs matplotlib: pip install 'rollback-watchdog[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def write_plot(result: BacktestResult, ruleset: RuleSet, path: Path) -> None:
    """Draw ``result`` to ``path`` (.png or .svg). ``BacktestError`` if matplotlib is
    missing, the format is unknown or the file cannot be written."""
    if path.suffix.lower() not in FORMATS:
        raise BacktestError(f"--plot {path}: give a .png or .svg file")
    signals = [name for name, samples in result.samples.items() if samples]
    if not signals:
        raise BacktestError("--plot: nothing was replayed")
    plt = _pyplot()
    import matplotlib.dates as mdates

    lanes = {name: [r for r in ruleset.rules if r.signal == name] for name in signals}
    # Per signal: a value panel, then one thin lane per rule with its state spans.
    heights: list[float] = []
    for name in signals:
        heights += [3.0, 0.32 * max(len(lanes[name]), 1)]
    figure, axes = plt.subplots(
        len(heights),
        1,
        figsize=(13, sum(heights) + 1.2),
        sharex=True,
        gridspec_kw={"height_ratios": heights, "hspace": 0.08},
        squeeze=False,
    )
    marks = _marks(result.timeline)
    for row, name in enumerate(signals):
        _panel(axes[2 * row][0], name, result, ruleset, marks)
        _lanes(axes[2 * row + 1][0], lanes[name], result)
    bottom = axes[-1][0]
    bottom.xaxis_date(tz=UTC)
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(formatter)
    bottom.set_xlabel("time (UTC)")
    start = datetime.fromtimestamp(result.summary.start, tz=UTC)
    end = datetime.fromtimestamp(result.summary.end, tz=UTC)
    figure.suptitle(
        f"Backtest {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC: "
        f"{result.summary.incidents} incidents, "
        f"{sum(result.summary.rollbacks.values())} rollbacks, "
        f"{sum(result.summary.suppressed.values())} suppressed",
        fontsize=12,
    )
    figure.subplots_adjust(left=0.12, right=0.98, top=1 - 0.6 / (sum(heights) + 1.2))
    try:
        figure.savefig(path, dpi=110)
    except OSError as exc:
        raise BacktestError(f"--plot {path}: cannot write: {exc}") from None
    finally:
        plt.close(figure)


def _marks(timeline: list[Event]) -> dict[str, list[tuple[float, str]]]:
    """Per rule: (time, kind) of each decision worth marking."""
    out: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in timeline:
        if event.event == "would_rollback":
            out[event.rule].append((event.at, "rollback"))
        elif event.event == "suppressed":
            out[event.rule].append((event.at, "suppressed"))
        elif event.event == "decision" and event.fields.get("action") in ("notify", "blind"):
            out[event.rule].append((event.at, str(event.fields["action"])))
    return out


def _when(ts: float) -> float:
    """Unix seconds → matplotlib's date number (days since its epoch, 1970-01-01)."""
    return ts / 86400.0


def _panel(
    ax: Axes,
    signal: str,
    result: BacktestResult,
    ruleset: RuleSet,
    marks: dict[str, list[tuple[float, str]]],
) -> None:
    """The values, each rule's threshold, and its decisions marked on the threshold."""
    samples = result.samples[signal]
    unit = ruleset.signals[signal].unit
    times = [_when(s.at) for s in samples]
    scale = 100.0 if unit == "ratio" else 1.0
    values = [s.value * scale if s.is_evidence else math.nan for s in samples]
    ax.plot(times, values, color="#1b2631", linewidth=0.8, zorder=3, label=signal)
    for index, rule in enumerate(r for r in ruleset.rules if r.signal == signal):
        colour = THRESHOLD_COLOURS[index % len(THRESHOLD_COLOURS)]
        y = rule.threshold.value * scale
        ax.axhline(
            y,
            color=colour,
            linestyle="--",
            linewidth=1.0,
            label=f"{rule.name}: {rule.comparison} {format_value(rule.threshold.value, unit)}",
            zorder=2,
        )
        for at, kind in marks.get(rule.name, []):
            marker, mark_colour, _ = MARKS[kind]
            ax.scatter([_when(at)], [y], marker=marker, s=80, color=mark_colour, zorder=4)
    ax.text(
        0.995,
        0.95,
        signal,
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=11,
        fontweight="bold",
    )
    ax.set_ylabel({"ratio": "%", "seconds": "seconds"}.get(unit, unit))
    ax.grid(alpha=0.25)
    handles, labels = ax.get_legend_handles_labels()
    for marker, colour, text in MARKS.values():
        handles.append(_marker(marker, colour))
        labels.append(text)
    for state, colour in SHADES.items():
        handles.append(_patch(colour, state.value))
        labels.append(f"{state.value} (lanes below)")
    ax.legend(handles, labels, loc="upper left", fontsize=7, ncol=4, framealpha=0.9)


def _lanes(ax: Axes, rules: list[Any], result: BacktestResult) -> None:
    """One lane per rule: its pending / firing / blind spans."""
    for lane, rule in enumerate(rules):
        for state, begin, end in result.spans.get(rule.name, []):
            width = max(end - begin, 1.0) / 86400.0
            ax.broken_barh(
                [(_when(begin), width)],
                (lane + 0.15, 0.7),
                color=SHADES[state],
                alpha=0.9 if state is State.FIRING else 0.7,
            )
    ax.set_ylim(0, max(len(rules), 1))
    ax.set_yticks([lane + 0.5 for lane in range(len(rules))])
    ax.set_yticklabels([rule.name for rule in rules], fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.25)
    ax.tick_params(axis="y", length=0)


def _patch(colour: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=colour, alpha=0.35, label=label)


def _marker(marker: str, colour: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], marker=marker, color=colour, linestyle="none", markersize=7)
