"""A real MLflow tracking store, seeded once per session through
`tracking_svc.lineage`, and a tracking server on port 0 per test. The same
tests run against both stores tracking_svc supports: a real `mlflow server`
(reached through a counting proxy) and the embedded SQLite store."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from grpc import aio
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2_grpc
from research_common.server import GrpcServer
from tests.counting_proxy import CountingProxy
from tests.mlflow_server import MlflowServer
from tracking_svc.config import Settings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.process import PROCESS_VARIABLES, configure_process
from tracking_svc.server import create_server

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

STRATEGY_A = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
STRATEGY_B = "0f0e0d0c-0b0a-4998-8776-655443322110"

# Start times of the seeded runs: one minute apart, in this order.
T0 = 1_700_000_000_000
MINUTE = 60_000
# Walk-forward folds: logged in this step order, with these values.
FOLD_LOG_ORDER = (3, 0, 4, 1, 2)
FOLD_SHARPE = {0: 0.8, 1: 1.1, 2: -0.2, 3: 1.6, 4: 0.9}
BULK_RUNS = 105


@dataclass(frozen=True, slots=True)
class Seeded:
    """Ids of what `seed` created."""

    experiment_name: str
    experiment_id: str
    other_experiment_name: str
    other_experiment_id: str
    bulk_experiment_name: str
    training_a: str  # FINISHED, every lineage tag
    training_b: str  # FINISHED, no signal_version
    walk_forward_a: str  # oos_sharpe per fold, logged out of step order
    cpcv_b: str  # FAILED; NaN metrics; one step logged twice
    backtest_a: str  # still RUNNING
    backtest_b: str  # KILLED; ±inf metrics
    untagged: str  # made with the client alone: no lineage tags
    other: str  # in the other experiment
    bulk: tuple[str, ...]  # BULK_RUNS runs of the bulk experiment, oldest first
    start_times: Mapping[str, int] = field(default_factory=dict)
    end_times: Mapping[str, int] = field(default_factory=dict)
    artifact_uris: Mapping[str, str] = field(default_factory=dict)
    fold_timestamps: Mapping[int, int] = field(default_factory=dict)  # step -> timestamp
    cpcv_history: tuple[tuple[int, int, float], ...] = ()  # (step, timestamp, value) by step

    @property
    def newest_first(self) -> list[str]:
        """The runs of the default experiment as ListRuns orders them."""
        return [
            self.untagged,
            self.backtest_b,
            self.backtest_a,
            self.cpcv_b,
            self.walk_forward_a,
            self.training_b,
            self.training_a,
        ]


def _log(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    timestamp: int = T0,
) -> None:
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, timestamp, 0) for key, value in (metrics or {}).items()],
        params=[Param(key, value) for key, value in (params or {}).items()],
    )


def seed(client: MlflowClient, artifact_location: str | None = None) -> Seeded:
    """Create the default experiment (unique name), a second experiment and a
    bulk experiment, and the runs every test reads."""
    suffix = uuid.uuid4().hex[:8]
    name, other_name, bulk_name = (
        f"tracking-test-{suffix}",
        f"tracking-other-{suffix}",
        f"tracking-bulk-{suffix}",
    )

    def experiment(experiment_name: str) -> str:
        location = None if artifact_location is None else f"{artifact_location}/{experiment_name}"
        return str(client.create_experiment(experiment_name, artifact_location=location))

    experiment_id, other_id, bulk_id = (
        experiment(name),
        experiment(other_name),
        experiment(bulk_name),
    )
    start_times: dict[str, int] = {}
    end_times: dict[str, int] = {}

    def begin(lineage: Lineage, minute: int, exp: str = experiment_id, **tags: str) -> str:
        started = T0 + minute * MINUTE
        run = start_run(client, exp, lineage, start_time=started, tags=tags or None)
        run_id = str(run.info.run_id)
        start_times[run_id] = started
        return run_id

    def end(run_id: str, status: str, took: int) -> None:
        end_times[run_id] = start_times[run_id] + took
        client.set_terminated(run_id, status, end_time=end_times[run_id])

    training_a = begin(
        Lineage(
            STRATEGY_A,
            "training",
            git_commit="3f9a1c2",
            dataset_version="ds-2024-06",
            feature_version="v3",
            model_version="v1",
            signal_version="s2",
        ),
        1,
        team="alpha",
    )
    _log(
        client,
        training_a,
        {
            "plugin_key": "ml.xgboost",
            "learning_rate": "0.05",
            "max_depth": "6",
            "n_estimators": "200",
            "subsample": "0.8",
        },
        {
            "oos_sharpe": 1.42,
            "max_drawdown": -0.1231,
            "rmse": 0.20,
            "custom_score": 3.0,
            "accuracy": 0.61,
            "calmar_ratio": 1.15,
        },
    )
    end(training_a, "FINISHED", 720_000)

    training_b = begin(
        Lineage(
            STRATEGY_B,
            "training",
            git_commit="9c8b7a6",
            dataset_version="ds-2024-06",
            feature_version="v3",
            model_version="v2",
        ),
        2,
    )
    _log(
        client,
        training_b,
        {
            "plugin_key": "ml.xgboost",
            "learning_rate": "0.01",
            "max_depth": "6",
            "n_estimators": "300",
        },
        {
            "oos_sharpe": 1.18,
            "max_drawdown": -0.1544,
            "rmse": 0.10,
            "custom_score": 5.0,
            "accuracy": 0.61,
        },
    )
    end(training_b, "FINISHED", 600_000)

    walk_forward_a = begin(
        Lineage(STRATEGY_A, "walk_forward", git_commit="3f9a1c2", dataset_version="ds-2024-06"), 3
    )
    _log(client, walk_forward_a, {"n_splits": "5", "method": "rolling"}, {"mean_oos_sharpe": 0.84})
    fold_timestamps: dict[int, int] = {}
    for order, step in enumerate(FOLD_LOG_ORDER):
        fold_timestamps[step] = start_times[walk_forward_a] + 1_000 * (order + 1)
        client.log_metric(
            walk_forward_a, "oos_sharpe", FOLD_SHARPE[step], fold_timestamps[step], step
        )
    end(walk_forward_a, "FINISHED", 300_000)

    cpcv_b = begin(Lineage(STRATEGY_B, "cpcv", dataset_version="ds-2024-07"), 4)
    _log(
        client,
        cpcv_b,
        {"n_groups": "6"},
        {"calmar_ratio": float("nan"), "sortino": float("nan")},
    )
    base = start_times[cpcv_b]
    # Step 1 twice (a re-run fold), then step 0: history is by step, then time.
    for step, timestamp, value in ((1, base + 10, 0.5), (0, base + 20, 0.3), (1, base + 30, 0.7)):
        client.log_metric(cpcv_b, "oos_sharpe", value, timestamp, step)
    cpcv_history = ((0, base + 20, 0.3), (1, base + 10, 0.5), (1, base + 30, 0.7))
    end(cpcv_b, "FAILED", 60_000)

    backtest_a = begin(Lineage(STRATEGY_A, "backtest", git_commit="3f9a1c2"), 5)
    _log(
        client,
        backtest_a,
        {"initial_capital": "1000000"},
        {"total_return": 0.25, "max_drawdown": -0.08},
    )
    # Not terminated: RUNNING, no end time.

    backtest_b = begin(Lineage(STRATEGY_B, "backtest"), 6)
    _log(
        client,
        backtest_b,
        {"initial_capital": "500000"},
        {"calmar_ratio": float("inf"), "sortino": float("-inf"), "total_return": -0.05},
    )
    end(backtest_b, "KILLED", 30_000)

    untagged_run = client.create_run(
        experiment_id, start_time=T0 + 7 * MINUTE, tags={"note": "manual"}, run_name="manual-check"
    )
    untagged = str(untagged_run.info.run_id)
    start_times[untagged] = T0 + 7 * MINUTE
    _log(client, untagged, {"learning_rate": "0.05"}, {"oos_sharpe": 1.0})
    end(untagged, "FINISHED", 1_000)

    other = begin(Lineage(STRATEGY_A, "training", git_commit="3f9a1c2"), 8, exp=other_id)
    _log(client, other, {"learning_rate": "0.02"}, {"oos_sharpe": 2.0})
    end(other, "FINISHED", 1_000)

    bulk = tuple(
        client.create_run(bulk_id, start_time=T0 + i * 1_000, run_name=f"bulk-{i}").info.run_id
        for i in range(BULK_RUNS)
    )
    artifact_uris = {
        run_id: client.get_run(run_id).info.artifact_uri or "" for run_id in start_times
    }
    return Seeded(
        experiment_name=name,
        experiment_id=experiment_id,
        other_experiment_name=other_name,
        other_experiment_id=other_id,
        bulk_experiment_name=bulk_name,
        training_a=training_a,
        training_b=training_b,
        walk_forward_a=walk_forward_a,
        cpcv_b=cpcv_b,
        backtest_a=backtest_a,
        backtest_b=backtest_b,
        untagged=untagged,
        other=other,
        bulk=bulk,
        start_times=start_times,
        end_times=end_times,
        artifact_uris=artifact_uris,
        fold_timestamps=fold_timestamps,
        cpcv_history=cpcv_history,
    )


@dataclass(frozen=True, slots=True)
class Backend:
    """A seeded MLflow store and the settings that point tracking_svc at it."""

    kind: str  # "server" or "embedded"
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


@pytest.fixture(params=["server", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test that uses it runs once per store."""
    store: Backend = request.getfixturevalue(f"{request.param}_store")
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


@pytest.fixture(scope="session", autouse=True)
def tracking_process() -> Iterator[None]:
    """The process-wide set-up tracking_svc's main() does (MLflow's HTTP
    client bounded per call, its probed modules remembered absent), done
    once for the session: tracking servers run in this process. The
    environment variables it sets are restored at the end."""
    saved = {name: os.environ.get(name) for name in PROCESS_VARIABLES}
    configure_process(Settings())
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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
