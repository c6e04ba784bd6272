"""Applying the Alembic migrations, at start-up or from the command line
(`python -m experiments_svc migrate`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# Alembic is imported only when a migration runs: with AUTO_MIGRATE=false (a
# deployment that migrates in a separate step) the service never loads it,
# nor the Mako templates it brings, about 11 MB of resident memory.
if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("experiments.migrate")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Held while migrating on PostgreSQL, so that replicas starting together
# migrate one at a time instead of racing to create the same table.
_ADVISORY_LOCK_KEY = 0x7265736561726368  # "research"


def _load_alembic() -> None:
    # Mako (Alembic's template engine, used for `revision`, never here) would
    # pull in Pygments to colour the tracebacks of its HTML error pages: about
    # 4.5 MB for nothing. A None entry makes that optional import fail, and
    # Mako falls back to plain escaping. Set only if nothing loaded it yet.
    sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]


def alembic_config(connection: Connection | None = None) -> Config:
    _load_alembic()
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _apply(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config(connection)
    from alembic import command

    before = current_revision(connection)
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)
    after = current_revision(connection)
    # One line for what changed, instead of Alembic's own lines (its set-up
    # chatter and one line per revision, logged as DEBUG: research_common.logging);
    # nothing when the schema was already there.
    if after != before:
        log.info(
            "database schema %sd from %s to %s",
            action,
            before or "empty",
            after or "empty",
            extra={"revision": after},
        )


async def migrate(engine: AsyncEngine, action: str = "upgrade", revision: str = "head") -> None:
    """Upgrade (or downgrade) the database to `revision` in one transaction."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
            )
        await connection.run_sync(_apply, action, revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None when never migrated)."""
    _load_alembic()
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
