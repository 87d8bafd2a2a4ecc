"""Incidents stored by the watchdog before the typed state (format 0: the string-keyed
``data`` dict, NaN as a bare token) still load, in SQLite and PostgreSQL, field by
field; saved again they are format 1; their post-mortems read as before; and an open
one carries on after the upgrade's restart.

The rows in tests/data/incidents_format0.json are exactly what the previous code
wrote (captured from the scenario, fault and CLI tests named in each row)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from tests.scenarios.support import BAD, HEALTHY, calm
from tests.world import world
from watchdog.cli.main import main
from watchdog.incidents.postmortem import render
from watchdog.incidents.state import Blocked, Hold, IncidentState, load_state
from watchdog.store.base import IncidentRecord, Store
from watchdog.store.sqlite import SQLiteStore

DATA = Path(__file__).parent.parent / "data"
ROWS: list[dict[str, Any]] = json.loads(
    (DATA / "incidents_format0.json").read_text(encoding="utf-8")
)["rows"]
POSTMORTEMS: dict[str, str] = json.loads(
    (DATA / "incidents_format0_postmortems.json").read_text(encoding="utf-8")
)["postmortems"]
COLUMNS = ("id", "opened_at", "closed_at", "rule", "severity", "phase", "targets", "data")


@dataclass
class Legacy:
    """A store, and how to put a row in it as the previous code's SQL did."""

    make: Callable[[], Store]
    insert: Callable[[dict[str, Any]], Awaitable[None]]


def sqlite_legacy(path: Path) -> Legacy:
    async def insert(row: dict[str, Any]) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM incidents")
            conn.execute(
                "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?)", [row[c] for c in COLUMNS]
            )
        conn.close()

    return Legacy(lambda: SQLiteStore(path), insert)


def postgres_legacy(url: str) -> Legacy:
    import psycopg

    from watchdog.store.postgres import PostgresStore

    async def insert(row: dict[str, Any]) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("DELETE FROM incidents")
            await conn.execute(
                f"INSERT INTO incidents ({', '.join(COLUMNS)}) "  # noqa: S608 (our constants)
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                [row[c] for c in COLUMNS],
            )

    return Legacy(lambda: PostgresStore(url), insert)


@pytest.fixture(params=["sqlite", "postgresql"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Legacy:
    if request.param == "postgresql":  # needs the session's PostgreSQL cluster
        return postgres_legacy(request.getfixturevalue("postgres_url"))
    return sqlite_legacy(tmp_path / "state.db")


def as_format0(state: IncidentState, key: str) -> Any:
    """The field named by a format-0 key, in the shape format 0 stored it."""
    value = getattr(state, key)
    if key == "decision":
        return value.to_dict()
    if key == "rolled_back":
        return [list(step) for step in value]
    if isinstance(value, Blocked):
        return {
            Hold.STORE_FAILED: value.why,
            Hold.SILENCED: {"silenced": True},
            Hold.GUARDS: value.targets,
        }[value.by]
    return value


def plain(value: Any) -> Any:
    """``value`` as JSON data, NaN as the text "NaN" so that it equals itself (and a
    count stored as 600 equals the float field's 600.0)."""
    return json.loads(json.dumps(value), parse_constant=str)


# Keys that evidence gained after format 0 was captured, with the value an old row
# means: a regression's ``absolute`` (min_effect +1.5%) is False for every old row, a
# burn rate's ``confidence`` None (point ratios).
ADDED_SINCE_CAPTURE: dict[str, Any] = {"absolute": False, "confidence": None}


def without_added(new: Any, old: Any) -> Any:
    """``new`` without the keys ``old`` lacks that were added since, at their old meaning."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {
            key: without_added(value, old.get(key))
            for key, value in new.items()
            if key in old or ADDED_SINCE_CAPTURE.get(key, object()) != value
        }
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [without_added(n, o) for n, o in zip(new, old, strict=True)]
    return new


def assert_same(row: dict[str, Any], state: IncidentState) -> None:
    """Every format-0 key is the same value in the typed state, and every field format
    0 did not have keeps its default."""
    old = json.loads(row["data"])
    for key, value in old.items():
        now = plain(as_format0(state, key))
        assert without_added(now, plain(value)) == plain(value), (row["name"], key)
    default = IncidentState(state.decision)
    for f in fields(IncidentState):
        if f.name not in old:
            assert getattr(state, f.name) == getattr(default, f.name), (row["name"], f.name)


def refuse_constant(token: str) -> Any:
    raise AssertionError(f"not strict JSON: {token}")


def test_the_fixtures_cover_every_key_and_shape_format_0_had() -> None:
    keys = {key for row in ROWS for key in json.loads(row["data"])}
    assert keys == {f.name for f in fields(IncidentState)}
    blocked = [json.loads(row["data"]).get("blocked") for row in ROWS]
    assert {type(b).__name__ for b in blocked if b not in (None, {"silenced": True})} == {
        "str",
        "dict",
    }
    assert {"silenced": True} in blocked
    assert any("NaN" in row["data"] for row in ROWS)
    decisions = [json.loads(row["data"])["decision"] for row in ROWS]
    assert all(any(d.get(kind) for d in decisions) for kind in ("evidence", "regression", "burn"))


async def test_format_0_rows_load_through_the_store_and_save_as_format_1(legacy: Legacy) -> None:
    store = legacy.make()
    await store.open()
    try:
        for row in ROWS:
            await legacy.insert(row)
            record = await store.get_incident(row["id"])
            assert record is not None
            assert record.state_json == row["data"], row["name"]  # kept as it was written
            assert [record.phase, record.closed_at] == [row["phase"], row["closed_at"]]
            if row["closed_at"] is None:
                assert [r.id for r in await store.open_incidents()] == [row["id"]]
            state = load_state(record)
            assert_same(row, state)
            record.state_json = state.to_json()
            await store.save_incident(record)
            again = await store.get_incident(row["id"])
            assert again is not None
            stored = json.loads(again.state_json, parse_constant=refuse_constant)
            assert stored["format"] == 1, row["name"]
            assert load_state(again).to_json() == record.state_json, row["name"]
    finally:
        await store.close()


@pytest.mark.parametrize("row", ROWS, ids=[row["name"] for row in ROWS])
def test_the_post_mortem_of_a_format_0_incident_reads_as_before(row: dict[str, Any]) -> None:
    record = IncidentRecord(
        row["id"],
        row["opened_at"],
        row["rule"],
        row["severity"],
        row["phase"],
        json.loads(row["targets"]),
        closed_at=row["closed_at"],
        state_json=row["data"],
    )
    assert render(record, [], []) == POSTMORTEMS[row["name"]]


HIGH = """
- {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: high,
   min_requests: 100, rollback: [worker]}
"""


async def test_an_open_format_0_incident_carries_on_after_the_upgrade(tmp_path: Path) -> None:
    """A high incident in its grace period, written by the previous code, is restored
    by the new one with its deadline; the breach goes on, so it rolls back once, when
    the grace ends; its next save is format 1."""
    (row,) = [row for row in ROWS if row["name"] == "blind-grace"]
    async with world(tmp_path, HIGH) as w:
        await calm(w)
        await sqlite_legacy(tmp_path / "state.db").insert(row)
        await w.restart()
        incident = w.runtime.manager.open[row["id"]]
        assert incident.phase == "grace"
        grace_until = json.loads(row["data"])["grace_until"]
        assert incident.state.grace_until == grace_until
        await w.feed("error_rate", [BAD] * 30, also=HEALTHY)
        assert w.now < grace_until
        assert w.worker_rollbacks() == 0
        await w.feed("error_rate", [BAD] * 35, also=HEALTHY)  # past the grace
        assert w.worker_rollbacks() == 1
        record = await w.runtime.store.get_incident(row["id"])
        assert record is not None
        assert json.loads(record.state_json)["format"] == 1
        assert load_state(record).rolled_back == [("worker", w.versions["v3"], w.versions["v2"])]


def test_the_cli_names_the_incident_and_the_key_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``postmortem`` (and ``run``, restoring an open one) on a row with a key this
    watchdog does not know: exit 1, the incident and the key named, nothing guessed."""
    (row,) = [row for row in ROWS if row["name"] == "low-watching"]
    state = tmp_path / "state.db"
    data = json.loads(row["data"])
    unknown = {**row, "data": json.dumps({**data, "rolled_back_twice": True})}

    async def put() -> None:
        store = SQLiteStore(state)
        await store.open()
        await store.close()
        await sqlite_legacy(state).insert(unknown)

    asyncio.run(put())
    monkeypatch.setenv("WATCHDOG_STATE", str(state))
    assert main(["postmortem", row["id"]]) == 1
    said = capsys.readouterr().err
    assert f"incident {row['id']}" in said
    assert "a key this watchdog does not know: 'rolled_back_twice'" in said
