"""`python -m gateway`: the HTTP/JSON gateway in front of the experiments and
tracking services, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from gateway.config import Settings
from gateway.server import create_server
from research_common.config import ConfigError
from research_common.logging import configure_logging

log = logging.getLogger("gateway")


async def _serve(settings: Settings) -> None:
    server, port = create_server(settings, settings.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    log.info("listening on %s (port %d)", settings.address, port, extra={"port": port})
    stopped = asyncio.ensure_future(server.wait())
    signalled = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopped, signalled], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("stopping: draining in-flight requests for up to %.1f s", settings.shutdown_grace)
    await server.stop()
    signalled.cancel()
    log.info("stopped")


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"gateway: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging("gateway", settings.log_level)
    try:
        asyncio.run(_serve(settings))
    except OSError as error:  # typically: the address is taken
        print(f"gateway: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
