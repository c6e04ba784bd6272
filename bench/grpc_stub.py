"""The ceiling of grpc.aio, and a stand-in upstream for the gateway: one
grpc.aio server (default options, no interceptor) whose methods do no work
beyond, at most, one database read.

- `/bench.Echo/Echo` answers the request bytes back (the bare echo that
  experiments_svc's rate is held against);
- GetExperiment, ListExperiments and CompareExperiments of
  ExperimentService each answer one fixed, serialized response of
  experiments_svc's (a file per method in STUB_REPLY_DIR, named
  `<Method>.bin`), so that the gateway's own cost per request can be
  measured with an upstream that costs next to nothing;
- with STUB_DATABASE_URL, each of those three first reads the rows its
  request names, as experiments_svc must, in one prepared statement on an
  asyncpg pool (the row by id, the strategy's newest page, the compared
  rows), and still answers the fixed response: the least a service that
  reads its answer from PostgreSQL can spend, with no conversion, no
  SQLAlchemy, no logging or metrics.

    STUB_ADDR=127.0.0.1:50099 STUB_REPLY_DIR=replies/ python -m bench.grpc_stub
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2_grpc

from research.experiments.v1 import experiments_pb2

ECHO = "/bench.Echo/Echo"
_SERVICE = "/research.experiments.v1.ExperimentService/"
GET_EXPERIMENT = _SERVICE + "GetExperiment"
LIST_EXPERIMENTS = _SERVICE + "ListExperiments"
COMPARE_EXPERIMENTS = _SERVICE + "CompareExperiments"
POOL_SIZE = 20  # experiments_svc's default DB_POOL_SIZE
# asyncpg's Pool.fetch: a statement and its arguments to the rows.
Fetch: TypeAlias = Callable[..., Awaitable[Any]]

# Each method's read: its statement and the statement's arguments from the
# request bytes. The same rows experiments_svc reads, by the same indexes.
_READS: dict[str, tuple[str, Callable[[bytes], tuple[Any, ...]]]] = {
    GET_EXPERIMENT: (
        "SELECT * FROM experiments WHERE id = $1",
        lambda raw: (
            uuid.UUID(experiments_pb2.GetExperimentRequest.FromString(raw).experiment_id),
        ),
    ),
    LIST_EXPERIMENTS: (
        "SELECT * FROM experiments WHERE strategy_id = $1 AND deleted_at IS NULL "
        "ORDER BY created_at DESC, id DESC LIMIT $2",
        lambda raw: _page(experiments_pb2.ListExperimentsRequest.FromString(raw)),
    ),
    COMPARE_EXPERIMENTS: (
        "SELECT * FROM experiments WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL",
        lambda raw: (
            [
                uuid.UUID(i)
                for i in experiments_pb2.CompareExperimentsRequest.FromString(raw).experiment_ids
            ],
        ),
    ),
}


def _page(request: experiments_pb2.ListExperimentsRequest) -> tuple[Any, ...]:
    return uuid.UUID(request.strategy_id), request.limit or 50


if TYPE_CHECKING:  # the stubs make it generic; at run time it is not
    _GenericHandler: TypeAlias = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericHandler = grpc.GenericRpcHandler


def _identity(payload: bytes) -> bytes:
    return payload


class _Handlers(_GenericHandler):
    def __init__(self, replies: Mapping[str, bytes], fetch: Fetch | None) -> None:
        async def echo(request: bytes, context: Any) -> bytes:
            return request

        def answer(method: str, reply: bytes) -> Callable[[bytes, Any], Awaitable[bytes]]:
            if fetch is None or method not in _READS:

                async def fixed(request: bytes, context: Any) -> bytes:
                    return reply

                return fixed
            statement, arguments = _READS[method]

            async def read_then_fixed(request: bytes, context: Any) -> bytes:
                await fetch(statement, *arguments(request))
                return reply

            return read_then_fixed

        def handler(behaviour: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                behaviour, request_deserializer=_identity, response_serializer=_identity
            )

        self._methods = {ECHO: handler(echo)} | {
            method: handler(answer(method, reply)) for method, reply in replies.items()
        }

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._methods.get(handler_call_details.method)


async def create_stub(
    address: str, replies: Mapping[str, bytes], fetch: Fetch | None = None
) -> tuple[aio.Server, int]:
    """The stub, bound to `address` (port 0 picks one) and not started, and
    its port; with `fetch` (an asyncpg pool's), the methods of `_READS` read
    their rows with it."""
    server = aio.server()
    server.add_generic_rpc_handlers((_Handlers(replies, fetch),))
    health_pb2_grpc.add_HealthServicer_to_server(
        health.aio.HealthServicer(),  # type: ignore[attr-defined]  # stubs predate aio
        server,
    )
    return server, server.add_insecure_port(address)


async def serve(address: str, replies: Mapping[str, bytes], database_url: str | None) -> None:
    pool = (
        await asyncpg.create_pool(database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
        if database_url
        else None
    )
    server, _ = await create_stub(address, replies, pool.fetch if pool else None)
    await server.start()
    await server.wait_for_termination()


def read_replies(folder: Path) -> dict[str, bytes]:
    """The fixed answers in `folder`, by gRPC method (`<Method>.bin`)."""
    return {_SERVICE + path.stem: path.read_bytes() for path in folder.glob("*.bin")}


def write_replies(folder: Path, replies: Mapping[str, bytes]) -> None:
    """`replies` (by gRPC method of ExperimentService) as `read_replies` reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    for method, reply in replies.items():
        (folder / f"{method.removeprefix(_SERVICE)}.bin").write_bytes(reply)


def main() -> None:
    folder = os.environ.get("STUB_REPLY_DIR")
    replies = read_replies(Path(folder)) if folder else {}
    database_url = os.environ.get("STUB_DATABASE_URL") or None
    asyncio.run(serve(os.environ.get("STUB_ADDR", "127.0.0.1:50099"), replies, database_url))


if __name__ == "__main__":
    main()
