"""A PostgreSQL database of the harness's own: created, migrated with the
service's own Alembic migrations, bulk-loaded server-side with
generate_series, and dropped at the end.

Rows are spread over `STRATEGIES` strategies and `DATASETS` dataset
versions, newest first by one second per row, so that a filtered page is a
realistic slice and the strategy and lineage filters select 1/100 and 1/1000
of the table."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg  # the service's own driver
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine, make_url

from experiments_svc import trial_sums
from experiments_svc.db import create_engine
from experiments_svc.migrate import migrate
from experiments_svc.models import TrialSumRow

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
STRATEGIES = 100
DATASETS = 1000


def admin_url() -> str:
    return (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or DEFAULT_ADMIN_URL
    )


def strategy_id(k: int) -> uuid.UUID:
    """The k-th strategy; the same md5-based UUID the SQL loader computes."""
    return uuid.UUID(hashlib.md5(f"strategy-{k}".encode()).hexdigest())


def dataset_version(k: int) -> str:
    return f"ds-{k:04d}"


@contextlib.asynccontextmanager
async def bench_database(name: str, migrated: bool = True) -> AsyncIterator[str]:
    """A fresh database `name`, migrated by this checkout's code unless
    `migrated` is False (empty, for another commit's code to migrate);
    yields its URL, drops it after."""
    admin = admin_url()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        if migrated:
            engine = create_engine(url, timeout=30)
            try:
                await migrate(engine)
            finally:
                await engine.dispose()
        yield url
    finally:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


# Row i (1-based) of the whole data set; `created_at` goes back one second
# per row from a fixed instant, so row 1 is the newest.
_LOAD = f"""
INSERT INTO experiments (
    id, strategy_id, dataset_version, feature_version, model_version,
    git_commit_hash, mlflow_run_id, parameters, metrics, artifacts,
    created_at, updated_at)
SELECT
    gen_random_uuid(),
    md5('strategy-' || (i % {STRATEGIES}))::uuid,
    'ds-' || lpad((i % {DATASETS})::text, 4, '0'),
    'fv-' || (i % 50),
    'mv-' || (i % 20),
    substr(md5(i::text), 1, 12),
    NULL,
    jsonb_build_object('max_depth', i % 12, 'learning_rate', 0.01 * (i % 9), 'seed', i),
    jsonb_build_object('oos_sharpe', (i % 300) / 100.0, 'mse', (i % 97) / 1000.0),
    jsonb_build_object('model', 's3://research-artifacts/models/' || i || '/model.pkl'),
    timestamptz '2026-01-01 00:00:00+00' - make_interval(secs => i),
    timestamptz '2026-01-01 00:00:00+00' - make_interval(secs => i)
FROM generate_series($1::bigint, $2::bigint) AS i
"""


TRIAL_SUMS = TrialSumRow.__tablename__


async def load_rows(url: str, first: int, last: int) -> None:
    """Rows `first`..`last` (inclusive), in one server-side statement; then
    ANALYZE so the planner knows the table's new size, and the trial sums
    worked out again (they are kept by the service's writes, which these
    rows bypass), where the schema has them."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(_LOAD, first, last, timeout=900)
        await connection.execute("ANALYZE experiments")
    finally:
        await connection.close()
    engine = create_engine(url, timeout=900)
    try:
        async with engine.begin() as sums:
            if await sums.run_sync(lambda bind: inspect(bind).has_table(TRIAL_SUMS)):
                await sums.run_sync(trial_sums.rebuild)
    finally:
        await engine.dispose()


async def fetch_ids(url: str, count: int) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT id FROM experiments ORDER BY created_at DESC, id DESC LIMIT $1", count
        )
    finally:
        await connection.close()
    return [str(row["id"]) for row in rows]


async def position_at(url: str, depth: int) -> tuple[str, str]:
    """(created_at in ISO form, id hex) of the row `depth` rows into the
    newest-first order: where a page token `depth` rows deep points."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await connection.fetchrow(
            "SELECT created_at, id FROM experiments ORDER BY created_at DESC, id DESC "
            "OFFSET $1 LIMIT 1",
            depth - 1,
        )
    finally:
        await connection.close()
    if row is None:
        raise RuntimeError(f"the table has fewer than {depth} rows")
    return row["created_at"].isoformat(), row["id"].hex


async def explain(url: str, sql: str, *args: object) -> str:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    finally:
        await connection.close()
    return "\n".join(str(row[0]) for row in rows)


async def execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(sql, timeout=900)
    finally:
        await connection.close()


async def relation_mb(url: str, name: str) -> float:
    """The size of a table or index on disk, in MiB."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        size = await connection.fetchval("SELECT pg_relation_size($1::regclass)", name)
    finally:
        await connection.close()
    return int(size) / 2**20


Sent = list[tuple[str, tuple[Any, ...]]]


@contextlib.contextmanager
def statements_sent() -> Iterator[Sent]:
    """Every statement, with its parameters, that the SQLAlchemy engines of
    this process hand their driver while inside: what an in-process service
    ran, exactly, to EXPLAIN rather than a query written again by hand."""
    sent: Sent = []

    def record(
        connection: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        sent.append((statement, tuple(parameters or ())))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants postgresql://, without a SQLAlchemy driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
