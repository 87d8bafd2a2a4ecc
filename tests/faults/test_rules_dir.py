"""Fault matrix, the rules directory: what editors, operators and attackers leave
there. A FIFO named ``extra.yaml`` (opening it for reading blocks until a writer
comes: it hung the start and the watcher), an Emacs lock file (a dangling symlink
``.#prod.yaml``: it stopped the start), editor backups and swap files. Only regular
files are rules; the rest is skipped, and a FIFO named as the rules file is a clear
error. Each read runs in a thread with a bounded wait, and the FIFO is released
(a writer opened and closed) afterwards, so a regression fails instead of hanging."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from watchdog.errors import RuleError
from watchdog.rules.load import load_rules
from watchdog.rules.watch import fingerprint

T = TypeVar("T")
WAIT_S = 10.0
RULES = """
version: 1
sources:
  app: {type: probe, url: "http://127.0.0.1:9/health"}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - {name: down, signal: app.up, below: 1, for: 1m, severity: critical, rollback: [worker]}
"""


@contextlib.contextmanager
def released(fifo: Path) -> Iterator[None]:
    """On the way out, unblock any reader stuck on ``fifo`` (it then reads EOF)."""
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # ENXIO: no reader waiting
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def bounded(call: Callable[[], T]) -> T:
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"blocked for {WAIT_S}s reading the rules") from None


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "prod.yaml").write_text(RULES)
    os.mkfifo(directory / "extra.yaml")
    (directory / ".#prod.yaml").symlink_to("root@host.12345:1700000000")  # Emacs lock
    (directory / "prod.yaml~").write_text("version: [broken")  # editor backup
    (directory / "#prod.yaml#").write_text("version: [broken")  # Emacs autosave
    (directory / ".prod.yaml.swp").write_text("version: [broken")  # vim swap
    (directory / ".hidden.yaml").write_text("version: [broken")
    return directory


async def test_only_regular_rules_files_are_loaded(rules_dir: Path) -> None:
    with released(rules_dir / "extra.yaml"):
        ruleset = await bounded(lambda: load_rules([rules_dir]))
    assert [rule.name for rule in ruleset.rules] == ["down"]
    assert [Path(f).name for f in ruleset.files] == ["prod.yaml"]


async def test_the_watcher_skips_them_too(rules_dir: Path) -> None:
    with released(rules_dir / "extra.yaml"):
        seen = await bounded(lambda: fingerprint([rules_dir]))
    assert [Path(name).name for name in seen] == ["prod.yaml"]


async def test_a_fifo_named_as_the_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    with released(fifo):
        with pytest.raises(RuleError, match=r"rules.yaml:0 \(top level\): not a regular file"):
            await bounded(lambda: load_rules([fifo]))
        assert (await bounded(lambda: fingerprint([fifo]))) == {str(fifo): "not a regular file"}
