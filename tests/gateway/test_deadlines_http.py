"""Deadlines end to end (CONTRACT §4): the caller's `Grpc-Timeout` travels
gateway → experiments_svc → tracking_svc → MLflow, and when it runs out
anywhere on the way the answer is 504 / DEADLINE_EXCEEDED, never the 503 of
an outage. MLflow is the session's real server behind a proxy that can hold
each request, so "slow" is set by the test, not by the machine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

import httpx
import pytest

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from gateway.config import Settings as GatewaySettings
from gateway.server import create_server as create_gateway
from tests.conftest import truncate_experiments
from tests.counting_proxy import CountingProxy
from tests.mlflow_server import MlflowServer
from tests.tracking_svc.conftest import Seeded
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.server import create_server as create_tracking

IMPORT = "/api/v1/experiments/import"
DEADLINE_RAN_OUT = "the deadline ran out while reading MLflow run {} from the tracking service"


@dataclass(frozen=True)
class SlowStack:
    http: httpx.AsyncClient  # base URL: the gateway
    proxy: CountingProxy  # between tracking_svc and MLflow
    seeded: Seeded


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[CountingProxy]:
    with CountingProxy(mlflow_server.port) as counting:
        yield counting


@pytest.fixture
async def slow_stack(
    migrated_postgres: str,
    gateway_seed: Seeded,
    proxy: CountingProxy,
    gateway_settings: GatewaySettings,
) -> AsyncIterator[SlowStack]:
    """The stack of conftest.py, with tracking_svc reaching MLflow through `proxy`."""
    await truncate_experiments(migrated_postgres)
    tracking, tracking_port = await create_tracking(
        TrackingSettings(
            tracking_uri=proxy.url,
            experiment_name=gateway_seed.experiment_name,
            # Probes only at start-up: none is held by the proxy mid-test.
            health_interval=60,
        ),
        "127.0.0.1:0",
    )
    await tracking.start()
    experiments, experiments_port = await create_experiments(
        ExperimentsSettings(
            database_url=migrated_postgres,
            tracking_address=f"127.0.0.1:{tracking_port}",
            health_interval=0.2,
            db_timeout=3,
        ),
        "127.0.0.1:0",
    )
    await experiments.start()
    settings = replace(
        gateway_settings,
        experiments_address=f"127.0.0.1:{experiments_port}",
        tracking_address=f"127.0.0.1:{tracking_port}",
    )
    gateway, port = create_gateway(settings, "127.0.0.1:0")
    await gateway.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        yield SlowStack(http, proxy, gateway_seed)
    await gateway.stop()
    await experiments.stop(0)
    await tracking.stop(0)


def assert_deadline_exceeded(response: httpx.Response, run_id: str) -> None:
    assert response.status_code == 504, response.text
    message = DEADLINE_RAN_OUT.format(run_id)
    assert response.json() == {"code": 4, "message": message, "detail": message, "details": []}


async def test_import_with_a_deadline_too_short_for_the_round_trip_is_504(
    slow_stack: SlowStack,
) -> None:
    # The reproduction: MLflow answers at once, yet 150 ms leaves
    # tracking_svc less than it needs once each hop keeps its margin.
    run_id = slow_stack.seeded.training_a
    body = {"mlflow_run_id": run_id}
    response = await slow_stack.http.post(IMPORT, json=body, headers={"Grpc-Timeout": "150m"})
    assert_deadline_exceeded(response, run_id)
    # Nothing was down: with the default deadline the same import succeeds.
    imported = await slow_stack.http.post(IMPORT, json=body)
    assert imported.status_code == 201, imported.text
    assert imported.json()["mlflow_run_id"] == run_id


async def test_import_cut_by_the_deadline_while_mlflow_is_slow_is_504(
    slow_stack: SlowStack,
) -> None:
    run_id = slow_stack.seeded.training_a
    body = {"mlflow_run_id": run_id}
    # MLflow holds GetRun for 5 s; the caller allows 1 s, well under every
    # service's own timeout (TRACKING_TIMEOUT 4.5 s, MLFLOW_TIMEOUT 4 s): the
    # caller's deadline runs out inside tracking_svc.
    with slow_stack.proxy.delayed(5.0):
        response = await slow_stack.http.post(IMPORT, json=body, headers={"Grpc-Timeout": "1S"})
    assert_deadline_exceeded(response, run_id)
    assert len(slow_stack.proxy.matching("/runs/get")) == 1
    imported = await slow_stack.http.post(IMPORT, json=body)
    assert imported.status_code == 201, imported.text
