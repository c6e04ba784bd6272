"""A real experiments server on port 0, once per backend: the same tests run
against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from grpc import aio

from experiments_svc.config import Settings
from experiments_svc.server import create_server
from research.experiments.v1 import experiments_pb2_grpc
from research_common.server import GrpcServer
from tests.fixtures.postgres import truncate_experiments

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub

STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
OTHER_STRATEGY = "0f0e0d0c-0b0a-4998-8776-655443322110"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty experiments database: a fresh SQLite file, or the session's
    PostgreSQL database emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'experiments.db'}"
        return
    url: str = request.getfixturevalue("migrated_postgres")
    asyncio.run(truncate_experiments(url))
    yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, health_interval=0.2, db_timeout=3)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[GrpcServer]:
    grpc_server, _ = await create_server(settings, "127.0.0.1:0")
    await grpc_server.start()
    yield grpc_server
    await grpc_server.stop(0)


@pytest.fixture
async def channel(server: GrpcServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as grpc_channel:
        yield grpc_channel


@pytest.fixture
def stub(channel: aio.Channel) -> ExperimentServiceAsyncStub:
    return experiments_pb2_grpc.ExperimentServiceStub(channel)
