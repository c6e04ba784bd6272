"""The gRPC server runtime both services share: the interceptor, health
and reflection registered with names taken from the descriptors, health
told at once of a store outage a call ran into, and graceful stop. (The
process around it, signals included, is research_common.runner.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from wsgiref.simple_server import WSGIServer

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from research_common.auth import read_only_methods
from research_common.constants import MAX_MESSAGE_BYTES
from research_common.errors import ServiceError, Unavailable
from research_common.health import HealthReporter, Probe
from research_common.interceptor import ServiceInterceptor, Translator
from research_common.metrics import serve_metrics
from research_common.settings import ServiceSettings

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

    async def wait(self) -> None:
        """Return once the server has stopped (only `stop` stops it)."""
        await self.server.wait_for_termination()


def build_server(
    settings: ServiceSettings,
    *,
    address: str,
    service_names: Sequence[str],
    register: Callable[[aio.Server], None],
    probe: Probe,
    probe_timeout: float,
    translate: Translator,
) -> GrpcServer:
    """A server with the interceptor, the service(s) `register` adds, health
    and reflection, bound to `address` (port 0 picks a free port), with the
    tokens, TLS, health interval and metrics address of `settings`. What a
    read-only token may call is read from the descriptors of `service_names`.

    `translate` maps what a handler raised unintended to a ServiceError;
    when that is Unavailable (the store is down), health turns NOT_SERVING
    at once instead of at the next probe."""
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs predate aio
    reporter = HealthReporter(
        servicer, service_names, probe, interval=settings.health_interval, timeout=probe_timeout
    )
    interceptor = ServiceInterceptor(
        _reporting_outages(translate, reporter),
        settings.tokens,
        # Once, here: the protos declare which methods change nothing.
        read_only_methods(service_names),
    )
    server = aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection(
        (*service_names, health_name, reflection.SERVICE_NAME), server
    )
    credentials = settings.tls.server_credentials()
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    return GrpcServer(server, reporter, port, settings.metrics_address)


def _reporting_outages(translate: Translator, health: HealthReporter) -> Translator:
    """`translate`, telling `health` of each outage it finds: callers learn
    of it from their errors, balancers from the health check, at the same
    moment."""

    def translated(error: BaseException) -> ServiceError | None:
        mapped = translate(error)
        if isinstance(mapped, Unavailable):
            health.report_outage(str(error))
        return mapped

    return translated
