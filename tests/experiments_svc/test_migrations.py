"""The Alembic migrations: empty to head and back, on both databases, a
migrated schema that matches the models, the revisions back-filled for rows
that predate them, and the trigger that keeps revisions append-only."""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import String, Uuid, column, exc, insert, inspect, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from experiments_svc.convert import revision_to_proto
from experiments_svc.db import create_engine
from experiments_svc.migrate import current_revision, migrate
from experiments_svc.models import Base, JsonDocument, UTCDateTime
from experiments_svc.store import ExperimentStore
from tests.experiments_svc.records import stored_record
from tests.fixtures.postgres import create_database, drop_database, postgres_url

EXPECTED_INDEXES = {
    "ix_experiments_created_at_id": ["created_at", "id"],
    "ix_experiments_strategy_id_created_at_id": ["strategy_id", "created_at", "id"],
    "ix_experiments_dataset_version_created_at_id": ["dataset_version", "created_at", "id"],
    "ix_experiments_feature_version_created_at_id": ["feature_version", "created_at", "id"],
    "ix_experiments_model_version_created_at_id": ["model_version", "created_at", "id"],
    "ix_experiments_git_commit_hash_created_at_id": ["git_commit_hash", "created_at", "id"],
    "ux_experiments_mlflow_run_id": ["mlflow_run_id"],
    "ux_experiments_request_id": ["request_id"],
}
UNIQUE_INDEXES = {"ux_experiments_mlflow_run_id", "ux_experiments_request_id"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = create_database("research_migrations")
    yield postgres_url(name)
    drop_database(name)


# experiments as every migration has it (the columns a test writes), for
# rows written as an older version of the service would have.
_EXPERIMENTS = table(
    "experiments",
    column("id", Uuid()),
    column("strategy_id", Uuid()),
    column("dataset_version", String()),
    column("parameters", JsonDocument),
    column("metrics", JsonDocument),
    column("artifacts", JsonDocument),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
    column("deleted_at", UTCDateTime()),
)


async def _insert_raw(connection: AsyncConnection, **values: Any) -> None:
    """One experiments row written behind the service's back."""
    await connection.execute(insert(_EXPERIMENTS).values(artifacts={}, **values))


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    found = inspector.get_indexes("experiments") if "experiments" in tables else []
    return {
        "tables": tables,
        "indexes": {ix["name"]: ix["column_names"] for ix in found},
        "unique": {ix["name"] for ix in found if ix["unique"]},
        "revision": current_revision(connection),
    }


def _model_drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_to_head_and_downgrade_to_base(empty_database: str) -> None:
    engine = create_engine(empty_database, timeout=5)
    try:
        async with engine.connect() as connection:
            before = await connection.run_sync(_schema)
        assert before == {"tables": set(), "indexes": {}, "unique": set(), "revision": None}

        await migrate(engine)
        async with engine.connect() as connection:
            after = await connection.run_sync(_schema)
            drift = await connection.run_sync(_model_drift)
        assert after["tables"] == {
            "experiments",
            "experiment_revisions",
            "strategy_trials",
            "alembic_version",
        }
        assert after["indexes"] == EXPECTED_INDEXES
        assert after["unique"] == UNIQUE_INDEXES
        assert after["revision"] == "0004"
        assert drift == []  # the migrations build exactly what the models describe

        await migrate(engine)  # idempotent at head
        await migrate(engine, "downgrade", "base")
        async with engine.connect() as connection:
            back = await connection.run_sync(_schema)
        assert back == {
            "tables": {"alembic_version"},
            "indexes": {},
            "unique": set(),
            "revision": None,
        }
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_stores_documents_as_jsonb(migrated_postgres: str) -> None:
    engine = create_engine(migrated_postgres, timeout=5)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {
                    c["name"]: c["type"] for c in inspect(sync).get_columns("experiments")
                }
            )
    finally:
        await engine.dispose()
    assert {name: str(columns[name]) for name in ("parameters", "metrics", "artifacts", "id")} == {
        "parameters": "JSONB",
        "metrics": "JSONB",
        "artifacts": "JSONB",
        "id": "UUID",
    }
    assert getattr(columns["created_at"], "timezone", None) is True
    assert getattr(columns["updated_at"], "timezone", None) is True


async def test_0003_backfills_one_create_revision_per_experiment(empty_database: str) -> None:
    """Rows written before revisions existed each get revision 1, `create`,
    holding the row as it stands, and every set field."""
    engine = create_engine(empty_database, timeout=5)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(3)]
    try:
        await migrate(engine, "upgrade", "0002")
        async with engine.begin() as connection:
            for index, experiment_id in enumerate(ids):
                await _insert_raw(
                    connection,
                    id=experiment_id,
                    strategy_id=ids[0],
                    dataset_version=f"ds-{index}" if index else None,
                    parameters={"n": index},
                    metrics={},
                    created_at=moment,
                    updated_at=moment,
                )
        await migrate(engine)
        store = ExperimentStore(engine)
        for index, experiment_id in enumerate(ids):
            found = await store.revisions(experiment_id, 10, None)
            assert len(found) == 1
            revision = revision_to_proto(found[0])
            assert (revision.revision, revision.action) == (1, "create")
            assert not revision.HasField("actor")
            assert revision.recorded_at.ToDatetime(UTC) == moment
            assert revision.experiment.id == str(experiment_id)
            assert revision.experiment.revision == 1
            assert revision.experiment.parameters["n"] == index
            expected = ["strategy_id", "parameters"]
            if index:
                expected.insert(1, "dataset_version")
            assert list(revision.changed_fields) == expected
            row = await store.get(experiment_id)
            assert row is not None
            assert (row["revision"], row["deleted_at"]) == (1, None)
    finally:
        await engine.dispose()


async def test_0004_fills_the_trial_sums_of_the_experiments_that_exist(
    empty_database: str,
) -> None:
    """Rows written before the sums existed, deleted ones included, are in
    them as the write path would have put them; other metrics are not."""
    engine = create_engine(empty_database, timeout=5)
    strategy, other = uuid.uuid4(), uuid.uuid4()
    rows: list[tuple[uuid.UUID, dict[str, Any], dict[str, Any]]] = [
        (strategy, {"sharpe": 1.5, "mse": 0.1}, {"periods_per_year": 252}),
        (strategy, {"sharpe": -0.25}, {"periods_per_year": "12"}),
        (strategy, {"sharpe": 2}, {}),
        (strategy, {"sharpe": 3.0}, {"periods_per_year": "weekly"}),
        (strategy, {"sharpe": "high", "oos_sharpe": 0.5}, {}),
        (other, {"sharpe": 9.0}, {}),
    ]
    try:
        await migrate(engine, "upgrade", "0003")
        async with engine.begin() as connection:
            for index, (strategy_id, metrics, parameters) in enumerate(rows):
                created = datetime(2026, 1, 1, tzinfo=UTC)
                await _insert_raw(
                    connection,
                    id=uuid.uuid4(),
                    strategy_id=strategy_id,
                    parameters=parameters,
                    metrics=metrics,
                    created_at=created,
                    updated_at=created,
                    deleted_at=datetime(2026, 1, 2, tzinfo=UTC) if index == 1 else None,
                )
        await migrate(engine)
        store = ExperimentStore(engine)
        found = await store.trials(strategy)
        assert sorted(found) == ["oos_sharpe", "sharpe"]
        sharpe = [1.5 / math.sqrt(252), -0.25 / math.sqrt(12), 2]
        assert (found["sharpe"].count, found["sharpe"].unusable) == (3, 1)
        assert found["sharpe"].variance == statistics.variance(sharpe)
        assert (found["oos_sharpe"].count, found["oos_sharpe"].variance) == (1, None)
        assert (await store.trials(other))["sharpe"].count == 1
    finally:
        await engine.dispose()


async def test_the_database_refuses_to_rewrite_a_revision(empty_database: str) -> None:
    """A trigger, not only the code: raw SQL cannot update or delete one."""
    engine = create_engine(empty_database, timeout=5)
    try:
        await migrate(engine)
        store = ExperimentStore(engine)
        row = await store.insert(stored_record(metrics={"sharpe": 1.0}))
        for statement in (
            "UPDATE experiment_revisions SET action = 'update'",
            "DELETE FROM experiment_revisions",
        ):
            with pytest.raises(exc.DBAPIError, match="experiment revisions are append-only"):
                async with engine.begin() as connection:
                    await connection.execute(text(statement))
        assert len(await store.revisions(row["id"], 10, None)) == 1
    finally:
        await engine.dispose()
