"""CompareExperiments: rows in request order, direction-aware best, diffs,
and the 2-10 / missing-id rules (CONTRACT §5, §7)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2

from research.experiments.v1 import experiments_pb2 as pb
from tests.experiments_svc.conftest import OTHER_STRATEGY, STRATEGY
from tests.fixtures.grpc import assert_invalid, rich_status, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


async def create(stub: ExperimentServiceAsyncStub, **fields: Any) -> str:
    for name in ("parameters", "metrics"):
        if name in fields:
            fields[name] = struct(fields[name])
    fields.setdefault("strategy_id", STRATEGY)
    return (await stub.CreateExperiment(pb.CreateExperimentRequest(**fields))).experiment.id


def as_json(response: pb.CompareExperimentsResponse) -> dict[str, Any]:
    return json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


async def test_compare_three_experiments(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(
        stub,
        dataset_version="ds1",
        git_commit_hash="c1",
        parameters={"lr": "0.05", "depth": 6, "flag": True},
        metrics={"mse": 0.20, "sharpe": 1.42, "max_drawdown": -0.12, "custom": 3},
    )
    b = await create(
        stub,
        dataset_version="ds1",
        git_commit_hash="c2",
        parameters={"lr": "0.050", "depth": 6, "flag": 1},
        metrics={"mse": 0.10, "sharpe": 1.18, "max_drawdown": -0.15},
    )
    c = await create(
        stub,
        strategy_id=OTHER_STRATEGY,
        dataset_version="ds1",
        parameters={"lr": "0.05", "depth": 6.0},
        metrics={"mse": 0.10, "sharpe": "n/a", "max_drawdown": -0.13, "custom": 1},
    )
    order = [c, a, b]
    response = await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=order))
    body = as_json(response)

    assert [row["id"] for row in body["experiments"]] == order
    metric_diff = body["metric_diff"]
    assert metric_diff["mse"] == {
        "values": {c: 0.1, a: 0.2, b: 0.1},
        "best_id": c,  # tie with b: the earlier id in the request wins
        "direction": "minimize",
    }
    assert metric_diff["sharpe"] == {
        "values": {c: "n/a", a: 1.42, b: 1.18},
        "best_id": a,  # a string never counts
        "direction": "maximize",
    }
    assert metric_diff["max_drawdown"]["best_id"] == a  # -0.12 beats -0.15
    assert metric_diff["max_drawdown"]["direction"] == "maximize"
    assert metric_diff["custom"] == {
        "values": {c: 1, a: 3, b: None},
        "best_id": c,  # no rule: the experiments default, minimize
        "direction": "minimize",
    }

    param_diff = body["param_diff"]
    assert param_diff["lr"] == {"values": {c: "0.05", a: "0.05", b: "0.050"}, "varies": True}
    assert param_diff["depth"] == {"values": {c: 6, a: 6, b: 6}, "varies": False}
    assert param_diff["flag"] == {"values": {c: None, a: True, b: 1}, "varies": True}

    lineage = body["lineage_diff"]
    assert set(lineage) == {
        "strategy_id",
        "dataset_version",
        "feature_version",
        "model_version",
        "git_commit_hash",
    }
    assert lineage["strategy_id"] == {
        "values": {c: OTHER_STRATEGY, a: STRATEGY, b: STRATEGY},
        "varies": True,
    }
    assert lineage["dataset_version"] == {"values": {c: "ds1", a: "ds1", b: "ds1"}, "varies": False}
    assert lineage["git_commit_hash"] == {"values": {c: None, a: "c1", b: "c2"}, "varies": True}
    assert lineage["model_version"] == {"values": {c: None, a: None, b: None}, "varies": False}


async def test_request_overrides_win_over_the_rules(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(stub, metrics={"mse": 0.1, "custom": 1, "sharpe": 1.0})
    b = await create(stub, metrics={"mse": 0.2, "custom": 2, "sharpe": 2.0})
    request = pb.CompareExperimentsRequest(
        experiment_ids=[a, b], maximize=["mse", "custom"], minimize=["sharpe"]
    )
    body = as_json(await stub.CompareExperiments(request))["metric_diff"]
    assert (body["mse"]["best_id"], body["mse"]["direction"]) == (b, "maximize")
    assert (body["custom"]["best_id"], body["custom"]["direction"]) == (b, "maximize")
    assert (body["sharpe"]["best_id"], body["sharpe"]["direction"]) == (a, "minimize")


async def test_no_counting_value_means_no_best(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(stub, metrics={"sharpe": True})
    b = await create(stub, metrics={"sharpe": None, "mse": {"nested": 1}})
    response = await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=[a, b]))
    assert not response.metric_diff["sharpe"].HasField("best_id")
    assert response.metric_diff["sharpe"].direction == "maximize"
    assert not response.metric_diff["mse"].HasField("best_id")


async def test_empty_rows_compare_to_empty_diffs(stub: ExperimentServiceAsyncStub) -> None:
    a, b = await create(stub), await create(stub)
    body = as_json(
        await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=[a, b]))
    )
    assert body["metric_diff"] == {}
    assert body["param_diff"] == {}
    assert body["lineage_diff"]["strategy_id"]["varies"] is False


async def test_an_empty_object_or_list_compares_as_itself_not_as_missing(
    stub: ExperimentServiceAsyncStub,
) -> None:
    a = await create(stub, parameters={"grid": {}, "tags": []})
    b = await create(stub, parameters={"grid": {"depth": 3}})
    response = await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=[a, b]))
    grid, tags = response.param_diff["grid"], response.param_diff["tags"]
    assert grid.values[a].WhichOneof("kind") == "struct_value"
    assert tags.values[a].WhichOneof("kind") == "list_value"
    assert tags.values[b].WhichOneof("kind") == "null_value"  # b has no "tags"
    assert as_json(response)["param_diff"]["grid"] == {
        "values": {a: {}, b: {"depth": 3.0}},
        "varies": True,
    }
    assert as_json(response)["param_diff"]["tags"] == {"values": {a: [], b: None}, "varies": True}


async def test_ten_is_the_most(stub: ExperimentServiceAsyncStub) -> None:
    ids = [await create(stub, metrics={"auc": i / 10}) for i in range(11)]
    response = await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=ids[:10]))
    assert response.metric_diff["auc"].best_id == ids[9]
    error = await rpc_error(
        stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=ids))
    )
    assert_invalid(error, "experiment_ids", "must hold 2 to 10 ids, got 11")


@pytest.mark.parametrize("count", [0, 1])
async def test_fewer_than_two_is_invalid(stub: ExperimentServiceAsyncStub, count: int) -> None:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    error = await rpc_error(
        stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=ids))
    )
    assert_invalid(error, "experiment_ids", f"must hold 2 to 10 ids, got {count}")


async def test_duplicates_are_invalid_whatever_their_case(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(stub)
    request = pb.CompareExperimentsRequest(experiment_ids=[a, a.upper()])
    error = await rpc_error(stub.CompareExperiments(request))
    assert_invalid(error, "experiment_ids", f"must be distinct; repeated: {a}")


async def test_malformed_id_is_invalid_naming_its_position(
    stub: ExperimentServiceAsyncStub,
) -> None:
    a = await create(stub)
    request = pb.CompareExperimentsRequest(experiment_ids=[a, "zzz"])
    error = await rpc_error(stub.CompareExperiments(request))
    assert_invalid(error, "experiment_ids[1]", "experiment_ids[1] must be a UUID, got 'zzz'")


async def test_overlapping_overrides_are_invalid(stub: ExperimentServiceAsyncStub) -> None:
    a, b = await create(stub), await create(stub)
    request = pb.CompareExperimentsRequest(
        experiment_ids=[a, b], maximize=["mse"], minimize=["mse"]
    )
    error = await rpc_error(stub.CompareExperiments(request))
    assert_invalid(error, "maximize", "and minimize both name 'mse'")


async def test_every_missing_id_is_listed(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(stub)
    missing = [str(uuid.uuid4()), str(uuid.uuid4())]
    request = pb.CompareExperimentsRequest(experiment_ids=[missing[0], a, missing[1]])
    error = await rpc_error(stub.CompareExperiments(request))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Experiments not found: {missing[0]}, {missing[1]}"
    names = []
    for detail in rich_status(error).details:
        info = error_details_pb2.ResourceInfo()
        assert detail.Unpack(info)
        names.append(info.resource_name)
    assert names == missing
