"""`python -m tracking_svc` as a process: the embedded default, health through
grpcurl, SIGTERM, and one-line refusals of bad configuration."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from grpc import aio

from research.tracking.v1 import tracking_pb2 as pb
from research.tracking.v1 import tracking_pb2_grpc
from tests.grpcurl import grpcurl
from tests.processes import run_to_exit, running
from tests.tracking_svc.conftest import Backend
from tracking_svc.server import SERVICE_NAME as SERVICE


async def test_serves_on_the_embedded_default(tmp_path: Path) -> None:
    # No MLflow settings: MLflow's SQLite store under .data/ in the working directory.
    async with running("tracking_svc", {"TRACKING_ADDR": "127.0.0.1:0"}, tmp_path) as service:
        port = await service.listening_port()
        health = json.loads(
            await grpcurl(port, "grpc.health.v1.Health/Check", data={"service": SERVICE})
        )
        assert health == {"status": "SERVING"}
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            listed = await stub.ListExperiments(
                pb.ListExperimentsRequest(), metadata=[("x-request-id", "req-42")]
            )
            runs = await stub.ListRuns(pb.ListRunsRequest())
        assert (tmp_path / ".data" / "mlflow.db").stat().st_size > 0
        service.terminate()
        assert await service.wait() == 0
    default = next(e for e in listed.experiments if e.name == "hedge-fund-research")
    assert default.artifact_location == (tmp_path / ".data" / "mlartifacts").resolve().as_uri()
    assert default.lifecycle_stage == "active"
    assert runs == pb.ListRunsResponse()
    calls = [
        (line["rpc"], line["code"], line["request_id"]) for line in service.lines if line.get("rpc")
    ]
    assert calls[0] == (f"/{SERVICE}/ListExperiments", "OK", "req-42")
    assert calls[1][:2] == (f"/{SERVICE}/ListRuns", "OK")
    assert any(line.get("msg") == "stopped" for line in service.lines)
    # Every line on stderr is a JSON log line: MLflow's own loggers included.
    assert len(service.lines) == len(service.raw)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRACKING_ADDR": "nonsense"}, "TRACKING_ADDR must be host:port, got 'nonsense'"),
        ({"MLFLOW_TIMEOUT": "soon"}, "MLFLOW_TIMEOUT must be a number, got 'soon'"),
        ({"TRACKING_WORKERS": "0"}, "TRACKING_WORKERS must be at least 1, got '0'"),
        ({"MLFLOW_TRACKING_URI": "ftp://x"}, "MLFLOW_TRACKING_URI must be an http(s):// tracking"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"),
    ],
)
async def test_bad_configuration_is_refused_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    code, stderr = await run_to_exit("tracking_svc", env, tmp_path)
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("tracking_svc: configuration error: ")
    assert message in stderr
    assert not (tmp_path / ".data").exists()


async def test_a_taken_address_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {"TRACKING_ADDR": f"127.0.0.1:{port}", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
        code, stderr = await run_to_exit("tracking_svc", env, tmp_path)
    assert code == 1
    # gRPC's core may log the failed bind first; the service's own word is one line.
    *_, last = stderr.splitlines()
    assert last.startswith("tracking_svc: cannot start: RuntimeError: ")
    assert "Traceback" not in stderr
    assert not (tmp_path / ".data").exists()


async def test_sigterm_lets_an_in_flight_call_finish(tmp_path: Path, server_store: Backend) -> None:
    proxy = server_store.proxy
    assert proxy is not None
    env = {
        "TRACKING_ADDR": "127.0.0.1:0",
        "MLFLOW_TRACKING_URI": proxy.url,
        "MLFLOW_EXPERIMENT_NAME": server_store.seeded.experiment_name,
    }
    run_id = server_store.seeded.training_a
    async with running("tracking_svc", env, tmp_path) as service:
        port = await service.listening_port()
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            with proxy.delayed(1.5):
                proxy.reset()
                in_flight = asyncio.ensure_future(
                    stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10)
                )
                async with asyncio.timeout(5):
                    while not proxy.matching("/runs/get"):  # noqa: ASYNC110 - another thread
                        await asyncio.sleep(0.01)
                service.terminate()
                await service.wait_for_log("stopping")
                assert not in_flight.done()
                response = await in_flight
        assert response.run.run_id == run_id
        assert await service.wait() == 0
    assert not (tmp_path / ".data").exists()
