"""CreateExperiment and GetExperiment through a real channel (CONTRACT §5)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2

from research.experiments.v1 import experiments_pb2 as pb
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import assert_invalid, rich_status, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


async def test_create_returns_the_stored_experiment(stub: ExperimentServiceAsyncStub) -> None:
    request = pb.CreateExperimentRequest(
        strategy_id=STRATEGY,
        dataset_version="ds-9f2c",
        feature_version="feat-v3",
        model_version="model-v1",
        git_commit_hash="3f9a1c2",
        mlflow_run_id="abc123def456",
        parameters=struct({"n_estimators": 200, "lr": 0.05, "grid": [1, 2], "deep": {"x": None}}),
        metrics=struct({"mse": 0.0123, "sharpe": 1.42, "ok": True}),
        artifacts={"model": "s3://research-artifacts/models/m/model.pkl"},
    )
    created = (await stub.CreateExperiment(request)).experiment

    assert uuid.UUID(created.id).version == 4
    assert created.strategy_id == STRATEGY
    assert created.dataset_version == "ds-9f2c"
    assert created.feature_version == "feat-v3"
    assert created.model_version == "model-v1"
    assert created.git_commit_hash == "3f9a1c2"
    assert created.mlflow_run_id == "abc123def456"
    assert json_format.MessageToDict(created.parameters) == {
        "n_estimators": 200,
        "lr": 0.05,
        "grid": [1, 2],
        "deep": {"x": None},
    }
    assert json_format.MessageToDict(created.metrics) == {"mse": 0.0123, "sharpe": 1.42, "ok": True}
    assert dict(created.artifacts) == {"model": "s3://research-artifacts/models/m/model.pkl"}
    assert created.created_at == created.updated_at
    assert created.created_at.seconds > 0

    fetched = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=created.id))
    ).experiment
    assert fetched == created


async def test_create_with_only_a_strategy_leaves_the_rest_empty(
    stub: ExperimentServiceAsyncStub,
) -> None:
    created = (
        await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
    ).experiment
    assert not created.HasField("dataset_version")
    assert not created.HasField("feature_version")
    assert not created.HasField("model_version")
    assert not created.HasField("git_commit_hash")
    assert not created.HasField("mlflow_run_id")
    assert created.HasField("parameters")
    assert created.HasField("metrics")
    assert dict(created.parameters) == {}
    assert dict(created.metrics) == {}
    assert dict(created.artifacts) == {}


async def test_create_stores_a_canonical_strategy_id(stub: ExperimentServiceAsyncStub) -> None:
    request = pb.CreateExperimentRequest(strategy_id=STRATEGY.upper())
    created = (await stub.CreateExperiment(request)).experiment
    assert created.strategy_id == STRATEGY


async def test_create_requires_a_strategy(stub: ExperimentServiceAsyncStub) -> None:
    error = await rpc_error(stub.CreateExperiment(pb.CreateExperimentRequest()))
    assert_invalid(error, "strategy_id", "strategy_id is required")


@pytest.mark.parametrize(
    "value", ["not-a-uuid", "a1b2c3d4-e5f6-7890-abcd-ef123456789", "x' OR 1=1"]
)
async def test_create_refuses_a_malformed_strategy(
    stub: ExperimentServiceAsyncStub, value: str
) -> None:
    error = await rpc_error(stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=value)))
    assert_invalid(error, "strategy_id", "strategy_id must be a UUID")


@pytest.mark.parametrize(
    "field",
    ["dataset_version", "feature_version", "model_version", "git_commit_hash", "mlflow_run_id"],
)
async def test_create_holds_text_fields_to_255_characters(
    stub: ExperimentServiceAsyncStub, field: str
) -> None:
    long_value: dict[str, Any] = {field: "é" * 255}
    at_limit = pb.CreateExperimentRequest(strategy_id=STRATEGY, **long_value)
    created = (await stub.CreateExperiment(at_limit)).experiment
    assert getattr(created, field) == "é" * 255

    too_long: dict[str, Any] = {field: "x" * 256}
    over = pb.CreateExperimentRequest(strategy_id=STRATEGY, **too_long)
    error = await rpc_error(stub.CreateExperiment(over))
    assert_invalid(error, field, f"{field} must be at most 255 characters, got 256")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
async def test_create_refuses_non_finite_metrics(
    stub: ExperimentServiceAsyncStub, bad: float
) -> None:
    metrics = struct_pb2.Struct()
    metrics.fields["sharpe"].number_value = bad
    error = await rpc_error(
        stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY, metrics=metrics))
    )
    assert_invalid(error, "metrics.sharpe", "metrics.sharpe must be a finite number")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"git_commit_hash": "abc\x00def"}, "git_commit_hash"),
        ({"parameters": {"note": "a\x00b"}}, "parameters.note"),
        ({"artifacts": {"model": "s3://a\x00"}}, "artifacts.model"),
    ],
)
async def test_create_refuses_nul_characters(
    stub: ExperimentServiceAsyncStub, request_fields: dict[str, object], field: str
) -> None:
    values: dict[str, Any] = dict(request_fields)
    if "parameters" in values:
        values["parameters"] = struct(values["parameters"])
    request = pb.CreateExperimentRequest(strategy_id=STRATEGY, **values)
    error = await rpc_error(stub.CreateExperiment(request))
    assert_invalid(error, field, "must not contain NUL characters")


async def test_unicode_survives_the_round_trip(stub: ExperimentServiceAsyncStub) -> None:
    request = pb.CreateExperimentRequest(
        strategy_id=STRATEGY,
        dataset_version="données-✓-数据",
        parameters=struct({"тег": "値 🚀"}),
        artifacts={"graphique": "s3://b/é.png"},
    )
    created = (await stub.CreateExperiment(request)).experiment
    fetched = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=created.id))
    ).experiment
    assert fetched.dataset_version == "données-✓-数据"
    assert json_format.MessageToDict(fetched.parameters) == {"тег": "値 🚀"}
    assert dict(fetched.artifacts) == {"graphique": "s3://b/é.png"}


async def test_get_unknown_is_not_found_with_the_id(stub: ExperimentServiceAsyncStub) -> None:
    missing = str(uuid.uuid4())
    error = await rpc_error(stub.GetExperiment(pb.GetExperimentRequest(experiment_id=missing)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Experiment not found"
    info = error_details_pb2.ResourceInfo()
    (detail,) = rich_status(error).details
    assert detail.Unpack(info)
    assert info.resource_name == missing
    assert info.resource_type == "research.experiments.v1.Experiment"


@pytest.mark.parametrize("value", ["", "nope", "../../etc/passwd", "1234"])
async def test_get_malformed_id_is_invalid(stub: ExperimentServiceAsyncStub, value: str) -> None:
    error = await rpc_error(stub.GetExperiment(pb.GetExperimentRequest(experiment_id=value)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "experiment_id" in (error.details() or "")
