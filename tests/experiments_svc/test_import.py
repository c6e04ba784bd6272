"""ImportRun across both services (CONTRACT §5): a real experiments server
calls a real tracking server over gRPC, which reads a real MLflow store (the
embedded SQLite one, seeded through the lineage helper; for the deadline
tests, the session's `mlflow server` behind a proxy that can hold requests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from mlflow.tracking import MlflowClient

from experiments_svc.config import Settings
from research.experiments.v1 import experiments_pb2 as pb
from research_common.logging import JsonFormatter
from research_common.server import GrpcServer
from testbed.mlflow_server import MlflowServer
from tests.counting_proxy import CountingProxy
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import assert_invalid, rich_status, rpc_error
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.server import create_server as create_tracking_server

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub

# What ImportRun answers when its caller's deadline runs out before the run is read.
DEADLINE_RAN_OUT = "the deadline ran out while reading MLflow run {} from the tracking service"


@dataclass(frozen=True)
class SeededStore:
    uri: str
    full: str  # a finished training run with every lineage tag
    bare: str  # a run with no tags at all
    bad_strategy: str  # strategy_id tag that is not a UUID
    deleted: str  # every lineage tag, then deleted in MLflow
    artifact_uri: str


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    folder = tmp_path_factory.mktemp("mlflow-import")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(
        "import-tests", artifact_location=(folder / "artifacts").as_uri()
    )
    lineage = Lineage(
        strategy_id=STRATEGY,
        run_type="training",
        git_commit="3f9a1c2",
        dataset_version="ds-2024-06",
        feature_version="v3",
        model_version="v1",
        signal_version="s2",
    )
    full = start_run(client, experiment_id, lineage)
    run_id = full.info.run_id
    for key, value in {"learning_rate": "0.05", "max_depth": "6"}.items():
        client.log_param(run_id, key, value)
    client.log_metric(run_id, "oos_sharpe", 1.42)
    client.log_metric(run_id, "max_drawdown", -0.1231)
    client.log_metric(run_id, "diverged_loss", float("nan"))
    client.set_terminated(run_id)
    bare = client.create_run(experiment_id, run_name="untagged")
    bad = client.create_run(experiment_id, tags={"strategy_id": "not-a-uuid"})
    deleted = start_run(client, experiment_id, lineage)
    client.set_terminated(deleted.info.run_id)
    client.delete_run(deleted.info.run_id)
    return SeededStore(
        uri=uri,
        full=run_id,
        bare=bare.info.run_id,
        bad_strategy=bad.info.run_id,
        deleted=deleted.info.run_id,
        artifact_uri=full.info.artifact_uri,
    )


@pytest.fixture
async def tracking(mlflow_store: SeededStore) -> AsyncIterator[GrpcServer]:
    settings = TrackingSettings(tracking_uri=mlflow_store.uri, health_interval=0.5)
    server, _ = await create_tracking_server(settings, "127.0.0.1:0")
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
def settings(database_url: str, tracking: GrpcServer) -> Settings:
    """The experiments server's settings, pointing at the tracking server."""
    return Settings(
        database_url=database_url,
        health_interval=0.2,
        db_timeout=3,
        tracking_address=f"127.0.0.1:{tracking.port}",
        tracking_timeout=2.0,
    )


async def test_import_records_the_run_with_its_lineage(
    stub: ExperimentServiceAsyncStub, mlflow_store: SeededStore
) -> None:
    response = await stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=mlflow_store.full))

    assert response.created is True
    experiment = response.experiment
    assert uuid.UUID(experiment.id).version == 4
    assert experiment.strategy_id == STRATEGY
    assert experiment.mlflow_run_id == mlflow_store.full
    assert experiment.git_commit_hash == "3f9a1c2"
    assert experiment.dataset_version == "ds-2024-06"
    assert experiment.feature_version == "v3"
    assert experiment.model_version == "v1"
    assert json_format.MessageToDict(experiment.parameters) == {
        "learning_rate": "0.05",
        "max_depth": "6",
    }
    # NaN cannot live in a JSON document: it is recorded as null.
    assert json_format.MessageToDict(experiment.metrics) == {
        "oos_sharpe": 1.42,
        "max_drawdown": -0.1231,
        "diverged_loss": None,
    }
    assert dict(experiment.artifacts) == {"mlflow": mlflow_store.artifact_uri}

    stored = await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment.id))
    assert stored.experiment == experiment


async def test_importing_again_returns_the_same_experiment(
    stub: ExperimentServiceAsyncStub, mlflow_store: SeededStore
) -> None:
    first = await stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=mlflow_store.full))
    second = await stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=mlflow_store.full))

    assert (first.created, second.created) == (True, False)
    assert second.experiment == first.experiment


async def test_racing_imports_of_one_run_record_one_experiment(
    stub: ExperimentServiceAsyncStub, mlflow_store: SeededStore
) -> None:
    request = pb.ImportRunRequest(mlflow_run_id=mlflow_store.full)
    responses = await asyncio.gather(*(stub.ImportRun(request) for _ in range(8)))

    assert sorted(r.created for r in responses) == [False] * 7 + [True]
    assert len({r.experiment.id for r in responses}) == 1
    listed = await stub.ListExperiments(pb.ListExperimentsRequest(mlflow_run_id=mlflow_store.full))
    assert [e.id for e in listed.experiments] == [responses[0].experiment.id]


async def test_a_run_without_a_strategy_is_a_failed_precondition(
    stub: ExperimentServiceAsyncStub, mlflow_store: SeededStore
) -> None:
    for run_id, fragment in (
        (mlflow_store.bare, "has no strategy_id tag"),
        (mlflow_store.bad_strategy, "strategy_id tag that is not a UUID: 'not-a-uuid'"),
    ):
        error = await rpc_error(stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=run_id)))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"MLflow run {run_id} " in (error.details() or "")
        assert fragment in (error.details() or "")
        failure = error_details_pb2.PreconditionFailure()
        assert rich_status(error).details[0].Unpack(failure)
        assert [(v.type, v.subject) for v in failure.violations] == [("TAG", "strategy_id")]

    listed = await stub.ListExperiments(pb.ListExperimentsRequest())
    assert list(listed.experiments) == []


async def test_a_deleted_run_is_a_failed_precondition(
    stub: ExperimentServiceAsyncStub, mlflow_store: SeededStore
) -> None:
    # Its lineage tags are complete: only its deletion stands in the way.
    run_id = mlflow_store.deleted
    error = await rpc_error(stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=run_id)))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    message = f"MLflow run {run_id} is deleted; restore it in MLflow before importing it"
    assert error.details() == message
    failure = error_details_pb2.PreconditionFailure()
    assert rich_status(error).details[0].Unpack(failure)
    assert [(v.type, v.subject, v.description) for v in failure.violations] == [
        ("LIFECYCLE_STAGE", run_id, message)
    ]
    listed = await stub.ListExperiments(pb.ListExperimentsRequest())
    assert list(listed.experiments) == []


async def test_an_unknown_run_is_not_found(stub: ExperimentServiceAsyncStub) -> None:
    missing = uuid.uuid4().hex
    error = await rpc_error(stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=missing)))

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"MLflow run not found: {missing}"
    info = error_details_pb2.ResourceInfo()
    assert rich_status(error).details[0].Unpack(info)
    assert (info.resource_type, info.resource_name) == ("mlflow.Run", missing)


@pytest.mark.parametrize(
    ("run_id", "fragment"),
    [("", "is required"), ("../../etc/passwd", "must be an MLflow run id"), ("x" * 300, "255")],
)
async def test_a_malformed_run_id_is_invalid(
    stub: ExperimentServiceAsyncStub, run_id: str, fragment: str
) -> None:
    error = await rpc_error(stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=run_id)))
    assert_invalid(error, "mlflow_run_id", fragment)


async def test_the_request_id_travels_to_the_tracking_service(
    stub: ExperimentServiceAsyncStub,
    mlflow_store: SeededStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Both servers run in this process; the JSON formatter reads the request
    # id each one's interceptor set, as it would in two processes.
    caplog.handler.setFormatter(JsonFormatter("test"))
    caplog.set_level(logging.INFO, logger="research.rpc")
    await stub.ImportRun(
        pb.ImportRunRequest(mlflow_run_id=mlflow_store.full),
        metadata=(("x-request-id", "import-trace-7"),),
    )

    lines = [json.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]
    by_rpc = {line["rpc"]: line["request_id"] for line in lines if "rpc" in line}
    assert by_rpc == {
        "/research.tracking.v1.TrackingService/GetRun": "import-trace-7",
        "/research.experiments.v1.ExperimentService/ImportRun": "import-trace-7",
    }


async def test_a_run_id_is_recorded_once_across_create_and_update(
    stub: ExperimentServiceAsyncStub,
) -> None:
    first = await stub.CreateExperiment(
        pb.CreateExperimentRequest(strategy_id=STRATEGY, mlflow_run_id="run-a")
    )
    duplicate = await rpc_error(
        stub.CreateExperiment(
            pb.CreateExperimentRequest(strategy_id=STRATEGY, mlflow_run_id="run-a")
        )
    )
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already records MLflow run run-a" in (duplicate.details() or "")

    second = await stub.CreateExperiment(
        pb.CreateExperimentRequest(strategy_id=STRATEGY, mlflow_run_id="run-b")
    )
    update = pb.UpdateExperimentRequest(
        experiment_id=second.experiment.id, experiment=pb.Experiment(mlflow_run_id="run-a")
    )
    update.update_mask.paths.append("mlflow_run_id")
    clash = await rpc_error(stub.UpdateExperiment(update))
    assert clash.code() == grpc.StatusCode.ALREADY_EXISTS

    # Neither row changed; clearing the id on one frees it for the other.
    unchanged = await stub.GetExperiment(
        pb.GetExperimentRequest(experiment_id=second.experiment.id)
    )
    assert unchanged.experiment == second.experiment
    clear = pb.UpdateExperimentRequest(experiment_id=first.experiment.id)
    clear.update_mask.paths.append("mlflow_run_id")
    await stub.UpdateExperiment(clear)
    moved = await stub.UpdateExperiment(update)
    assert moved.experiment.mlflow_run_id == "run-a"


@contextlib.contextmanager
def _silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung peer."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture
def unreachable_settings(database_url: str) -> Iterator[Settings]:
    with _silent_listener() as port:
        yield Settings(
            database_url=database_url,
            health_interval=0.2,
            db_timeout=3,
            tracking_address=f"127.0.0.1:{port}",
            tracking_timeout=1.0,
        )


async def test_a_hung_tracking_service_is_unavailable_within_the_timeout(
    unreachable_settings: Settings,
) -> None:
    from experiments_svc.server import create_server
    from research.experiments.v1 import experiments_pb2_grpc

    server, port = await create_server(unreachable_settings, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            started = time.monotonic()
            error = await rpc_error(
                stub.ImportRun(pb.ImportRunRequest(mlflow_run_id="abc123"), timeout=10)
            )
            elapsed = time.monotonic() - started
    finally:
        await server.stop(0)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "tracking service is unavailable" in (error.details() or "")
    assert elapsed < 3  # TRACKING_TIMEOUT is 1 s; never the caller's 10 s


async def test_a_stopped_tracking_service_is_unavailable(
    stub: ExperimentServiceAsyncStub, tracking: GrpcServer
) -> None:
    await tracking.stop(0)
    error = await rpc_error(stub.ImportRun(pb.ImportRunRequest(mlflow_run_id="abc123")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_deadline_too_short_for_the_round_trip_is_deadline_exceeded(
    stub: ExperimentServiceAsyncStub, mlflow_store: SeededStore
) -> None:
    # `grpcurl -max-time 0.15`: what is left for the tracking service after
    # this service's own margin is too little for any answer. The deadline ran
    # out on the way (DEADLINE_EXCEEDED, 504); nothing is down: the same
    # import succeeds with time enough.
    request = pb.ImportRunRequest(mlflow_run_id=mlflow_store.full)
    error = await rpc_error(stub.ImportRun(request, timeout=0.15))

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # This service's own answer, not the channel's "Deadline Exceeded".
    assert error.details() == DEADLINE_RAN_OUT.format(mlflow_store.full)
    assert rich_status(error).code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert (await stub.ImportRun(request, timeout=10)).created is True


@dataclass(frozen=True)
class SlowTracking:
    """tracking_svc over the session's real `mlflow server`, reached through a
    proxy that can hold every request (a slow MLflow, on demand)."""

    address: str
    proxy: CountingProxy
    run_id: str  # a run with a strategy_id tag: importable


@pytest.fixture
async def slow_tracking(mlflow_server: MlflowServer) -> AsyncIterator[SlowTracking]:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    name = f"import-deadline-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    run = start_run(client, experiment_id, Lineage(strategy_id=STRATEGY, run_type="training"))
    with CountingProxy(mlflow_server.port) as proxy:
        settings = TrackingSettings(
            tracking_uri=proxy.url, experiment_name=name, health_interval=0.5
        )
        server, port = await create_tracking_server(settings, "127.0.0.1:0")
        await server.start()
        yield SlowTracking(f"127.0.0.1:{port}", proxy, run.info.run_id)
        await server.stop(0)


async def test_a_deadline_that_runs_out_in_the_tracking_service_is_deadline_exceeded(
    database_url: str, slow_tracking: SlowTracking
) -> None:
    from experiments_svc.server import create_server
    from research.experiments.v1 import experiments_pb2_grpc

    settings = Settings(
        database_url=database_url,
        health_interval=0.2,
        db_timeout=3,
        tracking_address=slow_tracking.address,
    )
    server, port = await create_server(settings, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            request = pb.ImportRunRequest(mlflow_run_id=slow_tracking.run_id)
            # MLflow holds the request longer than the caller's 1.5 s (and
            # far less than TRACKING_TIMEOUT, 4.5 s): the caller's deadline,
            # passed on to tracking_svc, is what runs out.
            with slow_tracking.proxy.delayed(5.0):
                error = await rpc_error(stub.ImportRun(request, timeout=1.5))
            imported = await stub.ImportRun(request, timeout=10)
    finally:
        await server.stop(0)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details() == DEADLINE_RAN_OUT.format(slow_tracking.run_id)
    # Tracking was healthy all along: without the delay the import succeeds.
    assert (imported.created, imported.experiment.mlflow_run_id) == (True, slow_tracking.run_id)


def test_the_experiments_service_never_imports_mlflow_or_numpy() -> None:
    # numpy: research_common.stats imports it only inside PBO, which only
    # tracking_svc computes; experiments_svc must stay small (≤ 80 MB RSS).
    code = (
        "import sys, experiments_svc.server, experiments_svc.__main__, "
        "experiments_svc.comparing, research_common.stats; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'numpy')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
