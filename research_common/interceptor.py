"""The server interceptor of both services: bearer-token check (and what a
read-only token may call), request id and caller's name, one log line per
call, and the single place where exceptions become gRPC statuses."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from research_common.auth import (
    ACTOR,
    AUTHORIZATION,
    AUTHORIZATION_HEADER,
    Tokens,
    read_only_refusal,
    refusal,
)
from research_common.constants import (
    REQUEST_ID_HEADER,
    RETRY_PUSHBACK_HEADER,
    STATUS_DETAILS_KEY,
    valid_request_id,
)
from research_common.errors import (
    Internal,
    InvalidArgument,
    PermissionDenied,
    ServiceError,
    Unauthenticated,
)
from research_common.logging import REQUEST_ID
from research_common.metrics import observe_rpc

# Health checks arrive every few seconds from probes: log them at DEBUG only.
_QUIET_PREFIX = "/grpc.health.v1.Health/"
# Open without a token (CONTRACT §1): health and reflection.
_OPEN_PREFIXES = (_QUIET_PREFIX, "/grpc.reflection.")

# What the metrics count a refused call of a method the server does not
# have as: its name is the caller's to choose, and a series per name would
# let anyone without a token grow every replica's metrics without bound.
UNKNOWN_METHOD = "/unknown/unknown"

# Turns an exception the handlers did not raise on purpose (a database
# outage, say) into a ServiceError, or returns None for a bug.
Translator = Callable[[BaseException], ServiceError | None]

log = logging.getLogger("research.rpc")

# What the protobuf runtimes raise for bytes that are not a message of the
# expected type: DecodeError for corrupt, truncated or too deeply nested
# wire data (upb, the default); UnicodeDecodeError, a ValueError, for a bad
# UTF-8 string and RecursionError for deep nesting (the pure-Python parser).
_MALFORMED = (DecodeError, ValueError, RecursionError)


def _request_id(metadata: Any) -> str:
    """The caller's request id when it is plain (the gateway's rule: the same
    id is kept, or replaced, whichever way a call comes in); else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and valid_request_id(value):
            return value
    return uuid.uuid4().hex


def _authorization(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_HEADER and isinstance(value, str):
            return value
    return None


if TYPE_CHECKING:  # the stubs make it generic; at run time it is not
    _Interceptor: TypeAlias = aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = aio.ServerInterceptor


class ServiceInterceptor(_Interceptor):
    """Wraps every unary-unary handler (all RPCs of both services, and health
    Check; reflection's streams pass through untouched).

    `read_only` holds the gRPC paths a `:read` token may call
    (research_common.auth.read_only_methods, built once at start-up); any
    other method is PERMISSION_DENIED for such a token."""

    def __init__(
        self,
        translate: Translator | None = None,
        tokens: Tokens | None = None,
        read_only: frozenset[str] = frozenset(),
    ) -> None:
        self._translate = translate
        self._tokens = tokens or Tokens()
        self._read_only = read_only

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        authorization = _authorization(metadata)
        identity = self._tokens.identify(authorization)
        if not method.startswith(_OPEN_PREFIXES):
            # Refused before any handler runs; unknown methods too, so that
            # a caller without a token learns nothing about what exists.
            counted = method if handler is not None else UNKNOWN_METHOD
            if identity is None:
                return _refuse(method, counted, Unauthenticated(refusal(authorization)), None)
            # Checked here, by the service itself, not trusted to the
            # gateway: a read-only token dialling the service directly is
            # refused the same way.
            if identity.read_only and method not in self._read_only:
                error = PermissionDenied(read_only_refusal(identity.name, method))
                return _refuse(method, counted, error, identity.name)
        # Open methods (health, reflection) answer a wrong token too: no name.
        actor = None if identity is None else identity.name
        if handler is None or handler.unary_unary is None:
            return handler
        request_id = _request_id(metadata)
        # grpc-stubs types handlers as sync; under grpc.aio they are coroutines.
        behaviour: Any = handler.unary_unary
        level = logging.DEBUG if method.startswith(_QUIET_PREFIX) else logging.INFO
        # gRPC hands `unary` the raw bytes and `unary` parses them. Left to
        # gRPC, a malformed request fails before `unary` runs and comes back
        # UNKNOWN with the parser's class name, logged as an error with no
        # request id; parsed here (the same work, moved) it is an
        # InvalidArgument answered and logged like any other.
        deserialize: Callable[[bytes], Any] | None = handler.request_deserializer

        async def unary(raw: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            token = REQUEST_ID.set(request_id)
            credentials = AUTHORIZATION.set(authorization)
            caller = ACTOR.set(actor)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                request = raw if deserialize is None else _parse(deserialize, raw)
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
                elapsed = time.perf_counter() - started
                observe_rpc(method, code.name, elapsed)
                elapsed_ms = round(elapsed * 1000, 3)
                log.log(
                    level,
                    "%s %s",
                    method,
                    code.name,
                    extra={
                        "rpc": method,
                        "code": code.name,
                        "actor": actor,
                        "duration_ms": elapsed_ms,
                    },
                )
                REQUEST_ID.reset(token)
                AUTHORIZATION.reset(credentials)
                ACTOR.reset(caller)

        return grpc.unary_unary_rpc_method_handler(
            unary, response_serializer=handler.response_serializer
        )


def _parse(deserialize: Callable[[bytes], Any], raw: bytes) -> Any:
    """The request message in `raw`, or InvalidArgument saying why not, in
    words rather than the parser's (no class names, no upb internals)."""
    try:
        return deserialize(raw)
    except _MALFORMED as error:
        raise InvalidArgument(
            f"the request is not a valid {_message_name(deserialize)}: {_problem(error)}"
        ) from None


def _message_name(deserialize: Callable[[bytes], Any]) -> str:
    # Generated stubs pass `SomeRequest.FromString`, bound to its class.
    descriptor = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else "request message"


def _problem(error: BaseException) -> str:
    # The parsers' own texts differ (upb: "String field had bad UTF-8",
    # "Exceeded upb_DecodeOptions_MaxDepth"; Python: "too many levels of
    # nesting"), and are no part of our contract: map them to three stable
    # phrases, the last of which covers whatever else they report.
    text = str(error)
    if isinstance(error, UnicodeDecodeError) or "UTF-8" in text:
        return "a string field is not valid UTF-8"
    if isinstance(error, RecursionError) or "Depth" in text or "nesting" in text:
        return "messages are nested too deeply"
    return "the wire format is truncated or corrupt"


def _refuse(
    method: str, counted: str, error: ServiceError, actor: str | None
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that answers every call with `error` (and logs it with the
    token's name, if it has one, and never its secret), counted in the
    metrics as a call of `counted`."""

    async def refused(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        observe_rpc(counted, error.code.name, 0.0)
        log.info(
            "%s %s",
            method,
            error.code.name,
            extra={"rpc": method, "code": error.code.name, "actor": actor},
        )
        await _abort(context, error)

    return grpc.unary_unary_rpc_method_handler(refused)


# gRFC A6: a negative retry pushback tells a client's retry policy not to
# retry this answer. The policy (research_common.targets) retries UNAVAILABLE
# so that a replica that went away costs a read one more attempt elsewhere;
# an UNAVAILABLE the service itself answers (its database or MLflow is
# unreachable) would be the same on every replica, and a retry would only
# spend the caller's deadline (a 503 turned into a 504).
_NO_RETRY = (RETRY_PUSHBACK_HEADER, "-1")


async def _abort(context: aio.ServicerContext[Any, Any], error: ServiceError) -> None:
    status = error.to_status()
    trailers: tuple[tuple[str, str | bytes], ...] = (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
    )
    if error.code == grpc.StatusCode.UNAVAILABLE:
        trailers += (_NO_RETRY,)
    await context.abort(error.code, error.message, trailing_metadata=trailers)
