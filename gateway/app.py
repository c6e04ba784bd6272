"""The gateway as an ASGI application: every request is routed by the
`google.api.http` rules, transcoded to one gRPC call, and answered as JSON.

Per request: a request id (the caller's `X-Request-Id`, or a new one) set in
the log context, sent upstream as metadata and echoed back; `Authorization`
passed on; the gRPC deadline from `Grpc-Timeout` or the default; one log
line with the route template, status and duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc import aio

from gateway.config import Settings
from gateway.cors import CorsPolicy
from gateway.docs import ApiDocs
from gateway.errors import HttpError, not_found_route, unauthorized, wrong_method
from gateway.http import (
    REQUEST_ID_HEADER,
    ClientGone,
    Raw,
    Receive,
    Request,
    Scope,
    Send,
    parse_json,
    read_body,
    send_json,
)
from gateway.routing import Match, PathError, Router, WrongMethod, allowed_methods
from gateway.transcoding import NO_BODY, build_reply, build_request, next_link
from gateway.upstreams import Upstreams
from research_common.logging import REQUEST_ID
from research_common.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from research_common.metrics import exposition, observe_http

log = logging.getLogger("gateway.http")

# Paths the gateway answers itself, whatever the protos say; no token needed.
HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
OPEN_PATHS = frozenset({HEALTHZ, READYZ, METRICS})


async def _unless_client_leaves(call: Awaitable[Message], receive: Receive) -> Message:
    """The call's result; if the client disconnects first, the call is
    cancelled (the upstream sees CANCELLED) and ClientGone raised."""
    called = asyncio.ensure_future(call)
    left = asyncio.ensure_future(receive())
    try:
        await asyncio.wait((called, left), return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if called.done():
        return called.result()
    called.cancel()
    with contextlib.suppress(asyncio.CancelledError, aio.AioRpcError):
        await called
    raise ClientGone


class Gateway:
    def __init__(self, settings: Settings, upstreams: Upstreams) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.router = Router(upstreams.bindings)
        self.cors = CorsPolicy(settings.cors_origins)
        # /openapi.json and /docs: built here, once, from the routed bindings.
        self.docs = ApiDocs(upstreams.bindings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.upstreams.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.upstreams.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope)
        token = REQUEST_ID.set(request.request_id)
        headers = [(REQUEST_ID_HEADER, request.request_id)]
        status, upstream_code = 500, None
        try:
            try:
                status, body, extra = await self._answer(request, receive)
            except HttpError as error:
                status, body, extra = error.status, error.body(), list(error.headers.items())
                upstream_code = error.code.name if error.code != grpc.StatusCode.OK else None
            except (ClientGone, asyncio.CancelledError):
                raise
            except Exception:  # a bug: logged with the id, no trace in the body
                log.exception("unhandled error in %s %s", request.method, request.path[:200])
                bug = HttpError(
                    500,
                    grpc.StatusCode.INTERNAL,
                    f"internal error (request id {request.request_id})",
                )
                status, body, extra = bug.status, bug.body(), []
                upstream_code = bug.code.name
            headers += extra
            if not any(name == "vary" for name, _ in extra):  # a preflight has its own
                headers += self.cors.response_headers(request.headers.get("origin"))
            await send_json(
                send,
                status,
                body,
                headers,
                empty=status in (204, 304),
                head=request.method == "HEAD",
            )
        except ClientGone:
            status = 499
        finally:
            elapsed = time.perf_counter() - started
            observe_http(request.route, request.method, status, elapsed)
            log.info(
                "%s %s %d",
                request.method,
                request.path[:200],
                status,
                extra={
                    "route": request.route,
                    "status": status,
                    "code": upstream_code,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            REQUEST_ID.reset(token)

    async def _answer(
        self, request: Request, receive: Receive
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        """(status, JSON body, extra headers), or HttpError."""
        request.check_head()
        path = request.path.split("?", 1)[0]
        reads = request.method in ("GET", "HEAD")
        if path in OPEN_PATHS and reads:
            request.route = path
            if path == METRICS:
                return 200, Raw(exposition(), METRICS_CONTENT_TYPE), []
            status, body = await self._probe(path)
            return status, body, []
        if path in OPEN_PATHS:
            # A known path asked with another method is 405 with Allow
            # (CONTRACT §4), not the 404 "no route" the router would give.
            request.route = path
            raise wrong_method(request.method, path, allowed_methods(("GET",)))
        # The API's documentation is open too, and answered by the gateway.
        if self.docs.serves(path):
            if not reads:
                request.route = self.docs.label(path)
                raise wrong_method(request.method, path, allowed_methods(("GET",)))
            request.route, page, headers = self.docs.answer(path)
            return 200, page, headers
        # Preflights carry no credentials (browsers never send them there).
        authorization = request.headers.get("authorization")
        if request.method != "OPTIONS" and not self.settings.tokens.accepts(authorization):
            raise unauthorized(authorization)
        try:
            found = self.router.match(request.method, path)
        except PathError as error:
            raise HttpError.bad_request(str(error)) from None
        if found is None:
            raise not_found_route(request.method, path)
        if isinstance(found, WrongMethod):
            request.route = found.template
            if request.method == "OPTIONS":
                return self._options(request, found.allowed)
            raise wrong_method(request.method, path, found.allowed)
        request.route = found.binding.template.source
        return await self._call(request, receive, found)

    async def _call(
        self, request: Request, receive: Receive, found: Match
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        binding = found.binding
        body: Any = NO_BODY
        timeout = request.timeout(self.settings.timeout, self.settings.max_timeout)
        raw = await read_body(request, receive, self.settings.max_body_bytes, timeout)
        if raw.strip():
            if binding.body is None:
                raise HttpError.bad_request(
                    f"{binding.http_method} {binding.template.source} takes no request body"
                )
            request.check_json_content_type()
            body = parse_json(raw)
        message = build_request(binding, found.variables, request.query_params(), body)
        metadata = [(REQUEST_ID_HEADER, request.request_id)]
        authorization = request.headers.get("authorization")
        if authorization is not None:
            if not authorization.isascii() or not authorization.isprintable():
                raise HttpError.bad_request("the Authorization header is not printable ASCII")
            metadata.append(("authorization", authorization))
        try:
            response = await _unless_client_leaves(
                self.upstreams.call(binding, message, timeout, metadata), receive
            )
        except aio.AioRpcError as error:
            raise HttpError.from_rpc(error, binding.upstream, timeout) from None
        reply = build_reply(binding, response, message)
        extra = [("location", reply.location)] if reply.location else []
        if reply.next_page_token:
            path = request.path.split("?", 1)[0]
            extra.append(("link", next_link(binding, reply.next_page_token, path, request.query)))
        return reply.status, reply.body, extra

    def _options(
        self, request: Request, allowed: tuple[str, ...]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        """A CORS preflight, or a plain OPTIONS listing the path's methods."""
        asked = request.headers.get("access-control-request-method")
        if asked is None:
            return 204, None, [("allow", ", ".join([*allowed, "OPTIONS"]))]
        headers, refused = self.cors.preflight(
            request.headers.get("origin"),
            asked,
            request.headers.get("access-control-request-headers", ""),
            allowed,
        )
        if refused is not None:
            raise HttpError(
                403,
                grpc.StatusCode.PERMISSION_DENIED,
                f"CORS preflight refused: {refused}",
                headers=dict(headers),
            )
        return 204, None, headers

    async def _probe(self, path: str) -> tuple[int, Any]:
        if path == HEALTHZ:
            return 200, {"status": "ok"}
        states = await self.upstreams.health(self.settings.ready_timeout)
        down = [name for name, state in states.items() if state != "SERVING"]
        if not down:
            return 200, {"status": "ready", "upstreams": states}
        names = ", ".join(
            f"{name} ({self.upstreams.address(name)}) is {states[name]}" for name in down
        )
        error = HttpError(503, grpc.StatusCode.UNAVAILABLE, f"not ready: {names}")
        return 503, {**error.body(), "upstreams": states}
