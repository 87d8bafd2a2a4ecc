"""Silences: the Alertmanager model applied to *actions*.

A silence has matchers on ``rule``, ``target`` and ``severity`` (``=``, ``!=``, ``=~``,
``!~``; regexes are anchored), a start, an end, an author and a comment. While an
action is silenced the watchdog still evaluates, records and notifies "would have
rolled back (silenced by AUTHOR until TIME: COMMENT)", and acts never.

Four ways in: the HTTP API / CLI (persisted), SIGUSR1 (persisted, for the configured
duration; SIGUSR2 lifts what signals set), a flag file (silenced while it exists), and
the start-up flag (silenced while this process runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import Callable
from pathlib import Path

import structlog

from watchdog.actions.notify.event import SilenceChange, SilenceEvent
from watchdog.clock import Clock

# Re-exported: the matchers are part of what a silence is.
from watchdog.incidents.matchers import (
    KnownNames,
    Matcher,
    SilenceError,
    _Verdicts,
    matchers_of,
)
from watchdog.incidents.regex_syntax import PatternError
from watchdog.incidents.safe_regex import compile_pattern
from watchdog.store.base import SilenceRecord, Store
from watchdog.units import format_duration, iso

log = structlog.get_logger("watchdog.incidents.silence")

# The last second ``iso`` can write (9999-12-31T23:59:59Z): a silence ends by then.
LATEST = 253_402_300_799.0


def describe(record: SilenceRecord) -> str:
    """``silenced by alice until 2026-11-28T20:00:00Z: deploying by hand``."""
    until = "the flag is lifted" if math.isinf(record.ends_at) else iso(record.ends_at)
    comment = f": {record.comment}" if record.comment else ""
    return f"silenced by {record.created_by} until {until}{comment}"


def _check_time(name: str, value: float) -> None:
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float (a 4,000-digit number)
        finite = False
    if not (finite and 0 <= value <= LATEST):
        raise SilenceError(
            f"{name} {str(value)[:40]} is not a time (Unix seconds, up to the year 9999; "
            "or give a shorter duration)"
        )


def _check_text(*texts: str) -> None:
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SilenceError(f"{text!r:.60} is not valid Unicode text") from None


class Silences:
    """Active silences from every way in, with expiry on the injected clock."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        flag_file: Path | None = None,
        startup_silenced: bool = False,
        max_duration_s: float | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flag_file = flag_file
        self.startup_silenced = startup_silenced
        self.max_duration_s = max_duration_s  # None: no cap (backtests, tests)
        self.known: KnownNames | None = None  # set_known: the loaded rules' names
        self._records: dict[str, SilenceRecord] = {}
        self._flag_cache: tuple[tuple[int, int], str] | None = None
        self._verdicts = _Verdicts()
        # Told of each silence added or expired early (notifiers that mark time hear it).
        self.on_change: Callable[[SilenceEvent], None] | None = None

    def _told(self, change: SilenceChange, record: SilenceRecord) -> None:
        if self.on_change is not None:
            self.on_change(
                SilenceEvent(
                    change,
                    record.id,
                    tuple((m.name, m.op, m.value) for m in matchers_of(record)),
                    record.starts_at,
                    record.ends_at,
                    record.created_by,
                    record.comment,
                    self.clock.now(),
                )
            )

    async def load(self) -> None:
        """Read persisted silences (after a restart they still hold). Their matchers
        are judged against the known names here, once, in linear time each."""
        self._records = {s.id: s for s in await self.store.silences(include_expired=True)}
        for record in self._records.values():
            _warn_unsupported(record)
        await self.judge_all()

    def set_known(self, known: KnownNames) -> None:
        """The loaded rules changed (start, reload); ``judge_all`` judges again. Until
        then a matcher is judged per action, on the three names of that action."""
        self.known = known
        self._verdicts = _Verdicts()

    async def judge_all(self) -> None:
        """Judge every matcher against every known name, in a worker thread: linear
        time each, but 10,000 rules times a large pattern is seconds of work."""
        known = self.known or KnownNames()
        records = list(self._records.values())
        self._verdicts = await asyncio.to_thread(_Verdicts.of, known, records)

    def active(self) -> list[SilenceRecord]:
        now = self.clock.now()
        found = [s for s in self._records.values() if s.active(now)]
        found.extend(self._ephemeral(now))
        return found

    def all(self) -> list[SilenceRecord]:
        return list(self._records.values())

    def _ephemeral(self, now: float) -> list[SilenceRecord]:
        out = []
        if self.startup_silenced:
            out.append(
                SilenceRecord(
                    "startup-flag",
                    [],
                    0.0,
                    math.inf,
                    "--silenced",
                    "started with --silenced / WATCHDOG_SILENCED",
                    "flag",
                )
            )
        if self.flag_file is not None:
            comment = self._flag_comment(self.flag_file)
            if comment is not None:
                out.append(
                    SilenceRecord("flag-file", [], 0.0, math.inf, "flag file", comment, "file")
                )
        return out

    def _flag_comment(self, path: Path) -> str | None:
        """The flag file's comment, or None while it does not exist. Asked every tick:
        one stat, and the file is read again only when it changed."""
        try:
            stamp = path.stat()
        except OSError:
            return None
        key = (stamp.st_mtime_ns, stamp.st_size)
        if self._flag_cache is None or self._flag_cache[0] != key:
            try:
                text = path.read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                text = ""
            self._flag_cache = (key, text[:500] or f"flag file {path} exists")
        return self._flag_cache[1]

    def match(self, rule: str, severity: str, target: str = "") -> SilenceRecord | None:
        """The first active silence covering this action, if any."""
        labels = {"rule": rule, "severity": severity, "target": target}
        for record in self.active():
            if all(self._verdicts.matches(m, labels) for m in matchers_of(record)):
                return record
        return None

    async def add(
        self,
        matchers: list[Matcher],
        duration_s: float | None = None,
        ends_at: float | None = None,
        starts_at: float | None = None,
        created_by: str = "",
        comment: str = "",
        origin: str = "api",
    ) -> SilenceRecord:
        now = self.clock.now()
        start = now if starts_at is None else starts_at
        _check_time("starts_at", start)
        if ends_at is None:
            if duration_s is None or duration_s <= 0:
                raise SilenceError("a silence needs a positive duration or an end time")
            ends_at = start + duration_s
        _check_time("ends_at", ends_at)
        _check_text(created_by, comment, *(m.value for m in matchers))
        if ends_at <= start:
            raise SilenceError(f"silence ends ({iso(ends_at)}) before it starts ({iso(start)})")
        if origin == "api" and self.max_duration_s is not None:
            self._check_length(now, start, ends_at, self.max_duration_s)
        if not created_by.strip():
            raise SilenceError("a silence needs an author (created_by)")
        record = SilenceRecord(
            id=str(uuid.uuid4()),
            matchers=[m.to_dict() for m in matchers],
            starts_at=start,
            ends_at=ends_at,
            created_by=created_by.strip()[:200],
            comment=comment.strip()[:2000],
            origin=origin,
        )
        await self.store.save_silence(record)
        self._records[record.id] = record
        fresh = await asyncio.to_thread(_Verdicts.of, self.known or KnownNames(), [record])
        self._verdicts.merge(fresh)
        self._told("created", record)
        return record

    @staticmethod
    def _check_length(now: float, start: float, ends_at: float, limit: float) -> None:
        """A forgotten silence must expire on its own: at most ``limit`` long, and
        starting no later than ``limit`` from now."""
        text = format_duration(limit)
        if ends_at - start > limit:
            raise SilenceError(
                f"the silence would last {format_duration(ends_at - start)}, longer than "
                f"{text} (WATCHDOG_SILENCE_MAX_DURATION); add a shorter one and renew it"
            )
        if start - now > limit:
            raise SilenceError(
                f"the silence starts more than {text} from now "
                "(WATCHDOG_SILENCE_MAX_DURATION); add it closer to the time"
            )

    async def expire(self, silence_id: str) -> SilenceRecord:
        record = self._records.get(silence_id)
        if record is None:
            matches = [r for r in self._records.values() if r.id.startswith(silence_id)]
            if len(matches) != 1:
                raise SilenceError(f"no silence with id {silence_id!r}")
            record = matches[0]
        now = self.clock.now()
        if record.expired_at is None or record.expired_at > now:
            expired = dataclasses.replace(record, expired_at=now)
            await self.store.save_silence(expired)  # first: a failed write changes nothing
            self._records[record.id] = record = expired
            if record.ends_at > now:  # cut short: one that ran its course was told enough
                self._told("expired", record)
        return record

    async def expire_origin(self, origin: str) -> int:
        count = 0
        for record in list(self._records.values()):
            if record.origin == origin and record.active(self.clock.now()):
                await self.expire(record.id)
                count += 1
        return count


def _warn_unsupported(record: SilenceRecord) -> None:
    for m in matchers_of(record):
        if m.op in ("=~", "!~"):
            try:
                compile_pattern(m.value)
            except PatternError as exc:
                log.warning(
                    "a stored silence has a regex this version refuses; it matches no name",
                    silence=record.id,
                    matcher=m.text()[:100],
                    error=str(exc),
                )
