"""The server interceptor of both services: request id, one log line per call,
and the single place where exceptions become gRPC statuses."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc import aio

from research_common.errors import Internal, ServiceError
from research_common.logging import REQUEST_ID

REQUEST_ID_HEADER = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Health checks arrive every few seconds from probes: log them at DEBUG only.
_QUIET_PREFIX = "/grpc.health.v1.Health/"

# Turns an exception the handlers did not raise on purpose (a database
# outage, say) into a ServiceError, or returns None for a bug.
Translator = Callable[[BaseException], ServiceError | None]

log = logging.getLogger("research.rpc")


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


if TYPE_CHECKING:  # the stubs make it generic; at run time it is not
    _Interceptor: TypeAlias = aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = aio.ServerInterceptor


class ServiceInterceptor(_Interceptor):
    """Wraps every unary-unary handler (all RPCs of both services, and health
    Check; reflection's streams pass through untouched)."""

    def __init__(self, translate: Translator | None = None) -> None:
        self._translate = translate

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        request_id = _request_id(handler_call_details.invocation_metadata)
        # grpc-stubs types handlers as sync; under grpc.aio they are coroutines.
        behaviour: Any = handler.unary_unary
        level = logging.DEBUG if method.startswith(_QUIET_PREFIX) else logging.INFO

        async def unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            token = REQUEST_ID.set(request_id)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behaviour(request, context)
            except ServiceError as exc:
                code = exc.code
                await _abort(context, exc)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                error = self._translate(exc) if self._translate else None
                if error is None:
                    log.exception("unhandled error in %s", method)
                    error = Internal(f"internal error (request id {request_id})")
                code = error.code
                await _abort(context, error)
            finally:
                elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
                log.log(
                    level,
                    "%s %s",
                    method,
                    code.name,
                    extra={"rpc": method, "code": code.name, "duration_ms": elapsed_ms},
                )
                REQUEST_ID.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _abort(context: aio.ServicerContext[Any, Any], error: ServiceError) -> None:
    status = error.to_status()
    await context.abort(
        error.code,
        error.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )
