"""The gRPC server runtime both services share: health and reflection
registered with names taken from the descriptors, graceful stop, and the
SIGTERM-driven main loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from wsgiref.simple_server import WSGIServer

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from research_common.auth import Tokens
from research_common.health import HealthReporter, Probe
from research_common.interceptor import ServiceInterceptor, Translator
from research_common.metrics import serve_metrics
from research_common.tls import TlsSettings

log = logging.getLogger("research.server")

# Largest request or response a service accepts; larger messages are
# RESOURCE_EXHAUSTED before any handler runs.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

Cleanup = Callable[[], Awaitable[None]]


class GrpcServer:
    """A started-or-startable grpc.aio server with its health reporting."""

    def __init__(
        self,
        server: aio.Server,
        health: HealthReporter,
        port: int,
        metrics_address: str | None = None,
    ) -> None:
        self.server = server
        self.health = health
        self.port = port
        self.metrics_address = metrics_address
        self._metrics: WSGIServer | None = None
        self._cleanups: list[Cleanup] = []

    def on_stop(self, cleanup: Cleanup) -> None:
        """Run `cleanup` after the server has drained (close pools, clients)."""
        self._cleanups.append(cleanup)

    async def start(self) -> None:
        if self.metrics_address:
            self._metrics = serve_metrics(self.metrics_address)
        await self.server.start()
        await self.health.check_once()
        self.health.start()

    async def stop(self, grace: float | None) -> None:
        """NOT_SERVING first, so balancers move away; then refuse new calls,
        let in-flight ones finish within `grace` seconds, and clean up."""
        await self.health.stop()
        await self.server.stop(grace)
        for cleanup in reversed(self._cleanups):
            await cleanup()
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.shutdown)
            self._metrics.server_close()


def build_server(
    *,
    address: str,
    service_names: Sequence[str],
    register: Callable[[aio.Server], None],
    probe: Probe,
    translate: Translator,
    health_interval: float,
    probe_timeout: float,
    tokens: Tokens | None = None,
    metrics_address: str | None = None,
    tls: TlsSettings | None = None,
) -> GrpcServer:
    """A server with the interceptor, the service(s) `register` adds, health
    and reflection, bound to `address` (port 0 picks a free port)."""
    server = aio.server(
        interceptors=[ServiceInterceptor(translate, tokens)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server)
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs predate aio
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection(
        (*service_names, health_name, reflection.SERVICE_NAME), server
    )
    credentials = tls.server_credentials() if tls is not None else None
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    reporter = HealthReporter(
        servicer, service_names, probe, interval=health_interval, timeout=probe_timeout
    )
    return GrpcServer(server, reporter, port, metrics_address)


async def serve_until_signalled(server: GrpcServer, grace: float, address: str) -> None:
    """Start, run until SIGTERM or SIGINT, then drain for up to `grace` s."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    log.info("listening on %s (port %d)", address, server.port, extra={"port": server.port})
    await stop.wait()
    log.info("stopping: draining in-flight calls for up to %.1f s", grace)
    await server.stop(grace)
    log.info("stopped")
