"""A rule's last hour as a small inline SVG, drawn on the server from the engine's window.

The hour (or the time since the first sample, when the window holds less) is cut into
columns; each column shows the worst evidence value in it (the highest for an ``above``
rule, the lowest for a ``below`` one), so a one-sample spike is never averaged away.
Columns that breach the threshold get a red mark; columns with samples but no evidence
(errors, no data) a grey tick at the bottom, and the line breaks there: blind time shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.model import Sample

WIDTH, HEIGHT = 240, 40
COLUMNS = 60  # 4 px each: fine enough for a glance, small enough for 100 rules a page
_PAD = 3.0


@dataclass(frozen=True)
class Column:
    x: float
    value: float | None  # the worst evidence value in the column; None: no evidence
    blind: bool  # samples came, none of them evidence (an empty column is neither)


def columns(
    samples: Sequence[Sample], end: float, span_s: float, above: bool, count: int = COLUMNS
) -> list[Column]:
    """The ``count`` columns from the first sample within ``span_s`` of ``end`` to
    ``end``: one pass to find the first, one over the samples."""
    start = end - span_s
    first = next((s.at for s in samples if start <= s.at <= end), None)
    if first is not None and first < end:
        start, span_s = first, end - first
    worst: list[float | None] = [None] * count
    seen = [False] * count
    for sample in samples:
        if not start <= sample.at <= end:
            continue
        i = min(count - 1, int((sample.at - start) / span_s * count))
        seen[i] = True
        if sample.is_evidence and not math.isnan(sample.value):
            old = worst[i]
            v = sample.value
            if old is None or (v > old if above else v < old):
                worst[i] = v
    step = WIDTH / count
    return [
        Column(round((i + 0.5) * step, 1), worst[i], seen[i] and worst[i] is None)
        for i in range(count)
    ]


def svg(cols: list[Column], threshold: float, above: bool, label: str) -> str:
    """The SVG markup (numbers and fixed class names only: nothing outside goes in it
    but ``label``, which the caller escapes)."""
    values = [c.value for c in cols if c.value is not None]
    lo = min([*values, threshold])
    hi = max([*values, threshold])
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0

    def y(v: float) -> float:
        return round(HEIGHT - _PAD - (v - lo) / (hi - lo) * (HEIGHT - 2 * _PAD), 1)

    parts = [
        f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{label}">',
        f'<line class="thr" x1="0" x2="{WIDTH}" y1="{y(threshold)}" y2="{y(threshold)}"/>',
    ]
    run: list[str] = []
    for col in [*cols, Column(0.0, None, True)]:  # the sentinel ends the last run
        if col.value is None:
            if run and col.blind:
                parts.append(f'<polyline class="val" points="{" ".join(run)}"/>')
                run = []
            continue
        run.append(f"{col.x},{y(col.value)}")
    # Breach dots and blind ticks: one path each (round caps draw the dots), not an
    # element per column: 100 rules' sparklines stay a small part of the page.
    dots = "".join(
        f"M{c.x},{y(c.value)}h0"
        for c in cols
        if c.value is not None and (c.value > threshold if above else c.value < threshold)
    )
    ticks = "".join(f"M{c.x},{HEIGHT - 4}v4" for c in cols if c.blind)
    if dots:
        parts.append(f'<path class="breach" d="{dots}"/>')
    if ticks:
        parts.append(f'<path class="blind" d="{ticks}"/>')
    parts.append("</svg>")
    return "".join(parts)
