"""The experiments service's integration tests again, with the service
reaching PostgreSQL through a real PgBouncer in transaction pooling mode
(CONTRACT §13) and DB_TRANSACTION_POOLING on.

Each `test_*.py` here imports the tests of the module of the same name one
folder up; the fixtures below stand in for that folder's. The schema is
migrated straight on PostgreSQL first (`migrated_postgres`), as a deployment
runs its migration step, and the service starts with AUTO_MIGRATE off. Rows
that a test writes into the database itself (`database_url`) go there
directly; only the service goes through the pooler. A test that does not
start the service with `settings` (one that builds settings of its own, or
needs no service at all) would only repeat its run one folder up, and is
deselected here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from experiments_svc.config import Settings
from testbed.pgbouncer import PgBouncer
from tests.fixtures.pgbouncer import pooled_settings
from tests.fixtures.postgres import truncate_experiments

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [
        item
        for item in items
        if item.path.parent == HERE and "settings" not in getattr(item, "fixturenames", ())
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture
def database_url(migrated_postgres: str) -> str:
    """The session's PostgreSQL database, emptied, reached directly."""
    asyncio.run(truncate_experiments(migrated_postgres))
    return migrated_postgres


@pytest.fixture
def settings(database_url: str, pgbouncer: PgBouncer) -> Settings:
    """The service on that database through the pooler."""
    return pooled_settings(pgbouncer, database_url)
