"""``status --watch`` (issue 14): a refresh every N seconds, the screen cleared only on a
terminal, plain appended blocks otherwise, Ctrl-C is a clean exit 0. Time is injected:
the sleeps are recorded, never slept."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest

from tests.helpers import T0
from watchdog.api.app import build_app
from watchdog.cli.main import main
from watchdog.cli.watch import CLEAR, watch
from watchdog.clock import SystemClock
from watchdog.errors import WatchdogError
from watchdog.http.server import serve
from watchdog.metrics import Metrics
from watchdog.rules.load import load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps
from watchdog.units import iso

RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", unit: ratio}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: low}
"""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Sleeps:
    """The injected sleep: records each interval and moves the injected time on; a
    Ctrl-C arrives at the ``interrupt_at``-th sleep when asked."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.slept: list[float] = []
        self.now = float(T0)
        self.interrupt_at = interrupt_at

    def __call__(self, seconds: float) -> None:
        if self.interrupt_at is not None and len(self.slept) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.slept.append(seconds)
        self.now += seconds


def frames(count: int = 3) -> list[list[str]]:
    return [[f"frame {i}"] for i in range(count)]


def test_not_a_terminal_gets_appended_blocks_without_escapes() -> None:
    out, sleeps, shown = io.StringIO(), Sleeps(), iter(frames())
    code = watch(
        lambda: next(shown),
        title="t",
        interval=2.5,
        out=out,
        now=lambda: sleeps.now,
        sleep=sleeps,
        count=3,
    )
    text = out.getvalue()
    assert code == 0
    assert sleeps.slept == [2.5, 2.5]  # between refreshes, never before the first
    assert "\x1b" not in text
    assert text.count("Every 2.5s: t") == 3
    assert text.index("frame 0") < text.index("frame 1") < text.index("frame 2")
    # Each block carries its own time, from the injected clock.
    assert [iso(T0), iso(T0 + 2.5), iso(T0 + 5)] == [
        line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("Every")
    ]
    assert "\n\nEvery 2.5s" in text  # a blank line between appended blocks


def test_a_terminal_is_cleared_before_each_refresh() -> None:
    out, sleeps, shown = Terminal(), Sleeps(), iter(frames())
    assert watch(lambda: next(shown), title="t", interval=1, out=out, sleep=sleeps, count=3) == 0
    blocks = out.getvalue().split(CLEAR)
    assert blocks[0] == ""
    assert len(blocks) == 4
    assert [b.splitlines()[2] for b in blocks[1:]] == ["frame 0", "frame 1", "frame 2"]


@pytest.mark.parametrize("out", [io.StringIO(), Terminal()])
def test_ctrl_c_ends_the_watch_with_exit_0(out: io.StringIO) -> None:
    sleeps, shown = Sleeps(interrupt_at=2), iter(frames(5))
    assert watch(lambda: next(shown), title="t", interval=1, out=out, sleep=sleeps) == 0
    assert out.getvalue().count("Every 1s: t") == 2  # refreshed twice, then Ctrl-C
    assert out.getvalue().endswith("\n")


def test_a_failed_refresh_is_shown_and_the_watch_goes_on() -> None:
    calls: list[int] = []

    def render() -> list[str]:
        calls.append(1)
        if len(calls) == 2:
            raise WatchdogError("cannot reach the watchdog at http://x: ConnectError")
        return [f"ok {len(calls)}"]

    out = io.StringIO()
    watch(render, title="t", interval=1, out=out, sleep=Sleeps(), count=3)
    text = out.getvalue()
    assert "ok 1" in text
    assert "error: cannot reach the watchdog" in text
    assert "ok 3" in text


async def test_status_watch_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status --watch --count 1`` prints one headed block (stdout is no terminal here,
    so no escape code); ``--watch -o json`` and a zero interval are usage errors."""
    (tmp_path / "rules.yaml").write_text(RULES)
    async with httpx.AsyncClient() as http:
        clock = SystemClock()
        watchdog = Watchdog(
            load_rules([tmp_path / "rules.yaml"]), SourceDeps(http=http, clock=clock), Metrics()
        )
        async with serve(build_app(watchdog, None)) as srv:
            argv = ["status", "--watch", "--count", "1", "--url", srv.url]
            assert await asyncio.to_thread(main, argv) == 0
            out = capsys.readouterr().out
            assert out.startswith(f"Every 2s: rollback-watchdog status --url {srv.url}")
            assert "error-rate" in out
            assert "\x1b" not in out
            assert await asyncio.to_thread(main, [*argv, "-o", "json"]) == 2
            assert "--watch redraws text" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["status", "--watch", "--interval", "0"])
    assert exited.value.code == 2
    assert "between 0.1 and 86400 seconds" in capsys.readouterr().err
