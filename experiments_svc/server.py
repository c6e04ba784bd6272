"""The experiments gRPC server, built by a factory that tests call with
port 0 and `main()` calls with EXPERIMENTS_ADDR."""

from __future__ import annotations

import functools

from experiments_svc.config import Settings
from experiments_svc.db import engine_for, ping, translate_error
from experiments_svc.imports import TrackingClient
from experiments_svc.migrate import migrate
from experiments_svc.service import ExperimentService
from experiments_svc.store import ExperimentStore
from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research_common.page_tokens import PageTokens
from research_common.server import GrpcServer, build_server

SERVICE_NAME = experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"].full_name


async def create_server(settings: Settings, address: str) -> tuple[GrpcServer, int]:
    """A ready-to-start server on `address` ("host:0" picks a free port),
    with the database migrated when `settings.auto_migrate` is set."""
    engine = engine_for(settings)
    try:
        if settings.auto_migrate:
            await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    tracking = TrackingClient(settings.tracking_address, settings.tracking_timeout, settings.tls)
    service = ExperimentService(
        ExperimentStore(engine, transaction_pooling=settings.db_transaction_pooling),
        tracking,
        PageTokens(settings.page_token_key.encode()),
    )
    server = build_server(
        settings,
        address=address,
        service_names=[SERVICE_NAME],
        register=functools.partial(
            experiments_pb2_grpc.add_ExperimentServiceServicer_to_server, service
        ),
        probe=functools.partial(ping, engine),
        probe_timeout=settings.db_timeout,
        translate=translate_error,
    )
    server.on_stop(engine.dispose)
    server.on_stop(tracking.close)
    return server, server.port
