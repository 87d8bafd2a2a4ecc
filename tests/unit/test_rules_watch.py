"""The rules-file watcher: polls on the injected clock, calls back once per change
(content, added or removed files, a Kubernetes ConfigMap's ``..data`` swap), never for
a touch, and outlives a failing callback."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from watchdog.clock import FakeClock
from watchdog.errors import ConfigError
from watchdog.rules.load import load_rules
from watchdog.rules.watch import Fingerprint, changed_names, fingerprint, watch_rules

INTERVAL = 10.0

RULES = """\
version: 1
sources:
  health: {{type: probe, url: "http://127.0.0.1:1/health"}}
rules:
  - {{name: {name}, signal: health.up, below: 1, for: 1m, severity: low}}
"""


class Calls:
    """An ``on_change`` that counts its calls and can be told to fail."""

    def __init__(self) -> None:
        self.count = 0
        self.fail = False

    async def __call__(self) -> bool:
        self.count += 1
        if self.fail:
            raise RuntimeError("reload blew up")
        return True


class Watch:
    def __init__(self, clock: FakeClock, calls: Calls) -> None:
        self.clock = clock
        self.calls = calls

    async def tick(self, intervals: int = 1) -> None:
        await self.clock.advance(INTERVAL * intervals)


@pytest.fixture
def calls() -> Calls:
    return Calls()


async def on_loop(paths: Sequence[str | Path]) -> Fingerprint:
    """The scan on the event loop: a thread hop would race the virtual clock."""
    return fingerprint(paths)


@contextlib.asynccontextmanager
async def start(paths: Sequence[str | Path], calls: Calls) -> AsyncIterator[Watch]:
    clock = FakeClock()
    task = asyncio.create_task(watch_rules(paths, clock, calls, interval_s=INTERVAL, scan=on_loop))
    await clock.advance(0)  # the watcher takes its first look before anything changes
    try:
        yield Watch(clock, calls)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
async def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "a.yaml").write_text(RULES.format(name="first"))
    return directory


@pytest.fixture
async def watch(rules_dir: Path, calls: Calls) -> AsyncIterator[Watch]:
    async with start([rules_dir], calls) as w:
        yield w


async def test_an_edit_is_noticed_at_the_next_poll_and_only_once(
    watch: Watch, rules_dir: Path
) -> None:
    """Changing a file's content calls back once, at the first poll after the change."""
    await watch.tick(3)
    assert watch.calls.count == 0
    (rules_dir / "a.yaml").write_text(RULES.format(name="second"))
    await watch.clock.advance(INTERVAL - 1)
    assert watch.calls.count == 0
    await watch.clock.advance(1)
    assert watch.calls.count == 1
    await watch.tick(5)
    assert watch.calls.count == 1


async def test_a_touch_without_a_change_is_not_a_change(watch: Watch, rules_dir: Path) -> None:
    """A new mtime with the same content does not reload."""
    path = rules_dir / "a.yaml"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns + 10**9, stat.st_mtime_ns + 10**9))
    await watch.tick(2)
    assert watch.calls.count == 0


async def test_files_added_to_or_removed_from_the_directory_are_changes(
    watch: Watch, rules_dir: Path
) -> None:
    """A new *.yaml in the rules directory is a change, and so is its removal; a file
    the loader ignores (not *.yaml/*.yml) is not."""
    (rules_dir / "b.yml").write_text(RULES.format(name="other"))
    await watch.tick()
    assert watch.calls.count == 1
    (rules_dir / "notes.txt").write_text("not rules")
    await watch.tick()
    assert watch.calls.count == 1
    (rules_dir / "b.yml").unlink()
    await watch.tick()
    assert watch.calls.count == 2


async def test_a_configmap_symlink_swap_is_a_change(tmp_path: Path, calls: Calls) -> None:
    """The kubelet's update of a mounted ConfigMap: a new timestamped directory, the
    ``..data`` symlink swapped to it atomically, the visible file a symlink through
    ``..data`` whose own mtime never changes. The watcher sees it, and the loader then
    reads the new rules through the same layout."""
    mount = tmp_path / "configmap"
    mount.mkdir()
    old = mount / "..2026_11_28_10_00_00.000000001"
    old.mkdir()
    (old / "production.yaml").write_text(RULES.format(name="before"))
    (mount / "..data").symlink_to(old.name)
    (mount / "production.yaml").symlink_to("..data/production.yaml")
    assert [r.name for r in load_rules([mount]).rules] == ["before"]

    async with start([mount], calls) as watch:
        await watch.tick()
        assert calls.count == 0
        new = mount / "..2026_11_28_10_05_00.000000002"
        new.mkdir()
        (new / "production.yaml").write_text(RULES.format(name="after"))
        (mount / "..data_tmp").symlink_to(new.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        for child in old.iterdir():
            child.unlink()
        old.rmdir()
        await watch.tick()
        assert calls.count == 1
        await watch.tick(3)
        assert calls.count == 1
    assert [r.name for r in load_rules([mount]).rules] == ["after"]


async def test_a_single_file_path_is_watched(tmp_path: Path, calls: Calls) -> None:
    """WATCHDOG_RULES may name one file: its edit is a change; so is its disappearance
    and its return."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(name="one"))
    async with start([path], calls) as watch:
        path.write_text(RULES.format(name="two"))
        await watch.tick()
        assert calls.count == 1
        path.unlink()
        await watch.tick()
        assert calls.count == 2
        path.write_text(RULES.format(name="two"))
        await watch.tick()
        assert calls.count == 3


async def test_a_lone_path_string_is_one_path(tmp_path: Path, calls: Calls) -> None:
    """A str (itself a sequence) is taken as one path, not as one path per character."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(name="one"))
    async with start(str(path), calls) as watch:
        path.write_text(RULES.format(name="two"))
        await watch.tick()
        assert calls.count == 1


async def test_a_failing_callback_does_not_end_the_watch(watch: Watch, rules_dir: Path) -> None:
    """An exception from ``on_change`` is logged with the changed file; the next change
    still calls back."""
    watch.calls.fail = True
    (rules_dir / "a.yaml").write_text(RULES.format(name="second"))
    with capture_logs() as logged:
        await watch.tick()
    assert watch.calls.count == 1
    failed = [e for e in logged if e["event"] == "reload after a rules file change failed"]
    assert len(failed) == 1
    assert failed[0]["changed"] == [str(rules_dir / "a.yaml")]
    watch.calls.fail = False
    (rules_dir / "a.yaml").write_text(RULES.format(name="third"))
    await watch.tick()
    assert watch.calls.count == 2


async def test_a_zero_interval_is_refused(calls: Calls) -> None:
    """A non-positive interval would spin: ConfigError before anything runs."""
    with pytest.raises(ConfigError):
        await watch_rules(["rules"], FakeClock(), calls, interval_s=0)


def test_fingerprint_names_missing_and_unreadable_files(tmp_path: Path) -> None:
    """The fingerprint never raises: a missing file is ``missing``, a directory named
    like a rules file inside a rules directory is skipped (not a regular file), and
    ``changed_names`` lists what differs."""
    present = tmp_path / "a.yaml"
    present.write_text("version: 1\n")
    missing = tmp_path / "gone.yaml"
    before = fingerprint([present, missing])
    assert before[str(missing)] == "missing"
    assert before[str(present)].startswith("sha256:")
    odd = tmp_path / "odd.yaml"
    odd.mkdir()
    assert str(odd) not in fingerprint([tmp_path])
    present.write_text("version: 1\n# edited\n")
    assert changed_names(before, fingerprint([present, missing])) == [str(present)]
