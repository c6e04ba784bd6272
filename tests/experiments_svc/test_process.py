"""`python -m experiments_svc` as a process: embedded default, SIGTERM drain,
and one-line refusals of bad configuration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from testbed.ports import free_port
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import rpc_error
from tests.processes import run_to_exit, running, start


async def test_starts_on_the_embedded_sqlite_default(tmp_path: Path) -> None:
    # No DATABASE_URL: a SQLite file under .data/ in the working directory.
    async with running("experiments_svc", {"EXPERIMENTS_ADDR": "127.0.0.1:0"}, tmp_path) as service:
        port = await service.listening_port()
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            created = await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
        assert (tmp_path / ".data" / "experiments.db").stat().st_size > 0
        service.terminate()
        assert await service.wait() == 0
    request_lines = [line for line in service.lines if line.get("rpc")]
    assert [(line["rpc"], line["code"]) for line in request_lines] == [
        ("/research.experiments.v1.ExperimentService/CreateExperiment", "OK")
    ]
    assert request_lines[0]["request_id"]
    assert created.experiment.strategy_id == STRATEGY


async def test_request_id_from_the_caller_is_logged(tmp_path: Path) -> None:
    async with running("experiments_svc", {"EXPERIMENTS_ADDR": "127.0.0.1:0"}, tmp_path) as service:
        port = await service.listening_port()
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            request = pb.GetExperimentRequest(experiment_id="bad")
            await rpc_error(stub.GetExperiment(request, metadata=[("x-request-id", "req-77")]))
        service.terminate()
        assert await service.wait() == 0
    (line,) = [line for line in service.lines if line.get("rpc")]
    assert (line["request_id"], line["code"]) == ("req-77", "INVALID_ARGUMENT")


@pytest.mark.postgres
async def test_sigterm_lets_in_flight_calls_finish(migrated_postgres: str, tmp_path: Path) -> None:
    env = {"EXPERIMENTS_ADDR": "127.0.0.1:0", "DATABASE_URL": migrated_postgres}
    service = await start("experiments_svc", env, tmp_path)
    blocker = await asyncpg.connect(migrated_postgres)
    try:
        port = await service.listening_port()
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            # Hold a lock so that a create is still in flight at SIGTERM.
            locked = blocker.transaction()
            await locked.start()
            await blocker.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
            in_flight = asyncio.ensure_future(
                stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY), timeout=20)
            )
            await asyncio.sleep(0.5)
            assert not in_flight.done()
            service.terminate()
            await service.wait_for_log("stopping")
            # New calls are refused once the server stops accepting; a call
            # that needs no database (health) shows when that happens.
            health = health_pb2_grpc.HealthStub(channel)
            refused: aio.AioRpcError | None = None
            async with asyncio.timeout(5):
                while refused is None:
                    try:
                        await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    except aio.AioRpcError as error:
                        refused = error
                    else:
                        await asyncio.sleep(0.05)
            # grpc-core refuses with UNAVAILABLE (GOAWAY) or, when the call
            # raced the shutdown, CANCELLED; either way nothing ran.
            assert refused.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
            assert not in_flight.done()
            await locked.rollback()
            created = await in_flight
        assert created.experiment.strategy_id == STRATEGY
        assert await service.wait() == 0
    finally:
        await blocker.close()
        await service.kill()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXPERIMENTS_ADDR": "nonsense"}, "EXPERIMENTS_ADDR must be host:port, got 'nonsense'"),
        ({"EXPERIMENTS_ADDR": "127.0.0.1:70000"}, "EXPERIMENTS_ADDR must be host:port"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL must be a postgresql:// or sqlite:// URL"),
        ({"DATABASE_URL": "::::"}, "DATABASE_URL is not a database URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"),
        ({"DB_TIMEOUT": "soon"}, "DB_TIMEOUT must be a number, got 'soon'"),
        ({"AUTO_MIGRATE": "maybe"}, "AUTO_MIGRATE must be true or false, got 'maybe'"),
        ({"TRACKING_ADDR": ","}, "TRACKING_ADDR names no address, got ','"),
        (
            {"TRACKING_ADDR": "tracking-a:50052,tracking-b:50052"},
            "TRACKING_ADDR: a list takes IP addresses, and 'tracking-a' is a name; "
            "use dns:///tracking-a:50052",
        ),
    ],
)
async def test_bad_configuration_is_refused_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    code, stderr = await run_to_exit("experiments_svc", env, tmp_path)
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("experiments_svc: configuration error: ")
    assert message in stderr


async def test_unreachable_database_at_start_is_one_line(tmp_path: Path) -> None:
    env = {
        "EXPERIMENTS_ADDR": "127.0.0.1:0",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        "DB_TIMEOUT": "2",
    }
    code, stderr = await run_to_exit("experiments_svc", env, tmp_path)
    assert code == 1
    assert stderr.startswith("experiments_svc: cannot start: ")
    assert stderr.count("\n") == 1
