"""MLflow's client blocks; tracking_svc runs it on a pool of threads, so slow
MLflow calls proceed in parallel and never stall the server. Shown on what
MLflow sees (the counting proxy, each request held for a while), not on wall
time."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from research.tracking.v1 import tracking_pb2 as pb
from research.tracking.v1 import tracking_pb2_grpc
from tests.fixtures.grpc import assert_invalid, rpc_error
from tests.tracking_svc.conftest import Backend, started
from tracking_svc.server import SERVICE_NAME

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

pytestmark = pytest.mark.parametrize("backend", ["server"], indirect=True)

PARALLEL = 4


async def test_slow_mlflow_calls_run_in_parallel(
    stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    proxy = backend.proxy
    assert proxy is not None
    seeded = backend.seeded
    run_ids = seeded.newest_first[:PARALLEL]
    with proxy.delayed(1.0):
        proxy.reset()
        calls = [
            asyncio.ensure_future(stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10))
            for run_id in run_ids
        ]
        # While MLflow holds them, the server still answers a call that needs
        # no MLflow at once: the event loop is not blocked.
        async with asyncio.timeout(5):
            while proxy.in_flight < PARALLEL:  # noqa: ASYNC110 - waits on another thread
                await asyncio.sleep(0.01)
        error = await rpc_error(stub.GetRun(pb.GetRunRequest(run_id="../etc"), timeout=5))
        assert_invalid(error, "run_id", "must be an MLflow run id")
        assert not any(call.done() for call in calls)
        responses = await asyncio.gather(*calls)
    assert [response.run.run_id for response in responses] == run_ids
    assert proxy.max_in_flight >= PARALLEL
    assert len(proxy.matching("/runs/get")) == PARALLEL


async def test_a_callers_short_deadline_is_not_an_outage(
    channel: aio.Channel, stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    proxy = backend.proxy
    assert proxy is not None
    request = pb.GetRunRequest(run_id=backend.seeded.training_a)
    with proxy.delayed(1.5):
        error = await rpc_error(stub.GetRun(request, timeout=0.5))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    # MLflow is fine: without the delay the same call succeeds.
    assert (await stub.GetRun(request, timeout=5)).run.run_id == request.run_id


async def test_the_pool_bounds_the_calls_to_mlflow(backend: Backend) -> None:
    proxy = backend.proxy
    assert proxy is not None
    seeded = backend.seeded
    # Two threads for MLflow: six slow calls queue (within their deadline)
    # instead of all reaching MLflow at once.
    server = await started(dataclasses.replace(backend.settings, workers=2, health_interval=60))
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            run_ids = seeded.newest_first[:6]
            with proxy.delayed(0.3):
                proxy.reset()
                responses = await asyncio.gather(
                    *(stub.GetRun(pb.GetRunRequest(run_id=r), timeout=10) for r in run_ids)
                )
    finally:
        await server.stop(0)
    assert [response.run.run_id for response in responses] == run_ids
    assert proxy.max_in_flight == 2
    assert len(proxy.matching("/runs/get")) == 6


async def test_an_mlflow_call_ends_at_the_callers_deadline(backend: Backend) -> None:
    proxy = backend.proxy
    assert proxy is not None
    run_id = backend.seeded.training_a
    # One thread for MLflow, MLFLOW_TIMEOUT 4 s, MLflow holding the request
    # for 3 s, a caller allowing 0.5 s: the request must be abandoned at that
    # deadline, not left to run 2.5 s more on the only thread.
    settings = dataclasses.replace(backend.settings, workers=1, health_interval=60)
    server = await started(settings)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            # Queued behind the start-up health probe: once answered, the
            # thread is idle and the probe cannot be the request held below.
            await stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=5)
            with proxy.delayed(3.0):
                error = await rpc_error(stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=0.5))
            # The thread is free again: a call allowed 1.5 s, started while
            # the abandoned request is still held, gets its answer.
            response = await stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=1.5)
    finally:
        await server.stop(0)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details() == "the deadline passed before MLflow answered"
    assert response.run.run_id == run_id
