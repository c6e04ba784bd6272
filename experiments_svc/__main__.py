"""`python -m experiments_svc` serves; `python -m experiments_svc migrate`
applies the migrations and exits (for deployments that migrate in a separate
step and start the service with AUTO_MIGRATE=false)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from experiments_svc.config import Settings
from experiments_svc.db import create_engine
from experiments_svc.migrate import migrate
from experiments_svc.server import create_server
from research_common.config import ConfigError
from research_common.logging import configure_logging
from research_common.server import serve_until_signalled

log = logging.getLogger("experiments")


async def _serve(settings: Settings) -> None:
    server, _ = await create_server(settings, settings.address)
    await serve_until_signalled(server, settings.shutdown_grace, settings.address)


async def _migrate(settings: Settings, action: str, revision: str) -> None:
    engine = create_engine(settings.database_url, timeout=settings.db_timeout)
    try:
        await migrate(engine, action, revision)
    finally:
        await engine.dispose()
    log.info("database at revision %s", revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments_svc", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    upgrade = commands.add_parser("migrate", help="upgrade the database schema and exit")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = commands.add_parser("downgrade", help="downgrade the database schema and exit")
    downgrade.add_argument("revision")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"experiments_svc: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging("experiments_svc", settings.log_level)
    try:
        if args.command is None:
            asyncio.run(_serve(settings))
        else:
            action = "upgrade" if args.command == "migrate" else "downgrade"
            asyncio.run(_migrate(settings, action, args.revision))
    except ConfigError as error:
        print(f"experiments_svc: configuration error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:
        # Typically: the database is unreachable at start-up, or the address
        # is taken. One line, not a traceback.
        print(f"experiments_svc: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
