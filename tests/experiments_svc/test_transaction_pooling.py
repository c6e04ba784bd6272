"""DB_TRANSACTION_POOLING (CONTRACT §13): the service behind a real PgBouncer
in transaction pooling mode (testbed.pgbouncer, 5 server connections for the
service's 20) under concurrent mixed load, with the setting and without it;
what it leaves on the server connections; migrations through the pooler.

The integration tests themselves run through the pooler in
tests/experiments_svc/through_pgbouncer/."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc import aio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from experiments_svc.config import Settings
from experiments_svc.db import create_engine
from experiments_svc.migrate import migrate
from experiments_svc.server import create_server
from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from research_common.config import ConfigError
from testbed.pgbouncer import PgBouncer
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import struct
from tests.fixtures.pgbouncer import POOL_SIZE, pooled_settings, through
from tests.fixtures.postgres import ADMIN_URL, create_database, drop_database, postgres_url

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub

# Concurrent calls per round, and rounds, of the mixed load.
WIDTH = 50
ROUNDS = 3
SEEDED = 10


def test_the_setting_is_off_unless_set() -> None:
    assert Settings().db_transaction_pooling is False
    assert Settings.from_env({"DB_TRANSACTION_POOLING": ""}).db_transaction_pooling is False
    assert Settings.from_env({"DB_TRANSACTION_POOLING": "true"}).db_transaction_pooling is True
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"DB_TRANSACTION_POOLING": "pgbouncer"})
    assert str(raised.value) == "DB_TRANSACTION_POOLING must be true or false, got 'pgbouncer'"


async def test_sqlite_takes_the_setting_and_ignores_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db", timeout=5, transaction_pooling=True)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


# --- through PgBouncer ------------------------------------------------------------


async def _migrate(url: str, *, transaction_pooling: bool = False) -> None:
    engine = create_engine(url, timeout=10, transaction_pooling=transaction_pooling)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database of the test's own on the test server, reached
    directly."""
    name = create_database("pooling")
    yield postgres_url(name)
    drop_database(name)


@pytest.fixture
def migrated_database(fresh_database: str) -> str:
    """That database migrated directly, as a deployment's migration step does."""
    asyncio.run(_migrate(fresh_database))
    return fresh_database


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[ExperimentServiceAsyncStub]:
    server, port = await create_server(settings, "127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield experiments_pb2_grpc.ExperimentServiceStub(channel)
    finally:
        await server.stop(0)


@dataclass
class Load:
    """What a mixed load did: the calls that failed (kind, code, details),
    the experiments it created, and the updates each experiment took."""

    failures: list[tuple[str, grpc.StatusCode, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updates: collections.Counter[str] = field(default_factory=collections.Counter)


async def seed(database_url: str) -> list[str]:
    """SEEDED experiments, written by the service straight on PostgreSQL."""
    settings = Settings(database_url=database_url, auto_migrate=False, health_interval=60)
    async with serving(settings) as stub:
        return [
            (await stub.CreateExperiment(request)).experiment.id
            for request in [
                pb.CreateExperimentRequest(strategy_id=STRATEGY, metrics=struct({"seed": n}))
                for n in range(SEEDED)
            ]
        ]


async def mixed_load(stub: ExperimentServiceAsyncStub, seeded: list[str]) -> Load:
    """ROUNDS rounds of WIDTH concurrent calls: creates, gets, lists of 100,
    updates of the seeded experiments (several at once on one row, each
    waiting for the row's lock) and lists of their revisions, in turn."""
    load = Load(created=list(seeded))
    pick = random.Random(17)

    async def call(n: int) -> None:
        target = pick.choice(seeded)
        kind = ("create", "get", "list", "update", "revisions")[n % 5]
        try:
            if kind == "create":
                created = await stub.CreateExperiment(
                    pb.CreateExperimentRequest(strategy_id=STRATEGY, dataset_version=f"ds-{n}")
                )
                load.created.append(created.experiment.id)
            elif kind == "get":
                await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=target))
            elif kind == "list":
                await stub.ListExperiments(pb.ListExperimentsRequest(page_size=100))
            elif kind == "update":
                await stub.UpdateExperiment(
                    pb.UpdateExperimentRequest(
                        experiment_id=target,
                        # A value no experiment holds yet: each update is a change.
                        experiment=pb.Experiment(metrics=struct({"update": n})),
                        update_mask=field_mask_pb2.FieldMask(paths=["metrics"]),
                    )
                )
                load.updates[target] += 1
            else:
                await stub.ListExperimentRevisions(
                    pb.ListExperimentRevisionsRequest(experiment_id=target)
                )
        except aio.AioRpcError as error:
            load.failures.append((kind, error.code(), error.details() or ""))

    for round_ in range(ROUNDS):
        await asyncio.gather(*(call(round_ * WIDTH + n) for n in range(WIDTH)))
    return load


async def server_connections(database_url: str) -> int:
    """How many client connections PostgreSQL has open to the database
    (autovacuum's workers are not clients)."""
    admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        count = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = $1 AND backend_type = 'client backend'",
            make_url(database_url).database,
        )
    finally:
        await admin.close()
    return int(count)


async def prepared_statements_left(pgbouncer: PgBouncer, database_url: str) -> dict[int, int]:
    """Prepared statements on each server connection PgBouncer holds for the
    database: POOL_SIZE transactions held open through the pooler at once
    land on POOL_SIZE different server connections, each of which reports
    its own (by backend pid)."""
    url = through(pgbouncer, database_url)
    ready = asyncio.Barrier(POOL_SIZE)

    async def ask() -> tuple[int, int]:
        connection = await asyncpg.connect(url, timeout=5, statement_cache_size=0)
        try:
            async with connection.transaction():
                row = await connection.fetchrow(
                    "SELECT pg_backend_pid() AS pid,"
                    " (SELECT count(*) FROM pg_prepared_statements) AS prepared"
                )
                assert row is not None
                await ready.wait()  # every transaction open before any ends
                return int(row["pid"]), int(row["prepared"])
        finally:
            await connection.close()

    return dict(await asyncio.gather(*(ask() for _ in range(POOL_SIZE))))


@pytest.mark.postgres
async def test_mixed_load_through_the_pooler_with_the_setting(
    pgbouncer: PgBouncer, migrated_database: str
) -> None:
    """150 calls, 50 at a time, through 5 server connections: none fails,
    every write is there afterwards, and no server connection is left
    holding a prepared statement."""
    seeded = await seed(migrated_database)
    settings = pooled_settings(pgbouncer, migrated_database, setting=True)
    async with serving(settings) as stub:
        load = await mixed_load(stub, seeded)
        assert load.failures == []
        listed = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=1000))
        assert sorted(e.id for e in listed.experiments) == sorted(load.created)
        assert len(load.created) == SEEDED + ROUNDS * WIDTH // 5
        for experiment_id, updates in load.updates.items():
            got = await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id))
            assert got.experiment.revision == 1 + updates, experiment_id
        # The service's pool holds up to 20 connections (to the pooler);
        # PostgreSQL saw the pooler's few.
        assert await server_connections(migrated_database) <= POOL_SIZE
    left = await prepared_statements_left(pgbouncer, migrated_database)
    assert len(left) == POOL_SIZE  # the pooler's whole pool, each asked
    assert set(left.values()) == {0}


@pytest.mark.postgres
async def test_the_same_load_fails_without_the_setting(
    pgbouncer: PgBouncer, migrated_database: str
) -> None:
    """Why the setting exists: without it the drivers' named, cached
    statements meet other clients' server connections, and calls fail
    (UNAVAILABLE, as every database error the service cannot place), and
    the statements pile up on the server connections."""
    seeded = await seed(migrated_database)
    settings = pooled_settings(pgbouncer, migrated_database, setting=False)
    async with serving(settings) as stub:
        load = await mixed_load(stub, seeded)
    assert load.failures, "every call succeeded through the pooler without the setting"
    assert {code for _, code, _ in load.failures} == {grpc.StatusCode.UNAVAILABLE}
    left = await prepared_statements_left(pgbouncer, migrated_database)
    assert sum(left.values()) > 0


@pytest.mark.postgres
async def test_migrations_run_through_the_pooler(pgbouncer: PgBouncer, fresh_database: str) -> None:
    """A deployment migrates straight on PostgreSQL, but a migration through
    the pooler works too: it is one transaction, and the lock that keeps two
    replicas from migrating at once is held by that transaction. Two at
    once, as two replicas starting together with AUTO_MIGRATE: both finish,
    the schema is at head once."""
    url = through(pgbouncer, fresh_database)
    await asyncio.gather(
        _migrate(url, transaction_pooling=True), _migrate(url, transaction_pooling=True)
    )
    connection = await asyncpg.connect(fresh_database, timeout=5)
    try:
        versions = await connection.fetch("SELECT version_num FROM alembic_version")
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'experiment%'"
        )
    finally:
        await connection.close()
    assert len(versions) == 1
    assert tables == 2
    settings = pooled_settings(pgbouncer, fresh_database, setting=True)
    async with serving(settings) as stub:
        created = await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
        assert created.experiment.revision == 1
    assert uuid.UUID(created.experiment.id)
