"""ListRuns, GetRun, GetRunMetrics, GetRunParams, GetMetricHistory and
ListExperiments over a seeded MLflow store (CONTRACT §6), once per store."""

from __future__ import annotations

import dataclasses
import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc import aio
from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2 as pb
from research.tracking.v1 import tracking_pb2_grpc
from testbed.mlflow_server import MlflowServer
from tests.fixtures.grpc import assert_invalid, rich_status, rpc_error
from tests.fixtures.mlflow import BULK_RUNS, FOLD_SHARPE, MINUTE, STRATEGY_A, STRATEGY_B, T0, Seeded
from tests.tracking_svc.conftest import Backend, started
from tracking_svc.config import Settings

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

TRAINING_A_LINEAGE = {
    "strategy_id": STRATEGY_A,
    "run_type": "training",
    "git_commit": "3f9a1c2",
    "dataset_version": "ds-2024-06",
    "feature_version": "v3",
    "model_version": "v1",
    "signal_version": "s2",
}
TRAINING_A_PARAMS = {
    "plugin_key": "ml.xgboost",
    "learning_rate": "0.05",
    "max_depth": "6",
    "n_estimators": "200",
    "subsample": "0.8",
}
TRAINING_A_METRICS = {
    "oos_sharpe": 1.42,
    "max_drawdown": -0.1231,
    "rmse": 0.20,
    "custom_score": 3.0,
    "accuracy": 0.61,
    "calmar_ratio": 1.15,
}


async def list_ids(stub: TrackingServiceAsyncStub, **fields: object) -> list[str]:
    response = await stub.ListRuns(pb.ListRunsRequest(**fields))  # type: ignore[arg-type]
    assert response.total == len(response.runs)
    return [run.run_id for run in response.runs]


# ListRuns


async def test_list_runs_newest_first_default_experiment_only(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    response = await stub.ListRuns(pb.ListRunsRequest())
    assert [run.run_id for run in response.runs] == seeded.newest_first
    assert response.total == 7
    assert [run.start_time for run in response.runs] == [T0 + m * MINUTE for m in range(7, 0, -1)]
    assert seeded.other not in [run.run_id for run in response.runs]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"run_type": "training"}, ["training_b", "training_a"]),
        ({"run_type": "walk_forward"}, ["walk_forward_a"]),
        ({"run_type": "cpcv"}, ["cpcv_b"]),
        ({"run_type": "backtest"}, ["backtest_b", "backtest_a"]),
        ({"strategy_id": STRATEGY_A}, ["backtest_a", "walk_forward_a", "training_a"]),
        ({"strategy_id": STRATEGY_B}, ["backtest_b", "cpcv_b", "training_b"]),
        ({"run_type": "backtest", "strategy_id": STRATEGY_B}, ["backtest_b"]),
        ({"run_type": "training", "strategy_id": STRATEGY_A}, ["training_a"]),
        ({"run_type": "walk_forward", "strategy_id": STRATEGY_B}, []),
        ({"run_type": "no_such_type"}, []),
        # Odd but valid tokens are searched for, not rejected.
        ({"run_type": "a.b:c-d_e", "strategy_id": "--"}, []),
    ],
)
async def test_list_runs_filters_on_lineage_tags(
    stub: TrackingServiceAsyncStub, seeded: Seeded, filters: dict[str, str], expected: list[str]
) -> None:
    assert await list_ids(stub, **filters) == [getattr(seeded, name) for name in expected]


async def test_list_runs_limit(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    assert await list_ids(stub, limit=2) == seeded.newest_first[:2]
    assert await list_ids(stub, limit=1, run_type="training") == [seeded.training_b]
    assert await list_ids(stub, limit=100) == seeded.newest_first


@pytest.mark.parametrize("limit", [0, -1, -(2**31)])
async def test_list_runs_limit_below_one_is_invalid(
    stub: TrackingServiceAsyncStub, backend: Backend, limit: int
) -> None:
    error = await rpc_error(stub.ListRuns(pb.ListRunsRequest(limit=limit)))
    assert_invalid(error, "limit", f"limit must be a positive number, got {limit}")
    if backend.proxy is not None:
        assert backend.proxy.matching("/runs/") == []


async def test_list_runs_default_limit_and_clamp(backend: Backend) -> None:
    # The bulk experiment has BULK_RUNS runs, one second apart.
    settings = dataclasses.replace(
        backend.settings, experiment_name=backend.seeded.bulk_experiment_name
    )
    newest_first = list(reversed(backend.seeded.bulk))
    assert len(newest_first) == BULK_RUNS > 100
    server = await started(settings)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            assert await list_ids(stub) == newest_first[:50]
            assert await list_ids(stub, limit=100) == newest_first[:100]
            assert await list_ids(stub, limit=101) == newest_first[:100]
            assert await list_ids(stub, limit=2**31 - 1) == newest_first[:100]
            assert await list_ids(stub, limit=7) == newest_first[:7]
    finally:
        await server.stop(0)


async def test_list_runs_summary_fields(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    response = await stub.ListRuns(pb.ListRunsRequest(run_type="training", strategy_id=STRATEGY_A))
    (run,) = response.runs
    assert run.run_id == seeded.training_a
    assert run.run_name == "training"
    assert run.status == "FINISHED"
    assert run.start_time == T0 + MINUTE
    assert dict(run.params) == TRAINING_A_PARAMS
    assert dict(run.metrics) == TRAINING_A_METRICS
    tags = dict(run.tags)
    assert {key: tags.get(key) for key in TRAINING_A_LINEAGE} == TRAINING_A_LINEAGE
    assert tags["team"] == "alpha"
    assert tags["mlflow.runName"] == "training"


async def test_list_runs_statuses(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    response = await stub.ListRuns(pb.ListRunsRequest())
    statuses = {run.run_id: run.status for run in response.runs}
    assert statuses == {
        seeded.untagged: "FINISHED",
        seeded.backtest_b: "KILLED",
        seeded.backtest_a: "RUNNING",
        seeded.cpcv_b: "FAILED",
        seeded.walk_forward_a: "FINISHED",
        seeded.training_b: "FINISHED",
        seeded.training_a: "FINISHED",
    }
    untagged = next(run for run in response.runs if run.run_id == seeded.untagged)
    assert untagged.run_name == "manual-check"
    assert "run_type" not in untagged.tags
    assert "strategy_id" not in untagged.tags


# GetRun


async def test_get_run_all_fields(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    run = (await stub.GetRun(pb.GetRunRequest(run_id=seeded.training_a))).run
    assert run.run_id == seeded.training_a
    assert run.run_name == "training"
    assert run.status == "FINISHED"
    assert run.start_time == T0 + MINUTE
    assert run.HasField("end_time")
    assert run.end_time == T0 + MINUTE + 720_000
    assert run.artifact_uri == seeded.artifact_uris[seeded.training_a]
    assert run.artifact_uri.endswith(f"/{seeded.training_a}/artifacts")
    assert run.experiment_id == seeded.experiment_id
    assert run.lifecycle_stage == "active"
    assert dict(run.params) == TRAINING_A_PARAMS
    assert dict(run.metrics) == TRAINING_A_METRICS
    tags = dict(run.tags)
    assert {key: tags.get(key) for key in TRAINING_A_LINEAGE} == TRAINING_A_LINEAGE


async def test_get_running_run_has_no_end_time(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    run = (await stub.GetRun(pb.GetRunRequest(run_id=seeded.backtest_a))).run
    assert run.status == "RUNNING"
    assert not run.HasField("end_time")
    assert run.start_time == T0 + 5 * MINUTE
    assert dict(run.metrics) == {"total_return": 0.25, "max_drawdown": -0.08}


async def test_get_run_statuses_and_end_times(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    for run_id, status in (
        (seeded.cpcv_b, "FAILED"),
        (seeded.backtest_b, "KILLED"),
        (seeded.walk_forward_a, "FINISHED"),
    ):
        run = (await stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
        assert (run.status, run.end_time) == (status, seeded.end_times[run_id])


async def test_get_run_of_a_deleted_run_says_it_is_deleted(
    stub: TrackingServiceAsyncStub, seeded: Seeded, deleted_run: str
) -> None:
    run = (await stub.GetRun(pb.GetRunRequest(run_id=deleted_run))).run
    assert (run.run_id, run.lifecycle_stage) == (deleted_run, "deleted")
    # Otherwise the run is as it was logged.
    assert (run.status, run.experiment_id) == ("FINISHED", seeded.experiment_id)
    assert dict(run.metrics) == {"oos_sharpe": 0.5}
    assert run.tags["strategy_id"] == STRATEGY_A


async def test_get_run_in_another_experiment(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    run = (await stub.GetRun(pb.GetRunRequest(run_id=seeded.other))).run
    assert run.experiment_id == seeded.other_experiment_id
    assert dict(run.metrics) == {"oos_sharpe": 2.0}


async def test_get_run_nan_and_infinity(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    cpcv = (await stub.GetRun(pb.GetRunRequest(run_id=seeded.cpcv_b))).run
    assert math.isnan(cpcv.metrics["calmar_ratio"])
    assert math.isnan(cpcv.metrics["sortino"])
    assert cpcv.metrics["oos_sharpe"] == 0.7  # the last value of the highest step
    backtest = (await stub.GetRun(pb.GetRunRequest(run_id=seeded.backtest_b))).run
    assert backtest.metrics["calmar_ratio"] == math.inf
    assert backtest.metrics["sortino"] == -math.inf
    assert backtest.metrics["total_return"] == -0.05
    metrics = await stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=seeded.backtest_b))
    assert dict(metrics.metrics) == {
        "calmar_ratio": math.inf,
        "sortino": -math.inf,
        "total_return": -0.05,
    }
    summaries = await stub.ListRuns(pb.ListRunsRequest(run_type="cpcv"))
    assert math.isnan(summaries.runs[0].metrics["calmar_ratio"])


async def test_get_unknown_run_is_not_found(stub: TrackingServiceAsyncStub) -> None:
    missing = uuid.uuid4().hex
    error = await rpc_error(stub.GetRun(pb.GetRunRequest(run_id=missing)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Run not found: {missing}"
    infos = _resource_infos(error)
    assert [(i.resource_type, i.resource_name) for i in infos] == [("mlflow.Run", missing)]


def _resource_infos(error: aio.AioRpcError) -> list[error_details_pb2.ResourceInfo]:
    found = []
    for detail in rich_status(error).details:
        info = error_details_pb2.ResourceInfo()
        if detail.Unpack(info):
            found.append(info)
    return found


async def test_get_run_longest_valid_id_is_not_found(stub: TrackingServiceAsyncStub) -> None:
    error = await rpc_error(stub.GetRun(pb.GetRunRequest(run_id="a" * 256)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


# GetRunMetrics / GetRunParams


async def test_get_run_metrics(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    response = await stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=seeded.training_a))
    assert response.run_id == seeded.training_a
    assert dict(response.metrics) == TRAINING_A_METRICS
    # A metric logged per fold: its final value is the highest step's.
    folds = await stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=seeded.walk_forward_a))
    assert dict(folds.metrics) == {"mean_oos_sharpe": 0.84, "oos_sharpe": FOLD_SHARPE[4]}


async def test_get_run_params(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    response = await stub.GetRunParams(pb.GetRunParamsRequest(run_id=seeded.training_a))
    assert response.run_id == seeded.training_a
    assert dict(response.params) == TRAINING_A_PARAMS
    running = await stub.GetRunParams(pb.GetRunParamsRequest(run_id=seeded.backtest_a))
    assert dict(running.params) == {"initial_capital": "1000000"}


async def test_unknown_run_has_empty_metrics_and_params(stub: TrackingServiceAsyncStub) -> None:
    missing = uuid.uuid4().hex
    metrics = await stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=missing))
    assert metrics == pb.GetRunMetricsResponse(run_id=missing)
    params = await stub.GetRunParams(pb.GetRunParamsRequest(run_id=missing))
    assert params == pb.GetRunParamsResponse(run_id=missing)


# GetMetricHistory


async def test_metric_history_in_step_order(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    request = pb.GetMetricHistoryRequest(run_id=seeded.walk_forward_a, metric_key="oos_sharpe")
    response = await stub.GetMetricHistory(request)
    assert response.run_id == seeded.walk_forward_a
    assert response.metric_key == "oos_sharpe"
    assert [(p.step, p.timestamp, p.value) for p in response.history] == [
        (step, seeded.fold_timestamps[step], FOLD_SHARPE[step]) for step in range(5)
    ]


async def test_metric_history_same_step_twice_by_time(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    request = pb.GetMetricHistoryRequest(run_id=seeded.cpcv_b, metric_key="oos_sharpe")
    response = await stub.GetMetricHistory(request)
    assert [(p.step, p.timestamp, p.value) for p in response.history] == list(seeded.cpcv_history)


async def test_metric_history_keeps_nan_and_infinity(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    nan = await stub.GetMetricHistory(
        pb.GetMetricHistoryRequest(run_id=seeded.cpcv_b, metric_key="calmar_ratio")
    )
    (point,) = nan.history
    assert (point.step, point.timestamp) == (0, T0)
    assert math.isnan(point.value)
    inf = await stub.GetMetricHistory(
        pb.GetMetricHistoryRequest(run_id=seeded.backtest_b, metric_key="sortino")
    )
    assert [p.value for p in inf.history] == [-math.inf]


async def test_metric_history_of_single_value(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    request = pb.GetMetricHistoryRequest(run_id=seeded.training_a, metric_key="max_drawdown")
    response = await stub.GetMetricHistory(request)
    assert [(p.step, p.timestamp, p.value) for p in response.history] == [(0, T0, -0.1231)]


async def test_metric_history_unknown_metric_is_empty(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    request = pb.GetMetricHistoryRequest(run_id=seeded.training_a, metric_key="no_such_metric")
    response = await stub.GetMetricHistory(request)
    assert response == pb.GetMetricHistoryResponse(
        run_id=seeded.training_a, metric_key="no_such_metric"
    )


async def test_metric_history_unknown_run_is_not_found(stub: TrackingServiceAsyncStub) -> None:
    missing = uuid.uuid4().hex
    request = pb.GetMetricHistoryRequest(run_id=missing, metric_key="oos_sharpe")
    error = await rpc_error(stub.GetMetricHistory(request))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Run not found: {missing}"
    assert [i.resource_name for i in _resource_infos(error)] == [missing]


# ListExperiments


async def test_list_experiments(stub: TrackingServiceAsyncStub, backend: Backend) -> None:
    seeded = backend.seeded
    experiments = {
        e.name: e for e in (await stub.ListExperiments(pb.ListExperimentsRequest())).experiments
    }
    default = experiments[seeded.experiment_name]
    assert default.experiment_id == seeded.experiment_id
    assert default.lifecycle_stage == "active"
    assert default.artifact_location
    if backend.settings.artifact_location is not None:
        assert default.artifact_location == backend.settings.artifact_location
    other = experiments[seeded.other_experiment_name]
    assert (other.experiment_id, other.lifecycle_stage) == (seeded.other_experiment_id, "active")
    assert experiments["Default"].experiment_id == "0"


async def test_deleted_experiment_is_listed_as_deleted(tmp_path: Path) -> None:
    settings = Settings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment_name="research",
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    server = await started(settings)
    try:
        client = MlflowClient(tracking_uri=settings.tracking_uri)
        gone = client.create_experiment("gone", artifact_location=(tmp_path / "gone").as_uri())
        client.delete_experiment(gone)
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            listed = (await stub.ListExperiments(pb.ListExperimentsRequest())).experiments
        stages = {e.name: e.lifecycle_stage for e in listed}
        assert stages == {"Default": "active", "research": "active", "gone": "deleted"}
    finally:
        await server.stop(0)


# The default experiment


async def test_default_experiment_is_created_in_a_fresh_embedded_store(tmp_path: Path) -> None:
    artifacts = (tmp_path / "artifacts").as_uri()
    settings = Settings(
        tracking_uri=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}",
        experiment_name="hedge-fund-research",
        artifact_location=artifacts,
    )
    server = await started(settings)
    try:
        assert (tmp_path / "store" / "mlflow.db").is_file()
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            listed = (await stub.ListExperiments(pb.ListExperimentsRequest())).experiments
            runs = await stub.ListRuns(pb.ListRunsRequest())
        created = next(e for e in listed if e.name == "hedge-fund-research")
        assert created.artifact_location == artifacts
        assert created.lifecycle_stage == "active"
        assert runs == pb.ListRunsResponse()
    finally:
        await server.stop(0)


async def test_default_experiment_is_created_on_the_tracking_server(
    mlflow_server: MlflowServer,
) -> None:
    name = f"created-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=mlflow_server.url)
    assert client.get_experiment_by_name(name) is None
    server = await started(Settings(tracking_uri=mlflow_server.url, experiment_name=name))
    try:
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
        assert experiment.lifecycle_stage == "active"
    finally:
        await server.stop(0)
    # A second start finds it rather than creating another.
    again = await started(Settings(tracking_uri=mlflow_server.url, experiment_name=name))
    await again.stop(0)
    matching = [e for e in client.search_experiments() if e.name == name]
    assert [e.experiment_id for e in matching] == [experiment.experiment_id]
