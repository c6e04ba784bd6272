"""Alembic environment of the experiments service.

Migrations normally run through `experiments_svc.migrate`, which hands over
an open connection (`config.attributes["connection"]`). Run from the alembic
command line instead, the URL comes from DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from experiments_svc.config import DEFAULT_DATABASE_URL
from experiments_svc.db import create_engine
from experiments_svc.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = create_engine(url, timeout=30)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")

_connection = context.config.attributes.get("connection")
if _connection is None:
    asyncio.run(_run_from_url(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL))
else:
    _run(_connection)
