"""The demo's live terminal view: signals against thresholds, rule states and the
incident timeline. A TTY gets a redrawn frame; a log (CI, a pipe) gets one line per
event and a status line now and then."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from watchdog.run.daemon import Watchdog
from watchdog.units import format_value

_STATE_MARK = {"inactive": "  ok  ", "pending": "PENDING", "firing": "FIRING", "blind": "BLIND"}


@dataclass
class Timeline:
    """What happened, at seconds since the demo started."""

    started: float
    entries: list[tuple[float, str]] = field(default_factory=list)
    printer: Callable[[str], None] | None = None

    def add(self, at: float, text: str) -> None:
        self.entries.append((at - self.started, text))
        if self.printer is not None:
            self.printer(f"  +{at - self.started:6.1f}s  {text}")

    def first(self, prefix: str) -> float | None:
        return next((t for t, text in self.entries if text.startswith(prefix)), None)


def status_lines(watchdog: Watchdog) -> list[str]:
    lines = []
    ruleset = watchdog.ruleset
    for rule in ruleset.rules:
        state = watchdog.engine.states[rule.name]
        unit = ruleset.signals[rule.signal].unit
        value = "—" if math.isnan(state.value) else format_value(state.value, unit)
        op = ">" if rule.comparison == "above" else "<"
        lines.append(
            f"  {rule.name:12} {rule.signal:14} {value:>9}  {op} {rule.threshold.text:6} "
            f"for {rule.for_:g}s  [{_STATE_MARK.get(state.state.value, state.state.value)}]"
        )
    return lines


class LiveView:
    def __init__(self, title: str, timeline: Timeline, out: TextIO | None = None) -> None:
        self.title = title
        self.timeline = timeline
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        if not self.tty:
            timeline.printer = self._print

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def frame(self, now: float, watchdog: Watchdog, incidents: list[str]) -> None:
        elapsed = now - self.timeline.started
        if not self.tty:
            if int(elapsed) % 10 == 0:
                states = ", ".join(
                    f"{r.name}={watchdog.engine.states[r.name].state.value}"
                    for r in watchdog.ruleset.rules
                )
                self._print(f"  +{elapsed:6.1f}s  · {states}")
            return
        lines = [
            f"rollback-watchdog demo — {self.title}   t=+{elapsed:.0f}s",
            "",
            "signals against thresholds:",
            *status_lines(watchdog),
            "",
            f"open incidents: {', '.join(incidents) or 'none'}",
            "",
            "timeline:",
            *[f"  +{t:6.1f}s  {text}" for t, text in self.timeline.entries[-14:]],
        ]
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()
