"""`python -m gateway`: the HTTP/JSON gateway in front of the experiments and
tracking services, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import sys

from gateway.config import Settings
from gateway.server import GatewayServer, create_server
from research_common.runner import run_main, serve_until_signalled

log = logging.getLogger("gateway")


class _Runnable:
    """The gateway server as research_common.runner drives it. Its grace
    period is uvicorn's, fixed when it is built (SHUTDOWN_GRACE), so `stop`
    takes none."""

    def __init__(self, server: GatewayServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await self._server.start()

    async def wait(self) -> None:
        await self._server.wait()

    async def stop(self, grace: float) -> None:
        await self._server.stop()


async def _serve(settings: Settings) -> None:
    server, _ = create_server(settings, settings.address)
    await serve_until_signalled(
        _Runnable(server), settings.shutdown_grace, settings.address, log=log, in_flight="requests"
    )


def main() -> int:
    return run_main("gateway", Settings.from_env, _serve)


if __name__ == "__main__":
    sys.exit(main())
