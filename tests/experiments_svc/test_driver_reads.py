"""The reads by key on PostgreSQL run on asyncpg directly
(experiments_svc.driver_reads): the same rows as SQLAlchemy's reads, value
for value and type for type; a connection the server closed in the pool
costs no call; a read that times out or is cancelled stops on the server
and leaves its connection fit to reuse."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from experiments_svc import trial_sums
from experiments_svc.db import create_engine, translate_error
from experiments_svc.driver_reads import DriverReads
from experiments_svc.models import ExperimentRow
from experiments_svc.revisions import Change
from experiments_svc.store import ExperimentStore
from research_common.errors import Unavailable
from tests.experiments_svc.records import stored_record
from tests.fixtures.postgres import truncate_experiments

pytestmark = pytest.mark.postgres

STRATEGY = uuid.UUID("5e1f0000-0000-4000-8000-000000000001")
NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(migrated_postgres: str) -> AsyncIterator[AsyncEngine]:
    await truncate_experiments(migrated_postgres)
    engine = create_engine(migrated_postgres, timeout=2, pool_size=3)
    yield engine
    await engine.dispose()


def record(**fields: Any) -> dict[str, Any]:
    # Every column given, as SQLAlchemy's own rows hold them all.
    fixed = {"strategy_id": STRATEGY, "feature_version": "fv-1", "request_id": None}
    return stored_record(**fixed, request_digest=None, created_at=NOW, updated_at=NOW) | fields


async def sqlalchemy_rows(engine: AsyncEngine, statement: Any) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(statement)
        return [dict(row) for row in result.mappings()]


def typed(row: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    # uuid.UUID for either: asyncpg's UUID is a subclass, equal and hashing alike.
    return {
        key: (uuid.UUID if isinstance(value, uuid.UUID) else type(value), value)
        for key, value in row.items()
    }


async def test_rows_are_sqlalchemys_value_for_value(engine: AsyncEngine) -> None:
    store = ExperimentStore(engine)
    nested = record(
        parameters={"grid": {"depth": [3, 5], "on": True}, "none": None, "big": 2**63 + 1},
        metrics={"sharpe": 1.25, "oos_sharpe": -0.5, "label": "x\u00e9"},
        artifacts={"model": "s3://bucket/model.pkl"},
        mlflow_run_id="run-1",
        request_id=uuid.uuid4(),
        request_digest="d" * 64,
    )
    plain = record(created_at=NOW - timedelta(days=1), updated_at=NOW - timedelta(days=1))
    for row in (nested, plain):
        await store.insert(row)
    gone = await store.insert(record(metrics={"sharpe": 2.0}))
    assert await store.delete(gone["id"], Change("delete", NOW + timedelta(seconds=1)))

    table = ExperimentRow.__table__
    expected = {row["id"]: row for row in await sqlalchemy_rows(engine, select(table))}
    for experiment_id, row in expected.items():
        got = await store.get(experiment_id)
        assert got is not None
        assert typed(dict(got)) == typed(row)
    assert dict(await store.find_by_run_id("run-1") or {}) == expected[nested["id"]]
    by_request = await store.find_by_request_id(nested["request_id"])
    assert dict(by_request or {}) == expected[nested["id"]]
    assert await store.get(uuid.uuid4()) is None

    # get_many: live rows only, keyed by id.
    many = await store.get_many([nested["id"], plain["id"], gone["id"], uuid.uuid4()])
    assert sorted(many) == sorted([nested["id"], plain["id"]])
    assert {key: typed(dict(row)) for key, row in many.items()} == {
        key: typed(expected[key]) for key in many
    }

    # The trial sums: the same Trials as from SQLAlchemy's rows.
    sums = await sqlalchemy_rows(engine, trial_sums.OF_STRATEGY.params(strategy_id=STRATEGY))
    assert await store.trials(STRATEGY) == trial_sums.trials_of(sums)
    assert (await store.trials(STRATEGY))["sharpe"].count == 2


async def backends(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        own = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        result = await connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return [own, *result.scalars()]


async def test_connections_the_server_closed_in_the_pool_cost_no_call(
    engine: AsyncEngine, migrated_postgres: str
) -> None:
    store = ExperimentStore(engine)
    row = await store.insert(record())
    # Fill the pool: three reads at once hold three connections.
    await asyncio.gather(*(store.get(row["id"]) for _ in range(3)))
    pids = await backends(engine)
    assert len(pids) >= 3

    admin = await asyncpg.connect(migrated_postgres.replace("+psycopg2", ""))
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # asyncpg reads each connection's end

    # Every pooled connection is dead; every read still answers.
    for found in await asyncio.gather(*(store.get(row["id"]) for _ in range(3))):
        assert found is not None
        assert found["id"] == row["id"]
    assert set(await backends(engine)).isdisjoint(pids)


async def waiting_on_a_lock(connection: asyncpg.Connection, pid: int) -> bool:
    found = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", pid
    )
    return bool(found)


@pytest.mark.parametrize("ending", ["timeout", "cancelled"])
async def test_a_read_that_ends_mid_query_stops_on_the_server_and_keeps_its_connection(
    engine: AsyncEngine, migrated_postgres: str, ending: str
) -> None:
    store = ExperimentStore(engine)
    row = await store.insert(record())
    # One call at a time: the pool holds one connection, the one the read gets.
    before = (await backends(engine))[0]
    locker = await asyncpg.connect(migrated_postgres.replace("+psycopg2", ""))
    try:
        async with locker.transaction():
            # A table lock makes the read wait: past its statement timeout
            # (2 s), or until the call is cancelled (a caller's deadline).
            await locker.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
            read = asyncio.ensure_future(store.get(row["id"]))
            if ending == "timeout":
                with pytest.raises(TimeoutError) as raised:
                    await read
                error = translate_error(raised.value)
                assert isinstance(error, Unavailable)
                assert error.message == "the database is unavailable; retry later"
            else:
                async with asyncio.timeout(5):
                    while not await waiting_on_a_lock(locker, before):  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                read.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await read
            # Still under the lock: the read's statement was cancelled on
            # the server, not left waiting there for the lock to go.
            async with asyncio.timeout(5):
                while await waiting_on_a_lock(locker, before):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
    finally:
        await locker.close()
    for _ in range(4):
        found = await store.get(row["id"])
        assert found is not None
        assert found["revision"] == 1
    # The same connection serves: nothing was lost with the read.
    assert (await backends(engine))[0] == before


async def test_driver_reads_take_named_parameters_only(engine: AsyncEngine) -> None:
    reads = DriverReads(engine)
    table = ExperimentRow.__table__
    with pytest.raises(ValueError, match="named parameters only"):
        await reads.rows(select(table).where(table.c.revision == 3), {})


async def test_a_connect_the_server_refuses_is_unavailable(migrated_postgres: str) -> None:
    # The server answers, and refuses: asyncpg raises a PostgreSQL error,
    # which the dialect turns into its DB-API error on a pool connect.
    missing = migrated_postgres.rsplit("/", 1)[0] + f"/no_such_database_{uuid.uuid4().hex}"
    engine = create_engine(missing, timeout=2)
    try:
        with pytest.raises(Exception) as raised:  # noqa: PT011 - translated below
            await ExperimentStore(engine).get(uuid.uuid4())
    finally:
        await engine.dispose()
    error = translate_error(raised.value)
    assert isinstance(error, Unavailable)
    assert error.message == "the database is unavailable; retry later"
