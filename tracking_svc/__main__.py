"""`python -m tracking_svc` serves TrackingService on TRACKING_ADDR over the
MLflow store that MLFLOW_TRACKING_URI names."""

from __future__ import annotations

import argparse
import logging
import sys

from research_common.runner import run_main, serve_until_signalled
from tracking_svc.config import Settings
from tracking_svc.process import configure_process


def _prepare(settings: Settings) -> None:
    configure_process(settings)
    # MLflow upgrades its own store schema with Alembic, one INFO line per
    # revision; only problems are worth a line.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


async def _serve(settings: Settings) -> None:
    # Imported here so that a configuration error is reported before the
    # second or so that importing MLflow takes.
    from tracking_svc.server import create_server

    server, _ = await create_server(settings, settings.address)
    await serve_until_signalled(server, settings.shutdown_grace, settings.address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking_svc", description=__doc__)
    parser.parse_args(argv)
    return run_main("tracking_svc", Settings.from_env, _serve, prepare=_prepare)


if __name__ == "__main__":
    sys.exit(main())
