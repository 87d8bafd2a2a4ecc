"""The demo's live terminal view: signals against thresholds, rule states and the
incident timeline.

A terminal gets a ``rich`` Live display redrawn in place (the cursor moves back up over
the last frame, so nothing piles up in the scrollback), cut to the terminal's size: an
80x24 terminal shows every frame whole. A log (CI, a pipe, a file) gets plain lines, one
per event and a status line now and then, with no colour and no escape code."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from watchdog.run.daemon import Watchdog
from watchdog.units import format_value

_STATE_MARK = {"inactive": "  ok  ", "pending": "PENDING", "firing": "FIRING", "blind": "BLIND"}
_STATE_STYLE = {"pending": "yellow", "firing": "bold red", "blind": "magenta"}


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
    return [line for line, _ in _rule_lines(watchdog)]


def _rule_lines(watchdog: Watchdog) -> list[tuple[str, str]]:
    """Each rule's line and the state it is in."""
    lines = []
    ruleset = watchdog.ruleset
    for rule in ruleset.rules:
        state = watchdog.engine.states[rule.name]
        unit = ruleset.signals[rule.signal].unit
        value = "—" if math.isnan(state.value) else format_value(state.value, unit)
        op = ">" if rule.comparison == "above" else "<"
        mark = _STATE_MARK.get(state.state.value, state.state.value)
        lines.append(
            (
                f"  {rule.name:12} {rule.signal:14} {value:>9}  {op} {rule.threshold.text:6} "
                f"for {rule.for_:g}s  [{mark}]",
                state.state.value,
            )
        )
    return lines


def _line(text: str, style: str = "") -> Text:
    """One screen line: never wrapped (a wrapped line would push the frame past the
    terminal's height), cut with an ellipsis at the width."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def frame_lines(
    title: str,
    elapsed: float,
    watchdog: Watchdog,
    incidents: list[str],
    timeline: Timeline,
    height: int,
) -> list[Text]:
    """The frame, at most ``height - 1`` lines (the terminal's last line stays for the
    cursor, or the terminal would scroll): rules first, then as much of the timeline's
    end as fits."""
    budget = max(height - 1, MIN_HEIGHT)
    rules = [_line(text, _STATE_STYLE.get(state, "")) for text, state in _rule_lines(watchdog)]
    room_for_rules = budget - FRAME_LINES - MIN_TIMELINE
    if len(rules) > room_for_rules:
        hidden = len(rules) - room_for_rules + 1
        rules = [*rules[: room_for_rules - 1], _line(f"  … and {hidden} more rules")]
    body = [
        _line(f"rollback-watchdog demo — {title}   t=+{elapsed:.0f}s", "bold"),
        _line(""),
        _line("signals against thresholds:"),
        *rules,
        _line(""),
        _line(f"open incidents: {', '.join(incidents) or 'none'}"),
        _line(""),
        _line("timeline:"),
    ]
    room = budget - len(body)
    recent = timeline.entries[-room:] if room > 0 else []
    return body + [_line(f"  +{t:6.1f}s  {text}") for t, text in recent]


FRAME_LINES = 7  # the title, the headings and the blank lines between them
MIN_TIMELINE = 2  # the timeline's last entries always show, however many rules
MIN_HEIGHT = FRAME_LINES + MIN_TIMELINE + 2  # a rule and the "… more" line


class LiveView:
    """The demo's view; ``stop()`` ends the live display before the summary prints."""

    def __init__(
        self,
        title: str,
        timeline: Timeline,
        out: TextIO | None = None,
        console: Console | None = None,
    ) -> None:
        self.title = title
        self.timeline = timeline
        self.out = out or sys.stdout
        self.console = console or Console(file=self.out, highlight=False)
        self.tty = self.console.is_terminal
        self._live: Live | None = None
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
        lines = frame_lines(
            self.title, elapsed, watchdog, incidents, self.timeline, self.console.size.height
        )
        shown = Group(*lines)
        if self._live is None:
            # Redrawn on each frame only (no refresh thread); what else prints meanwhile
            # (a logged error) goes above the display instead of through it.
            self._live = Live(
                shown,
                console=self.console,
                auto_refresh=False,
                vertical_overflow="crop",
            )
            self._live.start()  # draws the first frame
        else:
            self._live.update(shown, refresh=True)

    def stop(self) -> None:
        """End the live display, leaving its last frame on the screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None
