"""The gateway's HTTP server: uvicorn (httptools parser) serving the ASGI
`Gateway`, built by a factory that tests call with port 0 and `main()`
calls with GATEWAY_ADDR."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Sequence

import uvicorn

from gateway import uvicorn_adapter
from gateway.app import Gateway
from gateway.config import Settings
from gateway.upstreams import Upstream, Upstreams
from research.experiments.v1 import experiments_pb2
from research.tracking.v1 import tracking_pb2

START_WITHIN = 10.0  # seconds


def default_upstreams(settings: Settings) -> list[Upstream]:
    """The two services of the backbone, at their configured addresses."""
    return [
        Upstream(
            "experiments",
            settings.experiments_address,
            (experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"],),
        ),
        Upstream(
            "tracking",
            settings.tracking_address,
            (tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"],),
        ),
    ]


class GatewayServer:
    """A bound, startable gateway; `port` is known before `start()`."""

    def __init__(self, app: Gateway, sock: socket.socket, grace: float) -> None:
        self.app = app
        self.port: int = sock.getsockname()[1]
        self._socket = sock
        # A request head must arrive within the request deadline, as the
        # body must (gateway/http.py).
        self.adapter = adapter = uvicorn_adapter.check(head_timeout=app.settings.timeout)
        config = uvicorn.Config(
            app,
            http=adapter.http,
            loop="none",
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(grace),
        )
        self._server = adapter.server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve; return once the application has started. The socket
        listens already, so a connection made before uvicorn accepts its
        first one waits in the backlog rather than being refused."""
        self._socket.listen(socket.SOMAXCONN)
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._socket])
        )
        started = asyncio.ensure_future(self.app.started.wait())
        try:
            async with asyncio.timeout(START_WITHIN):
                await asyncio.wait((started, self._task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if self._task.done():
            await self._task  # raises what stopped it
            raise RuntimeError("the HTTP server stopped during start-up")

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (within the grace
        period), close the upstream channels."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()

    async def wait(self) -> None:
        if self._task is not None:
            await self._task


def create_server(
    settings: Settings, address: str, upstreams: Sequence[Upstream] | None = None
) -> tuple[GatewayServer, int]:
    """A gateway bound to `address` ("host:0" picks a free port) fronting
    `upstreams` (by default the backbone's two services)."""
    app = Gateway(settings, Upstreams(upstreams or default_upstreams(settings), settings.tls))
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets
    # whose proto says TCP, and accepted sockets inherit the listener's. With
    # Nagle on, a response written in two parts (head, body) waited for the
    # client's delayed ACK: ~40 ms per keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    server = GatewayServer(app, sock, settings.shutdown_grace)
    return server, server.port
