"""bench.service_ab: two commits' experiments_svc side by side, each
answering the same gRPC calls, CPU per call read from each process."""

from __future__ import annotations

import uuid

import pytest

from bench.database import STRATEGIES, strategy_id
from bench.grpc_stub import COMPARE_EXPERIMENTS, GET_EXPERIMENT, LIST_EXPERIMENTS
from bench.scenarios.cpu_cost import grpc_requests
from bench.service_ab import METHODS, SERVICE, measure, parser, report
from research.experiments.v1 import experiments_pb2


def test_each_method_has_its_requests() -> None:
    ids = [str(uuid.uuid4()) for _ in range(25)]
    get = grpc_requests(GET_EXPERIMENT, ids)
    assert [experiments_pb2.GetExperimentRequest.FromString(r).experiment_id for r in get] == ids
    listed = [
        experiments_pb2.ListExperimentsRequest.FromString(r)
        for r in grpc_requests(LIST_EXPERIMENTS, ids)
    ]
    assert len(listed) == STRATEGIES
    assert listed[7].strategy_id == str(strategy_id(7))
    assert {request.limit for request in listed} == {100}
    compared = [
        list(experiments_pb2.CompareExperimentsRequest.FromString(r).experiment_ids)
        for r in grpc_requests(COMPARE_EXPERIMENTS, ids)
    ]
    assert compared == [ids[0:10], ids[10:20]]  # whole groups of ten only
    with pytest.raises(ValueError, match=r"no requests for /x\.Y/DeleteExperiment"):
        grpc_requests("/x.Y/DeleteExperiment", ids)
    # The tool offers exactly those three.
    assert {f"/{SERVICE}/{name}" for name in METHODS} == {
        GET_EXPERIMENT,
        LIST_EXPERIMENTS,
        COMPARE_EXPERIMENTS,
    }


@pytest.mark.postgres
async def test_both_sides_answer_and_are_measured() -> None:
    sides = ["--before", "HEAD", "--after", "HEAD", "--method", "CompareExperiments"]
    size = ["--rows", "300", "--rounds", "2", "--seconds", "0.3", "--concurrency", "4"]
    args = parser().parse_args([*sides, *size])
    outcome = await measure(args)
    assert outcome.errors == 0
    assert outcome.method == "CompareExperiments"
    for figures in (outcome.before, outcome.after, outcome.after_over_before):
        assert figures["n"] == 2
        assert 0 < figures["p10"] <= figures["median"] <= figures["p90"]
    # The same code on both sides: the same order of cost (a compare is
    # well above 0.1 ms of CPU and far below 100 ms).
    assert 0.1 < outcome.before["median"] < 100
    assert 0.1 < outcome.after["median"] < 100
    text = report(outcome, args)
    assert text.startswith("experiments_svc CompareExperiments: CPU per call, HEAD -> HEAD")
    assert "  errors: 0" in text
