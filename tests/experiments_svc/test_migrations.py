"""The Alembic migrations: empty to head and back, on both databases, and a
migrated schema that matches the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from experiments_svc.db import create_engine
from experiments_svc.migrate import current_revision, migrate
from experiments_svc.models import Base
from tests.fixtures.postgres import create_database, drop_database, postgres_url

EXPECTED_INDEXES = {
    "ix_experiments_created_at_id": ["created_at", "id"],
    "ix_experiments_strategy_id_created_at_id": ["strategy_id", "created_at", "id"],
    "ix_experiments_dataset_version_created_at_id": ["dataset_version", "created_at", "id"],
    "ix_experiments_feature_version_created_at_id": ["feature_version", "created_at", "id"],
    "ix_experiments_model_version_created_at_id": ["model_version", "created_at", "id"],
    "ix_experiments_git_commit_hash_created_at_id": ["git_commit_hash", "created_at", "id"],
    "ux_experiments_mlflow_run_id": ["mlflow_run_id"],
}
UNIQUE_INDEXES = {"ux_experiments_mlflow_run_id"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = create_database("research_migrations")
    yield postgres_url(name)
    drop_database(name)


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
        assert after["tables"] == {"experiments", "alembic_version"}
        assert after["indexes"] == EXPECTED_INDEXES
        assert after["unique"] == UNIQUE_INDEXES
        assert after["revision"] == "0002"
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
