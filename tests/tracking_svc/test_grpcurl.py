"""The real grpcurl binary (1.8.6) against tracking_svc through reflection:
what a person debugging the service sees."""

from __future__ import annotations

import json
from typing import Any

import pytest

from research_common.server import GrpcServer
from tests.fixtures.mlflow import MINUTE, STRATEGY_A, T0, Seeded
from tests.grpcurl import grpcurl

SERVICE = "research.tracking.v1.TrackingService"

pytestmark = pytest.mark.parametrize("backend", ["server"], indirect=True)


async def invoke(server: GrpcServer, method: str, data: object) -> Any:
    return json.loads(await grpcurl(server.port, f"{SERVICE}/{method}", data=data))


async def test_list_shows_the_service_health_and_reflection(tracking: GrpcServer) -> None:
    assert (await grpcurl(tracking.port, "list")).split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        SERVICE,
    ]
    assert (await grpcurl(tracking.port, "list", SERVICE)).split() == [
        f"{SERVICE}.{name}"
        for name in (
            "CompareRuns",
            "GetMetricHistory",
            "GetRun",
            "GetRunMetrics",
            "GetRunParams",
            "ListExperiments",
            "ListRuns",
        )
    ]


async def test_describe_shows_the_messages(tracking: GrpcServer) -> None:
    service = await grpcurl(tracking.port, "describe", SERVICE)
    assert (
        "rpc ListRuns ( .research.tracking.v1.ListRunsRequest ) "
        "returns ( .research.tracking.v1.ListRunsResponse ) {"
    ) in service
    assert 'option (.google.api.http) = { get:"/api/v1/tracking/runs"  };' in service
    assert "rpc CompareRuns ( .research.tracking.v1.CompareRunsRequest )" in service
    run = await grpcurl(tracking.port, "describe", "research.tracking.v1.Run")
    assert "optional int64 end_time = 5;" in run
    assert "map<string, double> metrics = 8;" in run
    diff = await grpcurl(tracking.port, "describe", "research.tracking.v1.MetricDiff")
    assert "optional string best_run_id = 2;" in diff


async def test_list_runs_as_json(tracking: GrpcServer, seeded: Seeded) -> None:
    body = await invoke(tracking, "ListRuns", {"run_type": "training", "strategy_id": STRATEGY_A})
    assert body["total"] == 1
    (run,) = body["runs"]
    assert run["run_id"] == seeded.training_a
    assert run["run_name"] == "training"
    assert run["status"] == "FINISHED"
    assert run["start_time"] == str(T0 + MINUTE)  # int64 is a JSON string
    assert run["params"]["learning_rate"] == "0.05"
    assert run["metrics"]["oos_sharpe"] == 1.42
    assert run["tags"]["git_commit"] == "3f9a1c2"

    everything = await invoke(tracking, "ListRuns", {"limit": 3})
    assert [r["run_id"] for r in everything["runs"]] == seeded.newest_first[:3]


async def test_get_run_as_json(tracking: GrpcServer, seeded: Seeded) -> None:
    run = (await invoke(tracking, "GetRun", {"run_id": seeded.backtest_b}))["run"]
    assert run["run_id"] == seeded.backtest_b
    assert run["status"] == "KILLED"
    assert run["end_time"] == str(seeded.end_times[seeded.backtest_b])
    assert run["experiment_id"] == seeded.experiment_id
    assert run["metrics"] == {
        "calmar_ratio": "Infinity",
        "sortino": "-Infinity",
        "total_return": -0.05,
    }

    running = (await invoke(tracking, "GetRun", {"run_id": seeded.backtest_a}))["run"]
    assert "end_time" not in running
    assert running["status"] == "RUNNING"


async def test_compare_runs_as_json(tracking: GrpcServer, seeded: Seeded) -> None:
    a, b = seeded.training_a, seeded.training_b
    body = await invoke(tracking, "CompareRuns", {"run_ids": [a, b]})
    assert [row["run_id"] for row in body["runs"]] == [a, b]
    assert body["metric_diff"]["oos_sharpe"] == {
        "values": {a: 1.42, b: 1.18},
        "best_run_id": a,
        "direction": "maximize",
    }
    assert body["lineage_diff"]["signal_version"] == {"values": {a: "s2", b: None}, "varies": True}


async def test_compare_runs_against_a_baseline_as_json(
    tracking: GrpcServer, seeded: Seeded
) -> None:
    """What a person debugging sees of the §11 figures: protobuf's own JSON,
    where the wrappers the gateway unwraps are objects of their own."""
    wf, cb = seeded.walk_forward_a, seeded.cpcv_b
    body = await invoke(tracking, "CompareRuns", {"run_ids": [wf, cb], "baseline_run_id": cb})
    sharpe = body["metric_diff"]["oos_sharpe"]
    assert sharpe["baseline"] == 0.7
    assert sharpe["verdict"] == {"values": {wf: "better", cb: "baseline"}}
    folds = body["fold_stats"]["oos_sharpe"]["runs"]
    assert (folds[wf]["folds"], folds[wf]["worst"], folds[cb]["folds"]) == (5, -0.2, 2)
    paired = body["paired"]["oos_sharpe"]["runs"]
    # Steps 0 and 1: 0.8 against 0.3, 1.1 against 0.7.
    assert paired[wf].pop("mean_diff") == pytest.approx(0.45, abs=1e-12)
    # Zero losses and ties are left out of protobuf's JSON.
    assert paired == {wf: {"n": 2, "wins": 2, "sign_test_p": 0.5}}
    overfitting = body["overfitting"]["oos_sharpe"]
    assert overfitting["runs"] == 2
    assert overfitting["steps"] == 2
    assert "fewer than 4 blocks" in overfitting["reason"]


async def test_health_check_is_serving(tracking: GrpcServer) -> None:
    overall = json.loads(await grpcurl(tracking.port, "grpc.health.v1.Health/Check"))
    assert overall == {"status": "SERVING"}
    named = json.loads(
        await grpcurl(tracking.port, "grpc.health.v1.Health/Check", data={"service": SERVICE})
    )
    assert named == {"status": "SERVING"}
