"""`python -m experiments_svc` serves; `python -m experiments_svc migrate`
applies the migrations and exits (for deployments that migrate in a separate
step and start the service with AUTO_MIGRATE=false)."""

from __future__ import annotations

import argparse
import logging
import sys

from experiments_svc.config import Settings
from experiments_svc.db import engine_for
from experiments_svc.migrate import migrate
from experiments_svc.server import create_server
from research_common.runner import run_main, serve_until_signalled

log = logging.getLogger("experiments")


async def _serve(settings: Settings) -> None:
    server, _ = await create_server(settings, settings.address)
    await serve_until_signalled(server, settings.shutdown_grace, settings.address)


async def _migrate(settings: Settings, action: str, revision: str) -> None:
    engine = engine_for(settings)
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
    if args.command is None:
        return run_main("experiments_svc", Settings.from_env, _serve)
    action = "upgrade" if args.command == "migrate" else "downgrade"
    return run_main(
        "experiments_svc", Settings.from_env, lambda s: _migrate(s, action, args.revision)
    )


if __name__ == "__main__":
    sys.exit(main())
