"""The ceiling of grpc.aio, and a stand-in upstream for the gateway: one
grpc.aio server (default options, no interceptor) with two methods that do
no work.

- `/bench.Echo/Echo` answers the request bytes back (the bare echo that
  experiments_svc's rate is held against);
- `ExperimentService/GetExperiment` answers one fixed, serialized
  GetExperimentResponse, so that the gateway's own cost per request can be
  measured with an upstream that costs next to nothing.

    STUB_ADDR=127.0.0.1:50099 STUB_REPLY_FILE=reply.bin python -m bench.grpc_stub
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2_grpc

ECHO = "/bench.Echo/Echo"
GET_EXPERIMENT = "/research.experiments.v1.ExperimentService/GetExperiment"


if TYPE_CHECKING:  # the stubs make it generic; at run time it is not
    _GenericHandler: TypeAlias = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericHandler = grpc.GenericRpcHandler


def _identity(payload: bytes) -> bytes:
    return payload


class _Handlers(_GenericHandler):
    def __init__(self, reply: bytes) -> None:
        async def echo(request: bytes, context: Any) -> bytes:
            return request

        async def fixed(request: bytes, context: Any) -> bytes:
            return reply

        def handler(behaviour: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                behaviour, request_deserializer=_identity, response_serializer=_identity
            )

        self._methods = {ECHO: handler(echo), GET_EXPERIMENT: handler(fixed)}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._methods.get(handler_call_details.method)


async def serve(address: str, reply: bytes) -> None:
    server = aio.server()
    server.add_generic_rpc_handlers((_Handlers(reply),))
    health_pb2_grpc.add_HealthServicer_to_server(
        health.aio.HealthServicer(),  # type: ignore[attr-defined]  # stubs predate aio
        server,
    )
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    reply_file = os.environ.get("STUB_REPLY_FILE")
    reply = Path(reply_file).read_bytes() if reply_file else b""
    asyncio.run(serve(os.environ.get("STUB_ADDR", "127.0.0.1:50099"), reply))


if __name__ == "__main__":
    main()
