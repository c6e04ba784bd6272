"""CompareRuns: rows in request order, the §7 metric, parameter and lineage
diffs, the 2-10 / distinct / missing-id rules, and one MLflow round trip."""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2

from research.tracking.v1 import tracking_pb2 as pb
from tests.fixtures.grpc import assert_invalid, rich_status, rpc_error
from tests.fixtures.mlflow import STRATEGY_A, STRATEGY_B, Seeded
from tests.tracking_svc.conftest import Backend
from tracking_svc.lineage import LINEAGE_TAGS

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

Plain = float | str | bool | None


def plain(value: struct_pb2.Value) -> Plain:
    """A protobuf Value as Python (NaN and ±inf stay floats)."""
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    raise AssertionError(f"unexpected Value kind {kind}")


def values(entry: pb.MetricDiff | pb.ValueDiff) -> dict[str, Plain]:
    return {run_id: plain(value) for run_id, value in entry.values.items()}


def metric(entry: pb.MetricDiff) -> tuple[dict[str, Plain], str | None, str]:
    best = entry.best_run_id if entry.HasField("best_run_id") else None
    return values(entry), best, entry.direction


def value_diff(entry: pb.ValueDiff) -> tuple[dict[str, Plain], bool]:
    return values(entry), entry.varies


async def compare(
    stub: TrackingServiceAsyncStub, run_ids: list[str], **overrides: Any
) -> pb.CompareRunsResponse:
    return await stub.CompareRuns(pb.CompareRunsRequest(run_ids=run_ids, **overrides))


async def test_rows_in_request_order_with_run_type(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    order = [seeded.backtest_b, seeded.untagged, seeded.training_a, seeded.walk_forward_a]
    response = await compare(stub, order)
    assert [row.run_id for row in response.runs] == order
    assert [row.run_type for row in response.runs] == [
        "backtest",
        "unknown",
        "training",
        "walk_forward",
    ]
    assert [row.run_name for row in response.runs] == [
        "backtest",
        "manual-check",
        "training",
        "walk_forward",
    ]
    untagged = response.runs[1]
    assert dict(untagged.params) == {"learning_rate": "0.05"}
    assert dict(untagged.metrics) == {"oos_sharpe": 1.0}
    reversed_order = list(reversed(order))
    again = await compare(stub, reversed_order)
    assert [row.run_id for row in again.runs] == reversed_order


async def test_rows_say_which_runs_are_deleted(
    stub: TrackingServiceAsyncStub, seeded: Seeded, deleted_run: str
) -> None:
    order = [seeded.training_a, deleted_run, seeded.other]
    response = await compare(stub, order)
    assert [(row.run_id, row.lifecycle_stage) for row in response.runs] == [
        (seeded.training_a, "active"),
        (deleted_run, "deleted"),
        (seeded.other, "active"),
    ]
    # A deleted run is compared like any other.
    assert values(response.metric_diff["oos_sharpe"]) == {
        seeded.training_a: 1.42,
        deleted_run: 0.5,
        seeded.other: 2.0,
    }


async def test_metric_diff_directions_and_best(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    a, b = seeded.training_a, seeded.training_b
    response = await compare(stub, [a, b])
    diff = response.metric_diff
    assert set(diff) == {
        "oos_sharpe",
        "max_drawdown",
        "rmse",
        "custom_score",
        "accuracy",
        "calmar_ratio",
    }
    assert metric(diff["oos_sharpe"]) == ({a: 1.42, b: 1.18}, a, "maximize")
    # Drawdowns are negative fractions: -0.1231 beats -0.1544.
    assert metric(diff["max_drawdown"]) == ({a: -0.1231, b: -0.1544}, a, "maximize")
    assert metric(diff["rmse"]) == ({a: 0.20, b: 0.10}, b, "minimize")
    # No rule for this name: the tracking default, maximize.
    assert metric(diff["custom_score"]) == ({a: 3.0, b: 5.0}, b, "maximize")
    # A tie goes to the earlier id in the request.
    assert metric(diff["accuracy"]) == ({a: 0.61, b: 0.61}, a, "maximize")
    # Missing in one run: null there; the other one is best.
    assert metric(diff["calmar_ratio"]) == ({a: 1.15, b: None}, a, "maximize")

    swapped = (await compare(stub, [b, a])).metric_diff
    assert metric(swapped["accuracy"]) == ({b: 0.61, a: 0.61}, b, "maximize")
    assert metric(swapped["oos_sharpe"])[1] == a


async def test_request_overrides_the_direction(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    a, b = seeded.training_a, seeded.training_b
    response = await compare(
        stub, [a, b], minimize=["custom_score", "oos_sharpe"], maximize=["rmse"]
    )
    diff = response.metric_diff
    assert metric(diff["custom_score"]) == ({a: 3.0, b: 5.0}, a, "minimize")
    assert metric(diff["oos_sharpe"]) == ({a: 1.42, b: 1.18}, b, "minimize")
    assert metric(diff["rmse"]) == ({a: 0.20, b: 0.10}, a, "maximize")
    # Names not overridden keep their rule; overrides of absent metrics are harmless.
    assert metric(diff["max_drawdown"])[1:] == (a, "maximize")
    other = await compare(stub, [a, b], maximize=["no_such_metric"])
    assert "no_such_metric" not in other.metric_diff


async def test_overlapping_overrides_are_invalid(
    stub: TrackingServiceAsyncStub, seeded: Seeded, backend: Backend
) -> None:
    request = pb.CompareRunsRequest(
        run_ids=[seeded.training_a, seeded.training_b],
        maximize=["rmse", "oos_sharpe"],
        minimize=["oos_sharpe", "rmse"],
    )
    error = await rpc_error(stub.CompareRuns(request))
    assert_invalid(error, "maximize", "and minimize both name 'oos_sharpe', 'rmse'")
    if backend.proxy is not None:
        assert backend.proxy.matching("/runs/") == []


async def test_nan_and_infinity_never_count_as_best(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    cpcv, backtest, training = seeded.cpcv_b, seeded.backtest_b, seeded.training_a
    response = await compare(stub, [cpcv, backtest, training])
    calmar_values, calmar_best, calmar_direction = metric(response.metric_diff["calmar_ratio"])
    # +inf is the largest value, NaN is first in the request: neither is best.
    assert (calmar_best, calmar_direction) == (training, "maximize")
    assert calmar_values[training] == 1.15
    assert calmar_values[backtest] == math.inf
    calmar_cpcv = calmar_values[cpcv]
    assert isinstance(calmar_cpcv, float)
    assert math.isnan(calmar_cpcv)

    sortino_values, sortino_best, sortino_direction = metric(response.metric_diff["sortino"])
    # NaN, -inf and a missing value: no run has a finite value.
    assert sortino_best is None
    assert sortino_direction == "maximize"
    assert sortino_values[backtest] == -math.inf
    assert sortino_values[training] is None
    sortino_cpcv = sortino_values[cpcv]
    assert isinstance(sortino_cpcv, float)
    assert math.isnan(sortino_cpcv)
    # The rows carry the values as logged.
    assert math.isnan(response.runs[0].metrics["calmar_ratio"])
    assert response.runs[1].metrics["calmar_ratio"] == math.inf


async def test_param_diff(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    a, b, untagged = seeded.training_a, seeded.training_b, seeded.untagged
    diff = (await compare(stub, [a, b, untagged])).param_diff
    assert set(diff) == {"plugin_key", "learning_rate", "max_depth", "n_estimators", "subsample"}
    assert value_diff(diff["learning_rate"]) == ({a: "0.05", b: "0.01", untagged: "0.05"}, True)
    assert value_diff(diff["max_depth"]) == ({a: "6", b: "6", untagged: None}, True)
    assert value_diff(diff["subsample"]) == ({a: "0.8", b: None, untagged: None}, True)

    pair = (await compare(stub, [a, b])).param_diff
    assert value_diff(pair["max_depth"]) == ({a: "6", b: "6"}, False)
    assert value_diff(pair["plugin_key"]) == ({a: "ml.xgboost", b: "ml.xgboost"}, False)
    assert value_diff(pair["n_estimators"]) == ({a: "200", b: "300"}, True)


async def test_lineage_diff_covers_exactly_the_lineage_tags(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    a, b, untagged = seeded.training_a, seeded.training_b, seeded.untagged
    diff = (await compare(stub, [a, b, untagged])).lineage_diff
    assert set(diff) == set(LINEAGE_TAGS)
    assert len(LINEAGE_TAGS) == 7
    assert value_diff(diff["strategy_id"]) == ({a: STRATEGY_A, b: STRATEGY_B, untagged: None}, True)
    assert value_diff(diff["run_type"]) == ({a: "training", b: "training", untagged: None}, True)
    assert value_diff(diff["signal_version"]) == ({a: "s2", b: None, untagged: None}, True)
    assert diff["signal_version"].values[b].WhichOneof("kind") == "null_value"

    pair = (await compare(stub, [a, b])).lineage_diff
    assert value_diff(pair["run_type"]) == ({a: "training", b: "training"}, False)
    assert value_diff(pair["dataset_version"]) == ({a: "ds-2024-06", b: "ds-2024-06"}, False)
    assert value_diff(pair["feature_version"]) == ({a: "v3", b: "v3"}, False)
    assert value_diff(pair["git_commit"]) == ({a: "3f9a1c2", b: "9c8b7a6"}, True)
    assert value_diff(pair["model_version"]) == ({a: "v1", b: "v2"}, True)
    assert value_diff(pair["signal_version"]) == ({a: "s2", b: None}, True)

    # Two runs both lacking every lineage tag: all null, nothing varies.
    untagged_only = await compare(stub, [untagged, seeded.walk_forward_a])
    assert value_diff(untagged_only.lineage_diff["model_version"]) == (
        {untagged: None, seeded.walk_forward_a: None},
        False,
    )


async def test_runs_from_another_experiment(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    a, other = seeded.training_a, seeded.other
    response = await compare(stub, [other, a])
    assert [(row.run_id, row.run_type) for row in response.runs] == [
        (other, "training"),
        (a, "training"),
    ]
    assert metric(response.metric_diff["oos_sharpe"]) == ({other: 2.0, a: 1.42}, other, "maximize")
    assert value_diff(response.param_diff["learning_rate"]) == ({other: "0.02", a: "0.05"}, True)


@pytest.mark.parametrize("count", [0, 1, 11])
async def test_count_outside_two_to_ten_is_invalid(
    stub: TrackingServiceAsyncStub, seeded: Seeded, count: int
) -> None:
    pool = [*seeded.newest_first, *seeded.bulk]
    error = await rpc_error(compare(stub, pool[:count]))
    assert_invalid(error, "run_ids", f"run_ids must hold 2 to 10 ids, got {count}")


async def test_ten_runs_compare(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    ids = [*seeded.newest_first, *seeded.bulk[:3]]
    response = await compare(stub, ids)
    assert [row.run_id for row in response.runs] == ids
    assert values(response.lineage_diff["run_type"])[seeded.bulk[0]] is None


async def test_duplicate_ids_are_invalid(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    a, b = seeded.training_a, seeded.training_b
    error = await rpc_error(compare(stub, [a, b, a]))
    assert_invalid(error, "run_ids", f"run_ids must be distinct; repeated: {a}")


async def test_malformed_id_is_invalid_by_position(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    error = await rpc_error(compare(stub, [seeded.training_a, "../etc"]))
    assert_invalid(error, "run_ids[1]", "must be an MLflow run id")


async def test_missing_ids_are_all_listed(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    error = await rpc_error(compare(stub, [first, seeded.training_a, second]))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Run not found: {first}, {second}"
    infos = []
    for detail in rich_status(error).details:
        info = error_details_pb2.ResourceInfo()
        assert detail.Unpack(info)
        infos.append((info.resource_type, info.resource_name))
    assert infos == [("mlflow.Run", first), ("mlflow.Run", second)]


async def test_all_missing(stub: TrackingServiceAsyncStub) -> None:
    ids = [uuid.uuid4().hex for _ in range(3)]
    error = await rpc_error(compare(stub, ids))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Run not found: {', '.join(ids)}"


# One round trip (the server store only: the proxy sees what MLflow is asked)


def _run_requests(backend: Backend) -> list[tuple[str, str]]:
    assert backend.proxy is not None
    return [
        (request.method, request.path.partition("?")[0])
        for request in backend.proxy.requests
        if "/runs/" in request.path or "/metrics/" in request.path
    ]


@pytest.mark.parametrize("backend", ["server"], indirect=True)
async def test_compare_is_one_search_request(
    stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    seeded = backend.seeded
    ids = seeded.newest_first[:5]
    assert backend.proxy is not None
    backend.proxy.reset()
    response = await compare(stub, ids)
    assert [row.run_id for row in response.runs] == ids
    # One search for the runs, and one history request for the only metric
    # logged at several steps (oos_sharpe, per fold), for all runs together.
    assert _run_requests(backend) == [
        ("POST", "/api/2.0/mlflow/runs/search"),
        ("GET", "/ajax-api/2.0/mlflow/metrics/get-history-bulk"),
    ]
    assert backend.proxy.matching("/runs/get") == []


@pytest.mark.parametrize("backend", ["server"], indirect=True)
async def test_compare_across_experiments_fetches_no_run_by_id(
    stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    seeded = backend.seeded
    assert backend.proxy is not None
    backend.proxy.reset()
    await compare(stub, [seeded.training_a, seeded.other, seeded.training_b])
    # The default experiment first; the id not found there in one more search.
    assert _run_requests(backend) == [("POST", "/api/2.0/mlflow/runs/search")] * 2
    assert backend.proxy.matching("/runs/get") == []
