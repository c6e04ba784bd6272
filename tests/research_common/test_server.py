"""research_common.server.build_server: a call that finds the store down
turns health NOT_SERVING at once (the services pass their plain translate
function; build_server tells health)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from research_common.errors import ServiceError, Unavailable
from research_common.server import GrpcServer, build_server
from research_common.settings import ServiceSettings

SERVICE = "test.Store"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _fail(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
    raise (OSError if request == b"outage" else ValueError)("the store said no")


def _register(server: aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Read": grpc.unary_unary_rpc_method_handler(_fail)}
    )
    server.add_generic_rpc_handlers((handler,))


def _translate(error: BaseException) -> ServiceError | None:
    return Unavailable("the store is unavailable") if isinstance(error, OSError) else None


async def _probe() -> None:
    """The store looks fine to the probe (which runs once a minute here)."""


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    built = build_server(
        ServiceSettings(address="127.0.0.1:0", health_interval=60),
        address="127.0.0.1:0",
        service_names=[SERVICE],
        register=_register,
        probe=_probe,
        probe_timeout=1,
        translate=_translate,
    )
    await built.start()
    yield built
    await built.stop(0)


async def _error(call: Any) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as raised:
        await call
    return raised.value


async def _health(channel: aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def test_an_outage_a_call_finds_is_reported_to_health_at_once(server: GrpcServer) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        read = channel.unary_unary(f"/{SERVICE}/Read", None, None)
        assert await _health(channel, SERVICE) == SERVING
        # A bug is INTERNAL and says nothing about the store.
        bug = await _error(read(b"bug", timeout=5))
        assert bug.code() == grpc.StatusCode.INTERNAL
        assert await _health(channel, SERVICE) == SERVING
        outage = await _error(read(b"outage", timeout=5))
        assert (outage.code(), outage.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "the store is unavailable",
        )
        for service in ("", SERVICE):
            assert await _health(channel, service) == NOT_SERVING
