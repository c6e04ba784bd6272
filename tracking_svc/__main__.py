"""`python -m tracking_svc` serves TrackingService on TRACKING_ADDR over the
MLflow store that MLFLOW_TRACKING_URI names."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from research_common.config import ConfigError
from research_common.logging import configure_logging
from research_common.server import serve_until_signalled
from tracking_svc.config import Settings


async def _serve(settings: Settings) -> None:
    # Imported here so that a configuration error is reported before the
    # second or so that importing MLflow takes.
    from tracking_svc.server import create_server

    server, _ = await create_server(settings, settings.address)
    await serve_until_signalled(server, settings.shutdown_grace, settings.address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking_svc", description=__doc__)
    parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"tracking_svc: configuration error: {error}", file=sys.stderr)
        return 2
    # MLflow's loggers then propagate to ours (JSON lines) instead of
    # printing in their own format.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    configure_logging("tracking_svc", settings.log_level)
    # MLflow upgrades its own store schema with Alembic, one INFO line per
    # revision; only problems are worth a line.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        asyncio.run(_serve(settings))
    except (OSError, RuntimeError) as error:
        # Typically: the address is taken. One line, not a traceback.
        print(f"tracking_svc: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
