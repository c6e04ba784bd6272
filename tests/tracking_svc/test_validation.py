"""What callers send is checked before any of it reaches MLflow: filter values
are plain tokens (never an injected clause), run ids and metric names follow
MLflow's rules. Each refusal is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from research.tracking.v1 import tracking_pb2 as pb
from tests.fixtures.grpc import assert_invalid, field_violations, rpc_error
from tests.fixtures.mlflow import Seeded
from tests.tracking_svc.conftest import Backend

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

HOSTILE = [
    pytest.param("x' OR 1=1", id="or-clause"),
    pytest.param("training' OR tags.run_type = 'backtest", id="filter-clause"),
    pytest.param("'", id="quote"),
    pytest.param('"', id="double-quote"),
    pytest.param("\\", id="backslash"),
    pytest.param("a" * 10_240, id="10kB"),
    pytest.param("x" * 129, id="129-chars"),
    pytest.param("a b", id="space"),
    pytest.param("训练", id="unicode"),
    pytest.param("trainingé", id="accent"),
    pytest.param("", id="empty"),
    pytest.param("%", id="like-wildcard"),
    pytest.param("training\n", id="newline"),
]


@pytest.mark.parametrize("field", ["run_type", "strategy_id"])
@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_filter_values_are_refused_before_mlflow(
    stub: TrackingServiceAsyncStub, backend: Backend, field: str, value: str
) -> None:
    request = pb.ListRunsRequest(**{field: value})  # type: ignore[arg-type]
    error = await rpc_error(stub.ListRuns(request))
    assert_invalid(error, field, f"{field} must be 1 to 128 letters, digits or '_.:-' characters")
    # The caller's value is echoed, but never the whole 10 kB.
    assert len(error.details() or "") < 200
    if backend.proxy is not None:
        assert backend.proxy.matching("/runs/search") == []


async def test_a_bad_value_with_a_good_one_names_the_bad_field(
    stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    request = pb.ListRunsRequest(run_type="training", strategy_id="x' OR 1=1")
    error = await rpc_error(stub.ListRuns(request))
    assert_invalid(error, "strategy_id", 'got "x\' OR 1=1"')
    if backend.proxy is not None:
        assert backend.proxy.matching("/runs/search") == []


async def test_longest_valid_filter_value_is_searched(
    stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    response = await stub.ListRuns(pb.ListRunsRequest(run_type="x" * 128))
    assert response == pb.ListRunsResponse()
    if backend.proxy is not None:
        assert len(backend.proxy.matching("/runs/search")) == 1


BAD_RUN_IDS = [
    pytest.param("../etc", "must be an MLflow run id", id="dot-dot"),
    pytest.param("a/b", "must be an MLflow run id", id="slash"),
    pytest.param("a" * 257, "must be an MLflow run id", id="257-chars"),
    pytest.param("a" * 300, "must be an MLflow run id", id="300-chars"),
    pytest.param("-abc", "must be an MLflow run id", id="leading-dash"),
    pytest.param("abc' OR '1'='1", "must be an MLflow run id", id="quote"),
    pytest.param("", "run_id is required", id="empty"),
]


@pytest.mark.parametrize(("run_id", "fragment"), BAD_RUN_IDS)
async def test_malformed_run_ids_are_invalid(
    stub: TrackingServiceAsyncStub, backend: Backend, run_id: str, fragment: str
) -> None:
    for call in (
        stub.GetRun(pb.GetRunRequest(run_id=run_id)),
        stub.GetRunMetrics(pb.GetRunMetricsRequest(run_id=run_id)),
        stub.GetRunParams(pb.GetRunParamsRequest(run_id=run_id)),
        stub.GetMetricHistory(pb.GetMetricHistoryRequest(run_id=run_id, metric_key="oos_sharpe")),
    ):
        assert_invalid(await rpc_error(call), "run_id", fragment)
    if backend.proxy is not None:
        assert backend.proxy.matching("/runs/") == []
        assert backend.proxy.matching("/metrics/") == []


@pytest.mark.parametrize(
    ("metric_key", "fragment"),
    [
        pytest.param("", "metric_key is required", id="empty"),
        pytest.param("sharpe'", "must be an MLflow metric name", id="quote"),
        pytest.param("a" * 251, "must be an MLflow metric name", id="251-chars"),
        pytest.param("x\ny", "must be an MLflow metric name", id="newline"),
        pytest.param("a,b", "must be an MLflow metric name", id="comma"),
    ],
)
async def test_bad_metric_keys_are_invalid(
    stub: TrackingServiceAsyncStub, seeded: Seeded, metric_key: str, fragment: str
) -> None:
    request = pb.GetMetricHistoryRequest(run_id=seeded.walk_forward_a, metric_key=metric_key)
    assert_invalid(await rpc_error(stub.GetMetricHistory(request)), "metric_key", fragment)


@pytest.mark.parametrize("metric_key", ["a" * 250, "fold 1/oos_sharpe:v2.0-x"])
async def test_unusual_valid_metric_keys_are_looked_up(
    stub: TrackingServiceAsyncStub, seeded: Seeded, metric_key: str
) -> None:
    request = pb.GetMetricHistoryRequest(run_id=seeded.walk_forward_a, metric_key=metric_key)
    response = await stub.GetMetricHistory(request)
    assert (response.metric_key, list(response.history)) == (metric_key, [])


async def test_the_run_id_is_checked_before_the_metric_key(
    stub: TrackingServiceAsyncStub,
) -> None:
    request = pb.GetMetricHistoryRequest(run_id="../x", metric_key="")
    error = await rpc_error(stub.GetMetricHistory(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["run_id"]
