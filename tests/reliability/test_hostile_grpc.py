"""Hostile callers of the processes themselves, with API_TOKENS set: every
HTTP route and every RPC of both services, called directly over gRPC,
without a token and with a wrong one, is refused (401 with the contract's
body / UNAUTHENTICATED) and reaches no handler; a gRPC message over the
4 MiB limit is RESOURCE_EXHAUSTED; every process is healthy afterwards."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2
from grpc import aio

from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research.tracking.v1 import tracking_pb2
from research_common.auth import MISSING, WRONG
from research_common.constants import MAX_MESSAGE_BYTES
from testbed.mlflow_server import MlflowServer
from tests.reliability.backbone import Backbone, health
from tests.reliability.conftest import Record

pytestmark = pytest.mark.postgres

TOKEN = "reliability-token.1"
GOOD = (("authorization", f"Bearer {TOKEN}"),)
BAD_CREDENTIALS = {"missing": (), "wrong": (("authorization", "Bearer not-the-token"),)}
SERVICES = {
    "experiments_svc": experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"],
    "tracking_svc": tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"],
}


@pytest.fixture
async def guarded(
    migrated_postgres: str, mlflow_server: MlflowServer, tmp_path: Path
) -> AsyncIterator[Backbone]:
    name = f"reliability-auth-{uuid.uuid4().hex[:8]}"
    async with Backbone(
        tmp_path, migrated_postgres, mlflow_server.url, name, extra_env={"API_TOKENS": TOKEN}
    ) as stack:
        yield stack


def _concrete(path: str) -> str:
    """An OpenAPI path with each {variable} filled in."""
    return re.sub(r"\{[^}]+\}", "0" * 32, path)


async def test_every_route_and_rpc_needs_the_token(guarded: Backbone, figures: Record) -> None:
    refused_http = 0
    async with httpx.AsyncClient(base_url=guarded.base_url, timeout=10) as http:
        document = (await http.get("/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method in operations:
                for label, credentials in BAD_CREDENTIALS.items():
                    headers = dict(credentials)
                    response = await http.request(
                        method.upper(), _concrete(path), headers=headers, json={}
                    )
                    assert response.status_code == 401, (method, path, label)
                    assert response.headers["www-authenticate"].startswith("Bearer")
                    body = response.json()
                    assert list(body) == ["code", "message", "detail", "details"]
                    assert body["code"] == 16
                    assert body["message"] == (MISSING if label == "missing" else WRONG)
                    refused_http += 1

    refused_grpc = 0
    for module, service in SERVICES.items():
        async with aio.insecure_channel(guarded.address(module)) as channel:
            for method in service.methods:
                call = channel.unary_unary(
                    f"/{service.full_name}/{method.name}",
                    request_serializer=lambda message: message,
                    response_deserializer=lambda raw: raw,
                )
                for label, credentials in BAD_CREDENTIALS.items():
                    with pytest.raises(aio.AioRpcError) as refused:
                        await call(b"", metadata=credentials, timeout=5)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (
                        module,
                        method.name,
                        label,
                    )
                    assert refused.value.details() == (MISSING if label == "missing" else WRONG)
                    refused_grpc += 1
            # Health stays open; the process is fine.
            assert await health(guarded.address(module)) == 1

    figures(refused_http=refused_http, refused_grpc=refused_grpc)
    # Every route of CONTRACT §2 (14) and of §9 (undelete, revisions, one
    # revision), twice.
    assert refused_http == 2 * 17
    assert refused_grpc == 2 * sum(len(s.methods) for s in SERVICES.values())
    # Nothing refused reached a handler: with the token, the table is as it was.
    async with httpx.AsyncClient(base_url=guarded.base_url, timeout=10) as http:
        strategy = str(uuid.uuid4())
        made = await http.post(
            "/api/v1/experiments", json={"strategy_id": strategy}, headers=dict(GOOD)
        )
        assert made.status_code == 201


async def test_a_grpc_message_over_the_limit_is_resource_exhausted(
    guarded: Backbone, figures: Record
) -> None:
    big = struct_pb2.Struct()
    big.update({"blob": "x" * (MAX_MESSAGE_BYTES + 1024)})
    request = experiments_pb2.CreateExperimentRequest(strategy_id=str(uuid.uuid4()), parameters=big)
    async with aio.insecure_channel(
        guarded.address("experiments_svc"),
        options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)],
    ) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.CreateExperiment(request, metadata=GOOD, timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The same channel, the same process: a normal call goes through.
        small = experiments_pb2.CreateExperimentRequest(strategy_id=str(uuid.uuid4()))
        made = await stub.CreateExperiment(small, metadata=GOOD, timeout=10)
        assert made.experiment.strategy_id == small.strategy_id
    figures(message_bytes=request.ByteSize(), limit=MAX_MESSAGE_BYTES)
    assert request.ByteSize() > MAX_MESSAGE_BYTES
    assert await health(guarded.address("experiments_svc")) == 1
