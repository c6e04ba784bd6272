"""The tracking gRPC server, built by a factory that tests call with port 0
and `main()` calls with TRACKING_ADDR."""

from __future__ import annotations

import functools

from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from research_common.page_tokens import PageTokens
from research_common.server import GrpcServer, build_server
from tracking_svc.backend import TrackingBackend, translate
from tracking_svc.config import Settings
from tracking_svc.service import TrackingService

SERVICE_NAME = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


async def create_server(settings: Settings, address: str) -> tuple[GrpcServer, int]:
    """A ready-to-start server on `address` ("host:0" picks a free port).
    MLflow need not be reachable yet: health says NOT_SERVING until it is,
    and the default experiment is created on first contact. The process is
    expected to be set up for MLflow (tracking_svc.process.configure_process,
    which main() calls)."""
    backend = TrackingBackend(settings)

    async def probe() -> None:
        # Reaching MLflow is not enough: the default experiment must exist
        # for run search to work, so the probe resolves (or creates) it.
        await backend.call(backend.default_experiment_id)
        await backend.call(backend.ping)

    server = build_server(
        settings,
        address=address,
        service_names=[SERVICE_NAME],
        register=functools.partial(
            tracking_pb2_grpc.add_TrackingServiceServicer_to_server,
            TrackingService(backend, PageTokens(settings.page_token_key.encode())),
        ),
        probe=probe,
        probe_timeout=settings.mlflow_timeout,
        translate=translate,
    )
    server.on_stop(backend.close)
    return server, server.port
