"""A database outage: health says NOT_SERVING, calls are UNAVAILABLE (never
NOT_FOUND or INTERNAL), and both recover when the database returns, without
a restart. Runs against a throwaway PostgreSQL cluster this test stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from experiments_svc.config import Settings
from experiments_svc.server import SERVICE_NAME, create_server
from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import rpc_error
from tests.fixtures.postgres import ThrowawayCluster

pytestmark = pytest.mark.postgres

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def channel(cluster: ThrowawayCluster) -> AsyncIterator[aio.Channel]:
    settings = Settings(database_url=cluster.url, health_interval=0.2, db_timeout=2)
    server, port = await create_server(settings, "127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as grpc_channel:
        yield grpc_channel
    await server.stop(0)


async def health_of(channel: aio.Channel, service: str = "") -> Any:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
    return response.status


async def wait_for_health(channel: aio.Channel, status: Any, within: float) -> float:
    """Seconds until health reports `status`; fails after `within`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(within):
        while await health_of(channel) != status:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.05)
    return loop.time() - started


async def test_outage_and_recovery(cluster: ThrowawayCluster, channel: aio.Channel) -> None:
    stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
    created = await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
    get = pb.GetExperimentRequest(experiment_id=created.experiment.id)
    assert await health_of(channel) == SERVING
    assert await health_of(channel, SERVICE_NAME) == SERVING

    await asyncio.to_thread(cluster.stop)
    for call in (
        stub.GetExperiment(get, timeout=5),
        stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY), timeout=5),
        stub.ListExperiments(pb.ListExperimentsRequest(), timeout=5),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert error.details() == "the database is unavailable; retry later"
    await wait_for_health(channel, NOT_SERVING, within=3)
    assert await health_of(channel, SERVICE_NAME) == NOT_SERVING

    await asyncio.to_thread(cluster.start)
    await wait_for_health(channel, SERVING, within=5)
    assert await health_of(channel, SERVICE_NAME) == SERVING
    fetched = await stub.GetExperiment(get, timeout=5)
    assert fetched.experiment == created.experiment
