"""The layers every request passes, outermost first, built once (in
Starlette's order: server errors and logging outside, CORS, then the error
responses, then the router):

- `RequestLog`: the request id (the caller's `X-Request-Id` or a new one) in
  the log context and echoed back, one access-log line and the metrics of
  every request, labelled by the route the router matched;
- `Cors`: CORS preflights answered for the methods the path has, and the
  CORS headers of every other answer, error bodies included;
- `ErrorResponses`: the one place where an `HttpError`, or a bug, becomes
  the contract's error body (CONTRACT §4).

Each layer is a plain ASGI application around the next one. What the
layers share about one request (its parsed head, the matched route's
template, the gRPC code of an error) lives in the ASGI scope.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from gateway.cors import CorsPolicy
from gateway.errors import HttpError
from gateway.http import ClientGone, Receive, Request, Scope, Send
from gateway.responses import Message, Response, error_response
from research_common.constants import REQUEST_ID_HEADER
from research_common.logging import REQUEST_ID
from research_common.metrics import observe_http

log = logging.getLogger("gateway.http")

App = Callable[[Scope, Receive, Send], Any]

# Scope keys the layers and the router share.
REQUEST = "gateway.request"  # the parsed Request
ROUTE = "gateway.route"  # the template of the matched route: the label of logs and metrics
QUIET = "gateway.quiet"  # the route is polled by probes: logged at DEBUG
CODE = "gateway.code"  # the gRPC code name of an error answer
ACTOR = "gateway.actor"  # the name of the caller's token, never its secret: logged
UNMATCHED = "unmatched"


def request_of(scope: Scope) -> Request:
    """The request `RequestLog` parsed for this scope."""
    request: Request = scope[REQUEST]
    return request


class RequestLog:
    """Request id, access log and metrics around everything else."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope)
        scope[REQUEST] = request
        token = REQUEST_ID.set(request.request_id)
        status = 500
        echo = (REQUEST_ID_HEADER.encode(), request.request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [echo, *message["headers"]]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except (ClientGone, asyncio.CancelledError):
            status = 499  # the client went away; nothing to answer
            if not isinstance(scope.get(CODE), str):
                scope[CODE] = grpc.StatusCode.CANCELLED.name
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get(ROUTE, UNMATCHED)
            observe_http(route, request.method, status, elapsed)
            log.log(
                logging.DEBUG if scope.get(QUIET) else logging.INFO,
                "%s %s %d",
                request.method,
                request.path[:200],
                status,
                extra={
                    "route": route,
                    "status": status,
                    "code": scope.get(CODE),
                    "actor": scope.get(ACTOR),
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            REQUEST_ID.reset(token)


# The methods a path answers, for a preflight; None for a path with no route.
AllowedMethods = Callable[[str], tuple[str, ...] | None]


class Cors:
    """Preflights for the configured origins, and CORS headers on every
    other answer (CONTRACT §1: CORS_ORIGINS)."""

    def __init__(self, app: App, policy: CorsPolicy, allowed: AllowedMethods) -> None:
        self.app = app
        self.policy = policy
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        asked = request.headers.get("access-control-request-method")
        if request.method == "OPTIONS" and asked is not None:
            methods = self.allowed(request.path)
            if methods is not None:
                await self._preflight(request, asked, methods).send(send)
                return
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in self.policy.response_headers(request.headers.get("origin"))
        ]
        if not headers:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *headers]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, request: Request, asked: str, methods: tuple[str, ...]) -> Response:
        headers, refused = self.policy.preflight(
            request.headers.get("origin"),
            asked,
            request.headers.get("access-control-request-headers", ""),
            methods,
        )
        if refused is None:
            return Response.json(204, None, headers)
        error = HttpError(
            403,
            grpc.StatusCode.PERMISSION_DENIED,
            f"CORS preflight refused: {refused}",
            headers=dict(headers),
        )
        return error_response(error)


class ErrorResponses:
    """An `HttpError` raised anywhere inside becomes the contract's error
    body; any other exception is a bug: logged with the request id and
    answered 500 with no trace in the body."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        try:
            await self.app(scope, receive, send)
            return
        except HttpError as raised:
            error = raised
        except (ClientGone, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path[:200])
            error = HttpError(
                500, grpc.StatusCode.INTERNAL, f"internal error (request id {request.request_id})"
            )
        if error.code != grpc.StatusCode.OK:
            scope[CODE] = error.code.name
        await error_response(error).send(send, head=request.method == "HEAD")
