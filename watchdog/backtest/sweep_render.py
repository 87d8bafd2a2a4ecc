"""A sweep's output: a table for people, one JSON document for machines, a heat map
(``--plot``, matplotlib as in ``plot``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from watchdog import strict_json
from watchdog.backtest.plot import FORMATS, _pyplot
from watchdog.backtest.sweep import Combination, SweepResult
from watchdog.backtest.times import rfc3339
from watchdog.errors import BacktestError
from watchdog.units import format_duration

LEGEND = (
    "* the rules file's choice; + catches every labelled incident with the fewest false episodes"
)


def _delays(combination: Combination) -> str:
    judged = combination.score
    if judged is None:
        return ""
    caught = [f"{ident} {format_duration(delay)}" for ident, delay in judged.caught.items()]
    missed = [f"{ident} missed" for ident in judged.missed]
    return ", ".join(caught + missed) or "-"


def render_text(result: SweepResult) -> Iterator[str]:
    labelled = bool(result.labels)
    yield (
        f"sweep of {result.rule}: {len(result.combinations)} combinations over "
        f"{rfc3339(result.start)} .. {rfc3339(result.end)} ({result.samples:,} samples) "
        f"in {result.elapsed:.2f} s"
    )
    if labelled:
        yield f"labels: {len(result.labels)} incidents ({result.labels_origin})"
    else:
        yield "labels: none (give --labels FILE to count caught and missed incidents)"
    heads = [axis.field for axis in result.axes] + ["episodes", "rollbacks"]
    if labelled:
        heads += ["false", "caught", "delays"]
    rows = []
    for c in result.combinations:
        row = [axis.text(v) for axis, v in zip(result.axes, c.values, strict=True)]
        row += [str(len(c.episodes)), str(c.rollbacks)]
        if c.score is not None:
            judged = len(c.score.caught) + len(c.score.missed)
            row += [str(c.score.false_episodes), f"{len(c.score.caught)}/{judged}", _delays(c)]
        mark = ("*" if c.current else " ") + ("+" if c.best else " ")
        rows.append((mark, row))
    widths = [max(len(h), *(len(r[i]) for _, r in rows)) for i, h in enumerate(heads)]
    yield "   " + "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()
    for mark, row in rows:
        yield mark + " " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
    yield LEGEND
    if labelled and not any(c.best for c in result.combinations):
        yield "no combination catches every labelled incident"


def to_json(result: SweepResult) -> dict[str, Any]:
    return {
        "rule": result.rule,
        "start": rfc3339(result.start),
        "end": rfc3339(result.end),
        "samples": result.samples,
        "elapsed_s": round(result.elapsed, 3),
        "axes": [{"field": a.field, "values": [a.text(v) for v in a.values]} for a in result.axes],
        "labels": [
            {"id": label.id, "start": rfc3339(label.start), "end": rfc3339(label.end)}
            for label in result.labels
        ],
        "combinations": [_combination(result, c) for c in result.combinations],
    }


def _combination(result: SweepResult, c: Combination) -> dict[str, Any]:
    out: dict[str, Any] = {
        "values": {a.field: a.text(v) for a, v in zip(result.axes, c.values, strict=True)},
        "raw": {a.field: v for a, v in zip(result.axes, c.values, strict=True)},
        "episodes": len(c.episodes),
        "first_firing": [rfc3339(fired) for fired, _ in c.episodes],
        "rollbacks": c.rollbacks,
        "current": c.current,
        "best": c.best,
    }
    if c.score is not None:
        out["false_episodes"] = c.score.false_episodes
        out["caught"] = {ident: round(d, 3) for ident, d in c.score.caught.items()}
        out["missed"] = list(c.score.missed)
    return out


def render_json(result: SweepResult) -> str:
    return strict_json.dumps(to_json(result))


def write_heatmap(result: SweepResult, path: Path) -> None:
    """False episodes (episodes without labels) per combination: the first axis down,
    the second across; the rules file's choice boxed, the best ones starred."""
    if path.suffix not in FORMATS:
        raise BacktestError(f"--plot {path}: use a .png or .svg file name")
    if len(result.axes) > 2:
        raise BacktestError("--plot: a heat map shows one or two swept fields")
    plt = _pyplot()
    rows_axis = result.axes[0]
    cols_axis = result.axes[1] if len(result.axes) == 2 else None
    rows = sorted({c.values[0] for c in result.combinations})
    cols = sorted({c.values[1] for c in result.combinations}) if cols_axis else [math.nan]
    labelled = bool(result.labels)
    grid = [[math.nan] * len(cols) for _ in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 0.9 * len(cols)), 1.5 + 0.5 * len(rows)))
    for c in result.combinations:
        r = rows.index(c.values[0])
        k = cols.index(c.values[1]) if cols_axis else 0
        count = c.score.false_episodes if c.score is not None else len(c.episodes)
        grid[r][k] = count
        note = str(count)
        if c.score is not None:
            note += f"\n{len(c.score.caught)}/{len(c.score.caught) + len(c.score.missed)}"
        ax.text(k, r, note + (" +" if c.best else ""), ha="center", va="center", fontsize=7)
        if c.current:
            ax.add_patch(
                plt.Rectangle((k - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=2)
            )
    image = ax.imshow(grid, cmap="YlOrRd", aspect="auto")
    fig.colorbar(image, ax=ax, label="false episodes" if labelled else "firing episodes")
    ax.set_yticks(range(len(rows)), [rows_axis.text(v) for v in rows])
    ax.set_ylabel(rows_axis.field)
    if cols_axis is not None:
        ax.set_xticks(range(len(cols)), [cols_axis.text(v) for v in cols])
        ax.set_xlabel(cols_axis.field)
    else:
        ax.set_xticks([])
    what = "false episodes (below: incidents caught)" if labelled else "firing episodes"
    ax.set_title(f"{result.rule}: {what}\nboxed: the rules file's choice; +: best", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    except OSError as exc:
        raise BacktestError(f"--plot {path}: cannot write: {exc}") from None
    finally:
        plt.close(fig)
