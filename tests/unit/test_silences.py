"""Silences: matchers, the four ways in, expiry on the clock, persistence."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from watchdog.clock import FakeClock
from watchdog.incidents.matchers import (
    Matcher,
    SilenceError,
    make_matcher,
    matchers_of,
    parse_matcher,
)
from watchdog.incidents.silence import Silences, describe
from watchdog.store.base import SilenceRecord
from watchdog.store.sqlite import SQLiteStore
from watchdog.units import iso

T0 = 1_790_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "state.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule=error-rate", Matcher("rule", "=", "error-rate")),
        ("rule!=error-rate", Matcher("rule", "!=", "error-rate")),
        ("target=~worker|frontend", Matcher("target", "=~", "worker|frontend")),
        ("severity!~low|medium", Matcher("severity", "!~", "low|medium")),
        (' rule = "slow-p95" ', Matcher("rule", "=", "slow-p95")),
    ],
)
def test_parse_matcher(text: str, expected: Matcher) -> None:
    """amtool's matcher syntax: NAME=VALUE, !=, =~ and !~ (quotes and spaces trimmed)."""
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rule", "expected NAME=VALUE"),
        ("=worker", "expected NAME=VALUE"),
        ("host=web1", "matcher name 'host' unknown"),
        ("rule=~(", "bad regular expression"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text: str, message: str) -> None:
    """A malformed matcher is a SilenceError naming the problem."""
    with pytest.raises(SilenceError, match=message):
        parse_matcher(text)


def test_make_matcher_rejects_an_unknown_operator() -> None:
    """Only =, !=, =~ and !~."""
    with pytest.raises(SilenceError, match="operator '>' unknown"):
        make_matcher("rule", ">", "x")


def test_matchers_match_labels_with_anchored_regexes() -> None:
    """Regexes match the whole value, as in Alertmanager; != and !~ negate."""
    labels = {"rule": "error-rate", "target": "worker", "severity": "critical"}
    assert parse_matcher("rule=error-rate").matches(labels)
    assert not parse_matcher("rule=error").matches(labels)
    assert parse_matcher("rule=~error-.*").matches(labels)
    assert not parse_matcher("rule=~error").matches(labels)  # anchored
    assert parse_matcher("target!=frontend").matches(labels)
    assert not parse_matcher("severity!~crit.*").matches(labels)


def test_describe_says_who_until_when_and_why() -> None:
    """The text every "would have rolled back" notification carries."""
    record = SilenceRecord("s", [], T0, T0 + 3600, "alice", "deploying by hand")
    assert describe(record) == f"silenced by alice until {iso(T0 + 3600)}: deploying by hand"
    forever = SilenceRecord("f", [], 0.0, math.inf, "flag file", "")
    assert describe(forever) == "silenced by flag file until the flag is lifted"


async def test_add_validates_and_persists(store: SQLiteStore, clock: FakeClock) -> None:
    """A silence needs an author and a positive duration or a later end; a good one
    is in the store at once."""
    silences = Silences(store, clock)
    with pytest.raises(SilenceError, match="author"):
        await silences.add([], duration_s=60, created_by=" ")
    with pytest.raises(SilenceError, match="positive duration"):
        await silences.add([], created_by="alice")
    with pytest.raises(SilenceError, match="before it starts"):
        await silences.add([], ends_at=T0 - 1, created_by="alice")
    record = await silences.add(
        [parse_matcher("rule=error-rate")], duration_s=600, created_by="alice", comment="x"
    )
    assert record.starts_at == T0
    assert record.ends_at == T0 + 600
    assert await store.silences(now=T0) == [record]


async def test_match_applies_matchers_and_time(store: SQLiteStore, clock: FakeClock) -> None:
    """A silence covers an action when all its matchers match (none: everything), and
    only between its start and end: it expires on the clock, with no call."""
    silences = Silences(store, clock)
    worker = await silences.add(
        [parse_matcher("target=worker"), parse_matcher("severity=~critical|high")],
        duration_s=600,
        created_by="alice",
    )
    later = await silences.add([], starts_at=T0 + 1200, ends_at=T0 + 1800, created_by="bob")
    assert silences.match("error-rate", "critical", "worker") == worker
    assert silences.match("error-rate", "critical", "frontend") is None
    assert silences.match("error-rate", "low", "worker") is None
    await clock.advance(600)  # the end is exclusive
    assert silences.match("error-rate", "critical", "worker") is None
    await clock.advance(600)
    assert silences.match("anything", "low", "frontend") == later
    await clock.advance(600)
    assert silences.active() == []


async def test_expire_by_id_or_unique_prefix(store: SQLiteStore, clock: FakeClock) -> None:
    """Expiring takes effect at once and is saved; an unknown id is a SilenceError."""
    silences = Silences(store, clock)
    record = await silences.add([], duration_s=600, created_by="alice")
    await silences.expire(record.id[:8])
    assert silences.active() == []
    (saved,) = await store.silences(include_expired=True)
    assert saved.expired_at == T0
    with pytest.raises(SilenceError, match="no silence with id"):
        await silences.expire("nope")


async def test_signal_silences_are_lifted_apart_from_the_others(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """SIGUSR2 lifts what SIGUSR1 set, never an API silence."""
    silences = Silences(store, clock)
    api = await silences.add([], duration_s=600, created_by="alice", origin="api")
    await silences.add([], duration_s=600, created_by="SIGUSR1", origin="signal")
    assert await silences.expire_origin("signal") == 1
    assert silences.active() == [api]


async def test_silences_survive_a_restart(store: SQLiteStore, clock: FakeClock) -> None:
    """A new Silences on the same store loads them, expired ones staying expired."""
    first = Silences(store, clock)
    kept = await first.add([], duration_s=600, created_by="alice")
    gone = await first.add([], duration_s=600, created_by="bob")
    await first.expire(gone.id)
    second = Silences(store, clock)
    await second.load()
    assert second.active() == [kept]
    assert {s.id for s in second.all()} == {kept.id, gone.id}


async def test_flag_file_silences_while_it_exists(
    store: SQLiteStore, clock: FakeClock, tmp_path: Path
) -> None:
    """WATCHDOG_SILENCE_FILE: silenced exactly while the file exists; its text is
    the comment (a default when it is empty)."""
    flag = tmp_path / "silence"
    silences = Silences(store, clock, flag_file=flag)
    assert silences.match("error-rate", "critical", "worker") is None
    flag.write_text("")
    record = silences.match("error-rate", "critical", "worker")
    assert record is not None
    assert record.comment == f"flag file {flag} exists"
    flag.write_text("  db migration, ask bob\n")
    record = silences.match("error-rate", "critical", "worker")
    assert record is not None
    assert (
        describe(record) == "silenced by flag file until the flag is lifted: db migration, ask bob"
    )
    flag.unlink()
    assert silences.active() == []


async def test_startup_flag_silences_everything(store: SQLiteStore, clock: FakeClock) -> None:
    """--silenced / WATCHDOG_SILENCED: every action, for the life of the process,
    never written to the store."""
    silences = Silences(store, clock, startup_silenced=True)
    record = silences.match("any", "critical", "worker")
    assert record is not None
    assert record.origin == "flag"
    assert matchers_of(record) == []
    await clock.advance(30 * 86400)
    assert silences.match("any", "low", "frontend") is not None
    assert await store.silences(include_expired=True) == []
