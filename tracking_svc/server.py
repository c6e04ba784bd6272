"""The tracking gRPC server, built by a factory that tests call with port 0
and `main()` calls with TRACKING_ADDR."""

from __future__ import annotations

from grpc import aio

from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from research_common.errors import ServiceError, Unavailable
from research_common.server import GrpcServer, build_server
from tracking_svc import backend as mlflow_backend
from tracking_svc.absent_modules import remember_absent
from tracking_svc.backend import TrackingBackend
from tracking_svc.config import Settings
from tracking_svc.service import TrackingService

SERVICE_NAME = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


async def create_server(settings: Settings, address: str) -> tuple[GrpcServer, int]:
    """A ready-to-start server on `address` ("host:0" picks a free port).
    MLflow need not be reachable yet: health says NOT_SERVING until it is,
    and the default experiment is created on first contact."""
    remember_absent()
    backend = TrackingBackend(settings)
    server: GrpcServer

    def translate(error: BaseException) -> ServiceError | None:
        mapped = mlflow_backend.translate(error)
        if isinstance(mapped, Unavailable):
            server.health.report_outage(str(error))
        return mapped

    def register(grpc_server: aio.Server) -> None:
        tracking_pb2_grpc.add_TrackingServiceServicer_to_server(
            TrackingService(backend), grpc_server
        )

    async def probe() -> None:
        # Reaching MLflow is not enough: the default experiment must exist
        # for run search to work, so the probe resolves (or creates) it.
        await backend.call(backend.default_experiment_id)
        await backend.call(backend.ping)

    server = build_server(
        address=address,
        service_names=[SERVICE_NAME],
        register=register,
        probe=probe,
        translate=translate,
        health_interval=settings.health_interval,
        tokens=settings.tokens,
        metrics_address=settings.metrics_address,
        tls=settings.tls,
        probe_timeout=settings.mlflow_timeout,
    )
    server.on_stop(backend.close)
    return server, server.port
