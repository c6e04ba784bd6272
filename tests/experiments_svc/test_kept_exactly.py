"""What is accepted is kept exactly, and every accepted row can be read
back (CONTRACT §3): free-form numbers within ±(2^53 - 1), empty lineage
strings refused, and the bound on what one experiment may hold, which keeps
a compare of ten of the largest rows within one gRPC message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf import struct_pb2

from experiments_svc.models import OPTIONAL_TEXT_FIELDS
from experiments_svc.validation import MAX_DIFF_KEYS, MAX_EXPERIMENT_BYTES
from research.experiments.v1 import experiments_pb2 as pb
from research_common.constants import MAX_MESSAGE_BYTES
from research_common.free_form import MAX_SAFE_INTEGER
from tests.experiments_svc.conftest import STRATEGY
from tests.fixtures.grpc import assert_invalid, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


def numbers(**values: float) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    for key, value in values.items():
        message.fields[key].number_value = value
    return message


@pytest.mark.parametrize(
    "value",
    [
        float(2**53),  # 2^53 + 1 arrives as this
        12345678901234568.0,
        -float(2**53),
        float(2**64 - 1),
        1e300,
    ],
)
async def test_a_number_beyond_the_exact_range_is_refused(
    stub: ExperimentServiceAsyncStub, value: float
) -> None:
    request = pb.CreateExperimentRequest(strategy_id=STRATEGY, parameters=numbers(seed=value))
    error = await rpc_error(stub.CreateExperiment(request))
    assert_invalid(error, "parameters.seed", f"beyond ±{MAX_SAFE_INTEGER} (2^53 - 1)")
    assert "send it as a string" in (error.details() or "")
    listed = await stub.ListExperiments(pb.ListExperimentsRequest())
    assert list(listed.experiments) == []


async def test_a_nested_number_beyond_the_range_is_named_by_its_path(
    stub: ExperimentServiceAsyncStub,
) -> None:
    metrics = struct({"folds": [1.5, {"n": 2.0**60}]})
    request = pb.CreateExperimentRequest(strategy_id=STRATEGY, metrics=metrics)
    error = await rpc_error(stub.CreateExperiment(request))
    assert_invalid(error, "metrics.folds[1].n", "beyond ±9007199254740991")


async def test_the_edges_of_the_range_and_integral_doubles_are_kept(
    stub: ExperimentServiceAsyncStub,
) -> None:
    parameters = numbers(top=MAX_SAFE_INTEGER, bottom=-MAX_SAFE_INTEGER, one=1.0, zero=-0.0)
    parameters.fields["half"].number_value = 0.5
    created = (
        await stub.CreateExperiment(
            pb.CreateExperimentRequest(strategy_id=STRATEGY, parameters=parameters)
        )
    ).experiment
    stored = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=created.id))
    ).experiment
    for message in (created, stored):
        fields = message.parameters.fields
        assert fields["top"].number_value == 9007199254740991
        assert fields["bottom"].number_value == -9007199254740991
        assert fields["one"].number_value == 1
        assert fields["half"].number_value == 0.5
        # -0.0 is the integer 0: its sign is not kept (CONTRACT §3, README).
        assert str(fields["zero"].number_value) == "0.0"


@pytest.mark.parametrize(
    "field", ["dataset_version", "feature_version", "model_version", "git_commit_hash"]
)
async def test_an_empty_lineage_string_is_refused_on_create(
    stub: ExperimentServiceAsyncStub, field: str
) -> None:
    request = pb.CreateExperimentRequest(strategy_id=STRATEGY, **{field: ""})  # type: ignore[arg-type]
    error = await rpc_error(stub.CreateExperiment(request))
    assert_invalid(error, field, f"{field} must not be empty")


async def test_an_empty_mlflow_run_id_is_refused_and_blocks_nothing(
    stub: ExperimentServiceAsyncStub,
) -> None:
    for _ in range(2):
        request = pb.CreateExperimentRequest(strategy_id=STRATEGY, mlflow_run_id="")
        error = await rpc_error(stub.CreateExperiment(request))
        assert_invalid(error, "mlflow_run_id", "mlflow_run_id must not be empty")
    created = (
        await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
    ).experiment
    update = pb.UpdateExperimentRequest(
        experiment_id=created.id, experiment=pb.Experiment(mlflow_run_id="")
    )
    error = await rpc_error(stub.UpdateExperiment(update))
    assert_invalid(error, "mlflow_run_id", "must not be empty")


# --- what one experiment may hold ------------------------------------------


def largest(tag: str, *, keys: int) -> dict[str, Any]:
    """A create request's fields as large as one experiment may be: every
    lineage string at 255 characters, `keys` top-level keys (distinct from
    every other row's, so that a compare has the most diff entries) split
    between parameters and metrics, and a filler string grown until one
    more byte would be refused."""
    parameters: dict[str, Any] = {f"{tag}-p{i:03d}".ljust(40, "k"): i for i in range(keys // 2)}
    metrics = {f"{tag}-m{i:03d}".ljust(40, "k"): i + 0.25 for i in range(keys - keys // 2 - 1)}
    fields: dict[str, Any] = {
        "strategy_id": STRATEGY,
        **{name: (tag + "-" + name).ljust(255, "v") for name in OPTIONAL_TEXT_FIELDS},
        "artifacts": {"model": "s3://bucket/" + tag},
    }
    filler = f"{tag}-filler"
    low, high = 0, MAX_EXPERIMENT_BYTES
    while low < high:  # the longest filler that keeps the row within the bound
        middle = (low + high + 1) // 2
        if _size({**parameters, filler: "f" * middle}, metrics, fields) <= MAX_EXPERIMENT_BYTES:
            low = middle
        else:
            high = middle - 1
    parameters[filler] = "f" * low
    return {**fields, "parameters": parameters, "metrics": metrics}


def _size(parameters: dict[str, Any], metrics: dict[str, Any], fields: dict[str, Any]) -> int:
    """The encoded size the bound applies to: the caller's fields."""
    message = pb.Experiment(**fields, parameters=struct(parameters), metrics=struct(metrics))
    return message.ByteSize()


def create_request(fields: dict[str, Any]) -> pb.CreateExperimentRequest:
    return pb.CreateExperimentRequest(
        **{
            **fields,
            "parameters": struct(fields["parameters"]),
            "metrics": struct(fields["metrics"]),
        }
    )


async def test_one_byte_over_the_bound_is_refused(stub: ExperimentServiceAsyncStub) -> None:
    fields = largest("a", keys=4)
    accepted = (await stub.CreateExperiment(create_request(fields))).experiment
    # Within the bound, plus the id and timestamps the service adds.
    assert MAX_EXPERIMENT_BYTES < accepted.ByteSize() <= MAX_EXPERIMENT_BYTES + 100
    fields = largest("b", keys=4)
    fields["parameters"]["b-filler"] += "f"
    error = await rpc_error(stub.CreateExperiment(create_request(fields)))
    assert_invalid(error, "parameters", f"one may take at most {MAX_EXPERIMENT_BYTES}")


async def test_too_many_keys_are_refused(stub: ExperimentServiceAsyncStub) -> None:
    parameters = {f"p{i}": i for i in range(MAX_DIFF_KEYS // 2)}
    metrics = {f"m{i}": i for i in range(MAX_DIFF_KEYS // 2 + 1)}
    request = pb.CreateExperimentRequest(
        strategy_id=STRATEGY, parameters=struct(parameters), metrics=struct(metrics)
    )
    error = await rpc_error(stub.CreateExperiment(request))
    assert_invalid(
        error, "parameters", f"hold {MAX_DIFF_KEYS + 1} keys together; an experiment may hold"
    )


async def test_an_update_that_would_overflow_the_row_writes_nothing(
    stub: ExperimentServiceAsyncStub,
) -> None:
    half = "x" * (MAX_EXPERIMENT_BYTES // 2)
    created = (
        await stub.CreateExperiment(
            pb.CreateExperimentRequest(strategy_id=STRATEGY, parameters=struct({"a": half}))
        )
    ).experiment
    update = pb.UpdateExperimentRequest(
        experiment_id=created.id, experiment=pb.Experiment(metrics=struct({"b": half}))
    )
    error = await rpc_error(stub.UpdateExperiment(update))
    assert_invalid(error, "metrics", "is too large")
    stored = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=created.id))
    ).experiment
    assert stored == created


@pytest.mark.parametrize("keys", [MAX_DIFF_KEYS, 2], ids=["most-keys", "one-big-value"])
async def test_a_compare_of_ten_of_the_largest_rows_fits(
    stub: ExperimentServiceAsyncStub, keys: int
) -> None:
    rows = [largest(f"r{n}", keys=keys) for n in range(10)]
    created = [(await stub.CreateExperiment(create_request(row))).experiment for row in rows]
    ids = [experiment.id for experiment in created]
    response = await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=ids))
    assert response.ByteSize() < MAX_MESSAGE_BYTES
    assert list(response.experiments) == created
    assert len(response.param_diff) == 10 * (keys // 2 + 1)
    assert len(response.metric_diff) == 10 * (keys - keys // 2 - 1)
    # A full page of them reads back too, in pages that each fit.
    seen: list[pb.Experiment] = []
    token = ""
    while True:
        page = await stub.ListExperiments(pb.ListExperimentsRequest(page_token=token))
        seen += page.experiments
        token = page.next_page_token
        if not token:
            break
    assert seen == created[::-1]
