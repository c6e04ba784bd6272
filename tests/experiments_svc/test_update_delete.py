"""UpdateExperiment (update-mask semantics, write-once lineage) and
DeleteExperiment (CONTRACT §5)."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format, struct_pb2

from research.experiments.v1 import experiments_pb2 as pb
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import assert_invalid, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


@pytest.fixture
async def recorded(stub: ExperimentServiceAsyncStub) -> pb.Experiment:
    request = pb.CreateExperimentRequest(
        strategy_id=STRATEGY,
        dataset_version="ds1",
        git_commit_hash="c0ffee",
        mlflow_run_id="run-1",
        parameters=struct({"lr": 0.1}),
        metrics=struct({"mse": 0.5}),
        artifacts={"model": "s3://m"},
    )
    return (await stub.CreateExperiment(request)).experiment


def patch(
    experiment_id: str, paths: list[str] | None = None, **fields: object
) -> pb.UpdateExperimentRequest:
    body = pb.Experiment(**fields)  # type: ignore[arg-type]
    mask = field_mask_pb2.FieldMask(paths=paths) if paths is not None else None
    return pb.UpdateExperimentRequest(
        experiment_id=experiment_id, experiment=body, update_mask=mask
    )


async def test_masked_field_is_replaced_and_the_rest_untouched(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    request = patch(recorded.id, ["metrics"], metrics=struct({"sharpe": 1.5}))
    updated = (await stub.UpdateExperiment(request)).experiment

    assert json_format.MessageToDict(updated.metrics) == {"sharpe": 1.5}
    assert json_format.MessageToDict(updated.parameters) == {"lr": 0.1}  # not in the mask
    assert updated.mlflow_run_id == "run-1"
    assert dict(updated.artifacts) == {"model": "s3://m"}
    assert updated.dataset_version == "ds1"
    assert updated.created_at == recorded.created_at
    assert updated.updated_at.ToDatetime() > recorded.updated_at.ToDatetime()

    stored = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=recorded.id))
    ).experiment
    assert stored == updated


async def test_masked_but_unset_fields_are_cleared(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    request = patch(recorded.id, ["mlflow_run_id", "parameters", "metrics", "artifacts"])
    updated = (await stub.UpdateExperiment(request)).experiment
    assert not updated.HasField("mlflow_run_id")
    assert dict(updated.parameters) == {}
    assert dict(updated.metrics) == {}
    assert dict(updated.artifacts) == {}
    assert updated.dataset_version == "ds1"


async def test_without_a_mask_the_set_fields_are_replaced(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    updated = (await stub.UpdateExperiment(patch(recorded.id, mlflow_run_id="run-2"))).experiment
    assert updated.mlflow_run_id == "run-2"
    assert json_format.MessageToDict(updated.metrics) == {"mse": 0.5}
    assert dict(updated.artifacts) == {"model": "s3://m"}


async def test_an_empty_update_changes_nothing(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    updated = (await stub.UpdateExperiment(patch(recorded.id))).experiment
    assert updated == recorded


@pytest.mark.parametrize(
    "field",
    ["strategy_id", "dataset_version", "feature_version", "model_version", "git_commit_hash"],
)
async def test_lineage_fields_are_write_once(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment, field: str
) -> None:
    value = str(uuid.uuid4()) if field == "strategy_id" else "changed"
    change: dict[str, Any] = {field: value}
    for request in (
        patch(recorded.id, [field], **change),
        patch(recorded.id, **change),
    ):
        error = await rpc_error(stub.UpdateExperiment(request))
        assert_invalid(error, field, f"{field} is write-once")
    stored = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=recorded.id))
    ).experiment
    assert stored == recorded


@pytest.mark.parametrize(
    ("path", "field", "fragment"),
    [
        ("id", "id", "id is output only"),
        ("created_at", "created_at", "created_at is output only"),
        ("bogus", "update_mask", "names an unknown field 'bogus'"),
        ("parameters.lr", "update_mask", "can only replace whole fields"),
    ],
)
async def test_other_mask_paths_are_refused(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment, path: str, field: str, fragment: str
) -> None:
    error = await rpc_error(stub.UpdateExperiment(patch(recorded.id, [path])))
    assert_invalid(error, field, fragment)


async def test_invalid_values_leave_the_row_unchanged(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    metrics = struct_pb2.Struct()
    metrics.fields["sharpe"].number_value = float("nan")
    error = await rpc_error(stub.UpdateExperiment(patch(recorded.id, ["metrics"], metrics=metrics)))
    assert_invalid(error, "metrics.sharpe", "finite number")
    error = await rpc_error(stub.UpdateExperiment(patch(recorded.id, mlflow_run_id="r" * 256)))
    assert_invalid(error, "mlflow_run_id", "at most 255 characters")
    stored = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=recorded.id))
    ).experiment
    assert stored == recorded


async def test_update_unknown_is_not_found(stub: ExperimentServiceAsyncStub) -> None:
    error = await rpc_error(stub.UpdateExperiment(patch(str(uuid.uuid4()), mlflow_run_id="r")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Experiment not found"


async def test_update_malformed_id_is_invalid(stub: ExperimentServiceAsyncStub) -> None:
    error = await rpc_error(stub.UpdateExperiment(patch("42", mlflow_run_id="r")))
    assert_invalid(error, "experiment_id", "experiment_id must be a UUID")


async def test_concurrent_updates_serialise(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    written = [f"run-{i}" for i in range(20)]
    results = await asyncio.gather(
        *(stub.UpdateExperiment(patch(recorded.id, mlflow_run_id=run)) for run in written)
    )
    stamps = sorted(r.experiment.updated_at.ToDatetime() for r in results)
    assert len(set(stamps)) == len(written)  # every update moved updated_at
    final = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=recorded.id))
    ).experiment
    assert final.mlflow_run_id in written
    assert final.updated_at.ToDatetime() == stamps[-1]
    # The last update applied is the one whose value is stored.
    last = max(results, key=lambda r: r.experiment.updated_at.ToDatetime())
    assert last.experiment.mlflow_run_id == final.mlflow_run_id


async def test_delete_removes_the_experiment(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    response = await stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=recorded.id))
    assert response == pb.DeleteExperimentResponse()
    error = await rpc_error(stub.GetExperiment(pb.GetExperimentRequest(experiment_id=recorded.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    again = await rpc_error(
        stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=recorded.id))
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND
    assert again.details() == "Experiment not found"


async def test_delete_malformed_id_is_invalid(stub: ExperimentServiceAsyncStub) -> None:
    error = await rpc_error(stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id="x")))
    assert_invalid(error, "experiment_id", "experiment_id must be a UUID")


async def test_a_set_field_outside_the_mask_is_refused(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    # Before: the parameters were dropped silently and the call answered OK.
    request = patch(
        recorded.id, ["metrics"], metrics=struct({"sharpe": 1.5}), parameters=struct({"x": 1})
    )
    error = await rpc_error(stub.UpdateExperiment(request))
    assert_invalid(error, "parameters", "parameters is set but update_mask (metrics) does not")
    stored = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=recorded.id))
    ).experiment
    assert stored == recorded


async def test_a_lineage_field_is_refused_whatever_the_mask(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    request = patch(
        recorded.id, ["parameters"], parameters=struct({"x": 1}), dataset_version="other"
    )
    error = await rpc_error(stub.UpdateExperiment(request))
    assert_invalid(error, "dataset_version", "dataset_version is write-once")


async def test_an_update_to_the_same_values_does_not_move_updated_at(
    stub: ExperimentServiceAsyncStub, recorded: pb.Experiment
) -> None:
    same = patch(
        recorded.id,
        mlflow_run_id="run-1",
        parameters=struct({"lr": 0.1}),
        metrics=struct({"mse": 0.5}),
        artifacts={"model": "s3://m"},
    )
    updated = (await stub.UpdateExperiment(same)).experiment
    assert updated == recorded
    # A change of kind is a change: 1 and true are not the same JSON value.
    flag = (
        await stub.UpdateExperiment(patch(recorded.id, parameters=struct({"lr": 0.1, "f": 1})))
    ).experiment
    flipped = (
        await stub.UpdateExperiment(patch(recorded.id, parameters=struct({"lr": 0.1, "f": True})))
    ).experiment
    assert flipped.parameters.fields["f"].bool_value is True
    assert flipped.updated_at.ToDatetime() > flag.updated_at.ToDatetime()
