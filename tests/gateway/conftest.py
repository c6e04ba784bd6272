"""The whole backbone for real, per test: experiments_svc on PostgreSQL,
tracking_svc over the session's real `mlflow server`, and the gateway in
front of both, each on a free port; an HTTP client talks to the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest
from mlflow.tracking import MlflowClient

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from gateway.config import Settings as GatewaySettings
from gateway.server import GatewayServer
from gateway.server import create_server as create_gateway
from research_common.server import GrpcServer
from tests.conftest import truncate_experiments
from tests.mlflow_server import MlflowServer
from tests.tracking_svc.conftest import (  # noqa: F401  (an autouse fixture)
    Seeded,
    seed,
    tracking_process,
)
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.server import create_server as create_tracking

# The origin the stack's CORS_ORIGINS allows; any other is refused.
ALLOWED_ORIGIN = "http://notebook.example:8888"


@dataclass
class Stack:
    http: httpx.AsyncClient  # base URL: the gateway
    gateway: GatewayServer
    experiments: GrpcServer
    tracking: GrpcServer
    seeded: Seeded  # the MLflow runs tracking_svc serves
    mlflow: MlflowServer
    gateway_settings: GatewaySettings

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}"


@pytest.fixture(scope="session")
def gateway_seed(mlflow_server: MlflowServer) -> Seeded:
    """Runs of every type for two strategies in the real MLflow server
    (see tests/tracking_svc/conftest.py for what `seed` logs)."""
    return seed(MlflowClient(tracking_uri=mlflow_server.url))


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    """Overridable per test module (e.g. a smaller body limit)."""
    return GatewaySettings(cors_origins=(ALLOWED_ORIGIN,), shutdown_grace=1)


@pytest.fixture
async def experiments_database(migrated_postgres: str) -> str:
    """The experiments service's database, emptied: the session's PostgreSQL
    one. A module may override it (e.g. to run on SQLite as well)."""
    await truncate_experiments(migrated_postgres)
    return migrated_postgres


@pytest.fixture
async def stack(
    experiments_database: str,
    gateway_seed: Seeded,
    mlflow_server: MlflowServer,
    gateway_settings: GatewaySettings,
) -> AsyncIterator[Stack]:
    tracking, _ = await create_tracking(
        TrackingSettings(
            tracking_uri=mlflow_server.url,
            experiment_name=gateway_seed.experiment_name,
            health_interval=0.2,
        ),
        "127.0.0.1:0",
    )
    await tracking.start()
    experiments, _ = await create_experiments(
        ExperimentsSettings(
            database_url=experiments_database,
            tracking_address=f"127.0.0.1:{tracking.port}",
            health_interval=0.2,
            db_timeout=3,
        ),
        "127.0.0.1:0",
    )
    await experiments.start()
    settings = replace(
        gateway_settings,
        experiments_address=f"127.0.0.1:{experiments.port}",
        tracking_address=f"127.0.0.1:{tracking.port}",
    )
    gateway, port = create_gateway(settings, "127.0.0.1:0")
    await gateway.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        yield Stack(http, gateway, experiments, tracking, gateway_seed, mlflow_server, settings)
    await gateway.stop()
    await experiments.stop(0)
    await tracking.stop(0)


@pytest.fixture
def http(stack: Stack) -> httpx.AsyncClient:
    return stack.http
