"""Fixtures every test package shares: the PostgreSQL server of the machine
(one throwaway database per test session) and helpers for gRPC errors."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

if TYPE_CHECKING:
    from tests.mlflow_server import MlflowServer
    from tests.pg_cluster import ThrowawayCluster

# The admin connection: tests create (and drop) their own databases on it.
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def in_ci() -> bool:
    """In CI, tests that need PostgreSQL fail instead of skipping."""
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def postgres_url(database: str) -> str:
    """ADMIN_URL with another database name."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


async def _admin(statement: str, url: str = ADMIN_URL) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_database(prefix: str) -> str:
    """A new empty database on the test server; its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL at {ADMIN_URL} is not usable: {type(error).__name__}: {error}"
        if in_ci():
            pytest.fail(f"{message} (CI is set: PostgreSQL tests must run)")
        pytest.skip(message)
    return name


def drop_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real `mlflow server` for the session (tracking and gateway tests)."""
    from tests.mlflow_server import MlflowServer  # it imports this module's helpers

    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[ThrowawayCluster]:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl), which the
    test may stop and start; never the machine's shared server."""
    from tests.pg_cluster import ThrowawayCluster  # it imports this module's helpers

    throwaway = ThrowawayCluster()
    throwaway.start()
    yield throwaway
    throwaway.destroy()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a database created for this test session and dropped after."""
    name = create_database("research_test")
    yield postgres_url(name)
    drop_database(name)


async def _migrate(url: str) -> None:
    from experiments_svc.db import create_engine
    from experiments_svc.migrate import migrate

    engine = create_engine(url, timeout=5)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_postgres(postgres_database: str) -> str:
    """The session's PostgreSQL database with the experiments schema."""
    asyncio.run(_migrate(postgres_database))
    return postgres_database


async def truncate_experiments(url: str) -> None:
    """Empty the experiments table of the PostgreSQL database at `url`."""
    await _admin("TRUNCATE experiments", url)


def struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """A Struct holding `value` (nested dicts and lists included)."""
    message = struct_pb2.Struct()
    message.update(value)
    return message


async def rpc_error(call: object) -> aio.AioRpcError:
    """The error a call raised; fails the test when it succeeded."""
    try:
        await call  # type: ignore[misc]
    except aio.AioRpcError as error:
        return error
    pytest.fail("the call succeeded; an error was expected")


def rich_status(error: aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status carried in the error's trailers."""
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    pytest.fail("no grpc-status-details-bin trailer")


def field_violations(error: aio.AioRpcError) -> list[str]:
    """Fields named by the BadRequest detail of an INVALID_ARGUMENT error."""
    fields = []
    for detail in rich_status(error).details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields += [violation.field for violation in bad_request.field_violations]
    return fields


def assert_invalid(error: aio.AioRpcError, field: str, fragment: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (error.details() or ""), error.details()
    assert field_violations(error) == [field]
