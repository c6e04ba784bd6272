"""MLflow down, hung or misaddressed: calls are UNAVAILABLE within the
deadline (never NOT_FOUND, never an empty answer, never a hang), health says
NOT_SERVING, and both recover when MLflow is back, without restarting
tracking_svc (CONTRACT §6)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2 as pb
from research.tracking.v1 import tracking_pb2_grpc
from research_common.server import GrpcServer
from testbed.mlflow_server import MlflowServer
from testbed.ports import free_port
from tests.fixtures.grpc import rpc_error
from tests.fixtures.mlflow import STRATEGY_A
from tests.tracking_svc.conftest import started
from tracking_svc.config import Settings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.server import SERVICE_NAME

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# CONTRACT §6: an outage is answered within the request deadline, 5 s.
CONTRACT_BOUND = 5.0
UNAVAILABLE_MESSAGES = {
    "the MLflow tracking server is unavailable; retry later",
    "the MLflow tracking server did not answer in time; retry later",
}


async def health_of(channel: aio.Channel, service: str = "") -> Any:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
    return response.status


async def wait_for_health(channel: aio.Channel, status: Any, within: float) -> None:
    async with asyncio.timeout(within):
        while await health_of(channel) != status:  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.05)
    assert await health_of(channel, SERVICE_NAME) == status


@contextlib.asynccontextmanager
async def tracking_over(settings: Settings) -> AsyncIterator[tuple[GrpcServer, aio.Channel]]:
    server = await started(settings)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, channel
    finally:
        await server.stop(0)


def every_call(
    stub: TrackingServiceAsyncStub, run_id: str
) -> list[Callable[[], Awaitable[object]]]:
    """One call of each RPC that needs MLflow (started when called), each with
    a 10 s deadline so that only the service's own bound is measured."""
    timeout = 10.0
    history = pb.GetMetricHistoryRequest(run_id=run_id, metric_key="oos_sharpe")
    compare = pb.CompareRunsRequest(run_ids=[run_id, "0" * 32])
    return [
        lambda: stub.ListRuns(pb.ListRunsRequest(), timeout=timeout),
        lambda: stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=timeout),
        lambda: stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=run_id), timeout=timeout),
        lambda: stub.GetRunParams(pb.GetRunParamsRequest(run_id=run_id), timeout=timeout),
        lambda: stub.GetMetricHistory(history, timeout=timeout),
        lambda: stub.CompareRuns(compare, timeout=timeout),
        lambda: stub.ListExperiments(pb.ListExperimentsRequest(), timeout=timeout),
    ]


async def assert_all_unavailable(
    stub: TrackingServiceAsyncStub, run_id: str, bound: float = CONTRACT_BOUND
) -> None:
    """Every RPC at once: each UNAVAILABLE, each within `bound` seconds."""

    async def timed(call: Callable[[], Awaitable[object]]) -> tuple[aio.AioRpcError, float]:
        began = time.monotonic()
        error = await rpc_error(call())
        return error, time.monotonic() - began

    results = await asyncio.gather(*(timed(call) for call in every_call(stub, run_id)))
    for error, took in results:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        assert error.details() in UNAVAILABLE_MESSAGES
        assert took < bound, f"UNAVAILABLE after {took:.2f} s"


async def test_mlflow_outage_and_recovery(tmp_path: Path) -> None:
    mlflow = MlflowServer(tmp_path / "mlflow")
    settings = Settings(
        tracking_uri=mlflow.url,
        experiment_name="outage-research",
        mlflow_timeout=2.0,
        health_interval=0.2,
    )
    try:
        # tracking_svc starts before MLflow is there: NOT_SERVING, UNAVAILABLE.
        async with tracking_over(settings) as (_, channel):
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            assert await health_of(channel) == NOT_SERVING
            assert await health_of(channel, SERVICE_NAME) == NOT_SERVING
            await assert_all_unavailable(stub, "1" * 32)

            # MLflow comes up: SERVING, and the default experiment is created.
            await asyncio.to_thread(mlflow.start)
            await wait_for_health(channel, SERVING, within=10)
            client = MlflowClient(tracking_uri=mlflow.url)
            experiment = client.get_experiment_by_name("outage-research")
            assert experiment is not None
            run = start_run(client, experiment.experiment_id, Lineage(STRATEGY_A, "training"))
            run_id = run.info.run_id
            client.log_metric(run_id, "oos_sharpe", 1.5, step=0)
            client.set_terminated(run_id)
            before = (await stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
            assert before.metrics["oos_sharpe"] == 1.5

            # kill -9: every call UNAVAILABLE (not NOT_FOUND, not empty) within 5 s.
            await asyncio.to_thread(mlflow.kill)
            await assert_all_unavailable(stub, run_id)
            await wait_for_health(channel, NOT_SERVING, within=3)

            # Back on the same port: SERVING again, same answers, same tracking_svc.
            await asyncio.to_thread(mlflow.start)
            await wait_for_health(channel, SERVING, within=10)
            after = (await stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
            assert after == before
            listed = await stub.ListRuns(pb.ListRunsRequest(run_type="training"))
            assert [r.run_id for r in listed.runs] == [run_id]
            metrics = await stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=run_id))
            assert dict(metrics.metrics) == {"oos_sharpe": 1.5}
    finally:
        await asyncio.to_thread(mlflow.stop)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections (in the kernel's backlog) and
    never answers: a hung MLflow."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        yield int(listener.getsockname()[1])


async def test_hung_mlflow_is_unavailable_not_a_hang() -> None:
    with silent_listener() as port:
        settings = Settings(
            tracking_uri=f"http://127.0.0.1:{port}",
            experiment_name="hung",
            mlflow_timeout=1.0,
            health_interval=0.2,
        )
        async with tracking_over(settings) as (_, channel):
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            assert await health_of(channel, SERVICE_NAME) == NOT_SERVING
            # Each call gives up after MLFLOW_TIMEOUT (1 s), well within its deadline.
            await assert_all_unavailable(stub, "1" * 32, bound=2.0)
            error = await rpc_error(stub.GetRun(pb.GetRunRequest(run_id="2" * 32), timeout=10))
            assert error.details() == (
                "the MLflow tracking server did not answer in time; retry later"
            )


async def test_a_deadline_shorter_than_the_mlflow_timeout_is_kept() -> None:
    with silent_listener() as port:
        settings = Settings(
            tracking_uri=f"http://127.0.0.1:{port}", experiment_name="hung", mlflow_timeout=2.0
        )
        async with tracking_over(settings) as (_, channel):
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            began = time.monotonic()
            error = await rpc_error(stub.GetRun(pb.GetRunRequest(run_id="3" * 32), timeout=1.0))
            took = time.monotonic() - began
            # The service gives up just before the caller's deadline, and says
            # so itself: the caller's own limit, not a verdict on MLflow.
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert error.details() == "the deadline passed before MLflow answered"
            assert took < 1.0


async def test_nothing_listening_is_unavailable_at_once() -> None:
    settings = Settings(
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        experiment_name="nowhere",
        health_interval=0.2,
    )
    async with tracking_over(settings) as (_, channel):
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        assert await health_of(channel) == NOT_SERVING
        # A refused connection is not retried for minutes: one attempt, then 503.
        await assert_all_unavailable(stub, "1" * 32, bound=1.0)


async def test_a_wrong_tracking_path_is_unavailable_not_missing(
    mlflow_server: MlflowServer,
) -> None:
    # MLflow's web server answers 404 for the wrong path: that is not "no such run".
    settings = Settings(
        tracking_uri=f"{mlflow_server.url}/wrong", experiment_name="wrong", health_interval=0.2
    )
    async with tracking_over(settings) as (_, channel):
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        assert await health_of(channel) == NOT_SERVING
        await assert_all_unavailable(stub, "1" * 32, bound=2.0)
