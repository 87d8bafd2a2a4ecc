"""``status --watch``: redraw a verb's text every N seconds, as ``watch`` does.

On a terminal each refresh clears the screen first; into a pipe or a file the blocks are
appended, each under its own header, with no escape code. Ctrl-C ends it with exit 0:
stopping a watch is how it is used, not a failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from watchdog.errors import WatchdogError
from watchdog.units import iso

CLEAR = "\x1b[H\x1b[2J"  # cursor home, erase the screen (what `watch` and `clear` send)


def watch(
    render: Callable[[], list[str]],
    *,
    title: str,
    interval: float,
    out: TextIO,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    count: int | None = None,
) -> int:
    """Print ``render()`` every ``interval`` seconds, ``count`` times (None: until
    Ctrl-C). A refresh that fails shows its error and the watch goes on, as the
    watchdog may be restarting."""
    tty = out.isatty()
    done = 0
    try:
        while count is None or done < count:
            if done:
                sleep(interval)
            try:
                lines = render()
            except WatchdogError as exc:
                lines = [f"error: {exc}"]
            head = f"Every {interval:g}s: {title}    {iso(now())}"
            if tty:
                out.write(CLEAR)
            elif done:
                out.write("\n")
            out.write("\n".join([head, "", *lines]) + "\n")
            out.flush()
            done += 1
    except KeyboardInterrupt:
        if tty:
            out.write("\n")
            out.flush()
    return 0
