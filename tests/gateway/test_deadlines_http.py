"""Deadlines end to end (CONTRACT §4): the caller's `Grpc-Timeout` travels
gateway → experiments_svc → tracking_svc → MLflow, and when it runs out
anywhere on the way the answer is 504 / DEADLINE_EXCEEDED, never the 503 of
an outage. MLflow is the session's real server behind a proxy that can hold
each request, so "slow" is set by the test, not by the machine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from testbed.mlflow_server import MlflowServer
from tests.counting_proxy import CountingProxy
from tests.fixtures.stack import Stack
from tracking_svc.config import Settings as TrackingSettings

IMPORT = "/api/v1/experiments/import"
DEADLINE_RAN_OUT = "the deadline ran out while reading MLflow run {} from the tracking service"


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[CountingProxy]:
    with CountingProxy(mlflow_server.port) as counting:
        yield counting


@pytest.fixture
def stack_tracking_settings(
    stack_tracking_settings: TrackingSettings, proxy: CountingProxy
) -> TrackingSettings:
    """The stack's tracking_svc reaches MLflow through `proxy`, and probes it
    only at start-up: no probe is held by the proxy mid-test."""
    return replace(stack_tracking_settings, tracking_uri=proxy.url, health_interval=60)


def assert_deadline_exceeded(response: httpx.Response, run_id: str) -> None:
    assert response.status_code == 504, response.text
    message = DEADLINE_RAN_OUT.format(run_id)
    assert response.json() == {"code": 4, "message": message, "detail": message, "details": []}


async def test_import_with_a_deadline_too_short_for_the_round_trip_is_504(
    stack: Stack,
) -> None:
    # The reproduction: MLflow answers at once, yet 150 ms leaves
    # tracking_svc less than it needs once each hop keeps its margin.
    run_id = stack.seeded.training_a
    body = {"mlflow_run_id": run_id}
    response = await stack.http.post(IMPORT, json=body, headers={"Grpc-Timeout": "150m"})
    assert_deadline_exceeded(response, run_id)
    # Nothing was down: with the default deadline the same import succeeds.
    imported = await stack.http.post(IMPORT, json=body)
    assert imported.status_code == 201, imported.text
    assert imported.json()["mlflow_run_id"] == run_id


async def test_import_cut_by_the_deadline_while_mlflow_is_slow_is_504(
    stack: Stack, proxy: CountingProxy
) -> None:
    run_id = stack.seeded.training_a
    body = {"mlflow_run_id": run_id}
    # MLflow holds GetRun for 5 s; the caller allows 1 s, well under every
    # service's own timeout (TRACKING_TIMEOUT 4.5 s, MLFLOW_TIMEOUT 4 s): the
    # caller's deadline runs out inside tracking_svc.
    with proxy.delayed(5.0):
        response = await stack.http.post(IMPORT, json=body, headers={"Grpc-Timeout": "1S"})
    assert_deadline_exceeded(response, run_id)
    assert len(proxy.matching("/runs/get")) == 1
    imported = await stack.http.post(IMPORT, json=body)
    assert imported.status_code == 201, imported.text
