"""The demo's live view (issue 14): on a terminal a ``rich`` Live display that fits 80x24
and is redrawn in place (nothing piles up in the scrollback); into a pipe or a file,
plain lines with no colour and no escape code."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from rich.cells import cell_len
from rich.console import Console, Group

from tests.helpers import T0
from watchdog.clock import FakeClock
from watchdog.demo.view import LiveView, Timeline, frame_lines
from watchdog.metrics import Metrics
from watchdog.model import Sample
from watchdog.rules.load import load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def rules_yaml(count: int) -> str:
    rules = "\n".join(
        f"  - {{name: a-rather-long-rule-name-{i}, signal: error_rate_of_the_checkout, "
        f"above: 5%, for: 1m, severity: low}}"
        for i in range(count)
    )
    return (
        "version: 1\n"
        "sources:\n  prom: {type: prometheus, url: 'http://127.0.0.1:9'}\n"
        "signals:\n  error_rate_of_the_checkout: {source: prom, query: e, unit: ratio}\n"
        f"rules:\n{rules}\n"
    )


@pytest.fixture
async def watchdog(tmp_path: Path) -> Watchdog:
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(30))
    async with httpx.AsyncClient() as http:
        found = Watchdog(load_rules([path]), SourceDeps(http=http, clock=FakeClock(T0)), Metrics())
    for step in range(3):  # some pending, with values
        found.observe("error_rate_of_the_checkout", Sample.of(T0 + 15 * step, 0.2), "prom")
    return found


def busy_timeline() -> Timeline:
    timeline = Timeline(T0)
    for i in range(60):
        timeline.add(T0 + i, f"event {i}: " + "a very long line of what happened " * 6)
    return timeline


def visible(console_output: str) -> list[str]:
    return ANSI.sub("", console_output).split("\n")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (80, 12), (120, 40)])
def test_a_frame_fits_the_terminal(watchdog: Watchdog, width: int, height: int) -> None:
    """Thirty rules and sixty long timeline lines still fit: at most height-1 lines (the
    last stays for the cursor), none wider than the terminal, the newest events shown."""
    console = Console(
        file=io.StringIO(), force_terminal=True, width=width, height=height, color_system="256"
    )
    lines = frame_lines("bad-deploy: " + "x" * 200, 12.0, watchdog, ["i1"], busy_timeline(), height)
    console.begin_capture()
    console.print(Group(*lines))
    shown = [line for line in visible(console.end_capture()) if line]
    assert len(shown) <= height - 1
    assert max(cell_len(line) for line in shown) <= width
    # 30 rules fit in 40 lines; fewer lines show the first ones and how many are not.
    assert any("more rules" in line for line in shown) == (height < 40)
    assert "event 59" in shown[-1]  # the newest event is on screen


def test_the_live_display_redraws_in_place(watchdog: Watchdog) -> None:
    """On a terminal (80x24) each frame is drawn over the last one, by moving the cursor
    up: no screen clearing, no alternate screen, so the scrollback keeps only one frame.
    After ``stop()`` the last frame stays on the screen."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, height=24, color_system="256")
    timeline = busy_timeline()
    view = LiveView("bad-deploy", timeline, console=console)
    assert view.tty
    for second in range(5):
        view.frame(T0 + 60 + second, watchdog, ["inc-1 (verifying)"])
    view.stop()
    text = out.getvalue()
    assert "\x1b[2J" not in text  # the old view cleared the screen on every frame
    assert "\x1b[?1049h" not in text  # no alternate screen either
    # Four redraws over a frame of 23 lines: the cursor goes back up 22 lines each time.
    assert text.count("\x1b[1A") == 4 * 22
    last = visible(text.rsplit("\x1b[2K", 1)[1])  # written after the last line erased
    assert len([line for line in last if line]) <= 23
    assert max(cell_len(line) for line in last) <= 80
    assert any("t=+64s" in line for line in last)


def test_not_a_terminal_gets_plain_lines(
    watchdog: Watchdog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into a pipe: one line per timeline event and a status line every ten seconds,
    without colour or any escape code (even with colour styles in the frame)."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    timeline = Timeline(T0)
    view = LiveView("bad-deploy", timeline, out=out)
    assert not view.tty
    for second in range(21):
        if second == 7:
            timeline.add(T0 + second, "rollback worker: ok")
        view.frame(T0 + second, watchdog, [])
    view.stop()
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert "  +   7.0s  rollback worker: ok" in lines
    assert len([line for line in lines if "·" in line]) == 3  # at +0, +10 and +20 s
