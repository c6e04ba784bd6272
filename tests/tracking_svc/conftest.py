"""tracking_svc on port 0 per test, over each MLflow store it supports: the
session's real `mlflow server` (reached through a counting proxy), read
over tracking_svc's own HTTP connections ("server") and through MLflow's
client's (`MLFLOW_DIRECT_HTTP=false`, "server-mlflow-http"), and the
embedded SQLite store, seeded once per session by `seed`
(tests/fixtures/mlflow.py). The same tests run against all three."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from grpc import aio
from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2_grpc
from research_common.server import GrpcServer
from testbed.mlflow_server import MlflowServer
from tests.counting_proxy import CountingProxy
from tests.fixtures.mlflow import STRATEGY_A, Seeded, seed
from tracking_svc.config import Settings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.server import create_server

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub


@dataclass(frozen=True, slots=True)
class Backend:
    """A seeded MLflow store and the settings that point tracking_svc at it."""

    kind: str  # "server", "server-mlflow-http" or "embedded"
    settings: Settings
    seeded: Seeded
    # In front of the server backend's MLflow; None for the embedded store.
    proxy: CountingProxy | None = None


@pytest.fixture(scope="session")
def counting_proxy(mlflow_server: MlflowServer) -> Iterator[CountingProxy]:
    with CountingProxy(mlflow_server.port) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def server_store(mlflow_server: MlflowServer, counting_proxy: CountingProxy) -> Backend:
    seeded = seed(MlflowClient(tracking_uri=mlflow_server.url))
    settings = Settings(tracking_uri=counting_proxy.url, experiment_name=seeded.experiment_name)
    return Backend("server", settings, seeded, counting_proxy)


@pytest.fixture(scope="session")
def server_mlflow_http_store(server_store: Backend) -> Backend:
    settings = dataclasses.replace(server_store.settings, direct_http=False)
    return dataclasses.replace(server_store, kind="server-mlflow-http", settings=settings)


@pytest.fixture(scope="session")
def embedded_store(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    directory = tmp_path_factory.mktemp("mlflow-embedded")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    artifacts = (directory / "artifacts").as_uri()
    seeded = seed(MlflowClient(tracking_uri=uri), artifacts)
    settings = Settings(
        tracking_uri=uri,
        experiment_name=seeded.experiment_name,
        artifact_location=f"{artifacts}/{seeded.experiment_name}",
    )
    return Backend("embedded", settings, seeded)


@pytest.fixture(params=["server", "server-mlflow-http", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test that uses it runs once per store."""
    store: Backend = request.getfixturevalue(f"{request.param.replace('-', '_')}_store")
    if store.proxy is not None:
        store.proxy.reset()
    return store


@pytest.fixture
def seeded(backend: Backend) -> Seeded:
    return backend.seeded


@pytest.fixture
def deleted_run(backend: Backend) -> str:
    """A training run of the default experiment, then deleted in MLflow (not
    garbage collected: MLflow still serves it by id, marked deleted). Run
    search leaves deleted runs out, so the seeded listings are unchanged."""
    client = MlflowClient(tracking_uri=backend.settings.tracking_uri)
    lineage = Lineage(STRATEGY_A, "training", git_commit="3f9a1c2")
    run_id = str(start_run(client, backend.seeded.experiment_id, lineage).info.run_id)
    client.log_metric(run_id, "oos_sharpe", 0.5)
    client.set_terminated(run_id)
    client.delete_run(run_id)
    return run_id


async def started(settings: Settings) -> GrpcServer:
    server, _ = await create_server(settings, "127.0.0.1:0")
    await server.start()
    return server


@pytest.fixture
async def tracking(backend: Backend) -> AsyncIterator[GrpcServer]:
    """tracking_svc in this process, on a free port, over `backend`."""
    server = await started(backend.settings)
    yield server
    await server.stop(0)


@pytest.fixture
async def channel(tracking: GrpcServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{tracking.port}") as grpc_channel:
        yield grpc_channel


@pytest.fixture
def stub(channel: aio.Channel) -> TrackingServiceAsyncStub:
    return tracking_pb2_grpc.TrackingServiceStub(channel)
