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

import dataclasses
import math
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchdog.clock import Clock, iso
from watchdog.errors import WatchdogError
from watchdog.store import SilenceRecord, Store

# The last second ``iso`` can write (9999-12-31T23:59:59Z): a silence ends by then.
LATEST = 253_402_300_799.0

MatcherName = Literal["rule", "target", "severity"]
MATCHER_NAMES: tuple[MatcherName, ...] = ("rule", "target", "severity")
_OPS = ("=~", "!~", "!=", "=")


class SilenceError(WatchdogError):
    """A silence request is malformed (bad matcher, end before start, ...)."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit

    def text(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """``rule=error-rate``, ``target=~worker|frontend``, ``severity!=low``."""
    for op in _OPS:
        name, sep, value = text.partition(op)
        if sep and name.strip():
            return make_matcher(name.strip(), op, value.strip().strip('"'))
    raise SilenceError(
        f"matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX "
        f"with NAME one of: {', '.join(MATCHER_NAMES)}"
    )


def make_matcher(name: str, op: str, value: str) -> Matcher:
    if name not in MATCHER_NAMES:
        raise SilenceError(
            f"matcher name {name!r} unknown (expected one of: {', '.join(MATCHER_NAMES)})"
        )
    if op not in _OPS:
        raise SilenceError(f"matcher operator {op!r} unknown (expected one of: {', '.join(_OPS)})")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise SilenceError(
                f"matcher {name}{op}{value}: bad regular expression: {exc}"
            ) from None
    return Matcher(name, op, value)


def matchers_of(record: SilenceRecord) -> list[Matcher]:
    return [Matcher(m["name"], m["op"], m["value"]) for m in record.matchers]


def describe(record: SilenceRecord) -> str:
    """``silenced by alice until 2026-11-28T20:00:00Z: deploying by hand``."""
    until = "the flag is lifted" if math.isinf(record.ends_at) else iso(record.ends_at)
    comment = f": {record.comment}" if record.comment else ""
    return f"silenced by {record.created_by} until {until}{comment}"


def _check_time(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= LATEST):
        raise SilenceError(
            f"{name} {value!r} is not a time (Unix seconds, up to the year 9999; "
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
    ) -> None:
        self.store = store
        self.clock = clock
        self.flag_file = flag_file
        self.startup_silenced = startup_silenced
        self._records: dict[str, SilenceRecord] = {}
        self._flag_cache: tuple[tuple[int, int], str] | None = None

    async def load(self) -> None:
        """Read persisted silences (after a restart they still hold)."""
        self._records = {s.id: s for s in await self.store.silences(include_expired=True)}

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
            if all(m.matches(labels) for m in matchers_of(record)):
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
        return record

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
        return record

    async def expire_origin(self, origin: str) -> int:
        count = 0
        for record in list(self._records.values()):
            if record.origin == origin and record.active(self.clock.now()):
                await self.expire(record.id)
                count += 1
        return count
