"""What only the PostgreSQL store has to get right: replicas sharing it, a connection
that dies under it, values PostgreSQL's own JSON would refuse, and the URL routing.
The common contract is tests/unit/test_store.py, run on both stores."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import psycopg
import pytest

from watchdog.errors import ConfigError, StoreError
from watchdog.incidents.model import manual_decision
from watchdog.incidents.state import IncidentState, load_state
from watchdog.store import open_store
from watchdog.store.base import ActionRecord, IncidentRecord, LedgerEntry
from watchdog.store.postgres import PostgresStore, redact

pytestmark = pytest.mark.integration

T0 = 1_790_000_000.0


def intent(to: str) -> ActionRecord:
    return ActionRecord(
        key="inc1/rollback/worker",
        incident_id="inc1",
        kind="rollback",
        target="worker",
        intent={"from": "v3", "to": to},
        state="intent",
        created_at=T0,
    )


async def test_replicas_racing_on_one_key_journal_one_intent(postgres_url: str) -> None:
    """Two stores (two replicas' connections) journal the same key at once: one
    row, and both get that same row back."""
    stores = [PostgresStore(postgres_url) for _ in range(2)]
    await asyncio.gather(*(s.open() for s in stores))  # concurrent migrations too
    try:
        rows = await asyncio.gather(
            *(s.journal_intent(intent(f"v{n}")) for n in range(6) for s in stores)
        )
        assert len({r.intent["to"] for r in rows}) == 1
        assert len(await stores[0].actions("inc1")) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_killed_connection_is_replaced_on_the_next_call(postgres_url: str) -> None:
    """The server ends the store's session (a restart, a failover): the call in
    flight fails as a StoreError, the next one reconnects and works."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.save_ledger([LedgerEntry("worker", "v1", T0)])
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'rollback-watchdog' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError, match="state store"):
            await store.ledger("worker")
        assert [e.version for e in await store.ledger("worker")] == ["v1"]
    finally:
        await store.close()


async def test_nan_in_incident_data_round_trips(postgres_url: str) -> None:
    """A manual rollback's decision has no observed value (NaN): it is stored and read
    back as SQLite does (PostgreSQL's json type would refuse it)."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        decision = replace(manual_decision(["worker"], "r", "a", T0), threshold=math.inf)
        record = IncidentRecord(
            "manual-1", T0, "manual", "critical", "rolling_back", ["worker"],
            state_json=IncidentState(decision).to_json(),
        )  # fmt: skip
        await store.save_incident(record)
        back = await store.get_incident("manual-1")
        assert back is not None
        assert math.isnan(load_state(back).decision.observed)
        assert load_state(back).decision.threshold == math.inf
    finally:
        await store.close()


async def test_an_unreachable_database_is_a_store_error_without_the_password(
    postgres_cluster: object,
) -> None:
    """Opening a store on a port where nothing listens fails as a StoreError that
    names the place but never the password."""
    url = "postgresql://watchdog:s3cret-pw@127.0.0.1:9/none?connect_timeout=1"
    store = PostgresStore(url, connect_timeout_s=1.0)
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:9" in str(caught.value)
    await store.close()


def test_open_store_routes_postgres_urls() -> None:
    """postgresql:// and postgres:// URLs get the PostgreSQL store; other schemes are
    still a ConfigError; the redacted URL hides only the password."""
    assert isinstance(open_store("postgresql://u@127.0.0.1/db"), PostgresStore)
    assert isinstance(open_store("postgres://u@127.0.0.1/db"), PostgresStore)
    with pytest.raises(ConfigError, match="unsupported scheme 'mysql'"):
        open_store("mysql://u@127.0.0.1/db")
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
