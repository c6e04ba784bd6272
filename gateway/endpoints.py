"""The routes the gateway serves, registered the same way in one router:
one per `google.api.http` binding of the upstream services, and the
gateway's own pages (probes, metrics, the API documentation). The router is
the innermost layer (`gateway.layers`): it matches, checks the token where
the route asks for one, and sends what the route's endpoint answers.

Nothing here names an API route: what varies by route comes from the
bindings (and their proto options) or from how a page was registered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc import aio

from gateway.bindings import Binding
from gateway.config import Settings
from gateway.errors import HttpError, not_found_route, unauthorized, wrong_method
from gateway.http import (
    ClientGone,
    Receive,
    Request,
    Scope,
    Send,
    parse_json,
    read_body,
)
from gateway.layers import ACTOR, QUIET, ROUTE, request_of
from gateway.preconditions import entity_tag, read_conditions
from gateway.responses import Response
from gateway.routing import Match, PathError, Router, WrongMethod
from gateway.templates import PathTemplate, parse_template
from gateway.transcoding import NO_BODY, build_reply, build_request, next_link
from gateway.upstreams import Upstreams
from research_common.auth import Tokens
from research_common.constants import REQUEST_ID_HEADER
from research_common.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from research_common.metrics import exposition

# An endpoint answers one matched request: (request, receive, path variables).
Endpoint = Callable[[Request, Receive, dict[str, str]], Awaitable[Response]]


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One method on one path template, and what answers it."""

    template: PathTemplate
    http_method: str
    endpoint: Endpoint
    name: str
    # Answered without a token: probes, metrics and the documentation.
    public: bool = False
    # Polled by probes every few seconds: its access-log line is DEBUG.
    quiet: bool = False


def page(
    path: str, endpoint: Endpoint, name: str, *, public: bool = True, quiet: bool = False
) -> Route:
    """A GET page of the gateway's own (HEAD is answered wherever GET is)."""
    return Route(parse_template(path), "GET", endpoint, name, public, quiet)


class Dispatch:
    """The router as the innermost ASGI application."""

    def __init__(self, routes: Iterable[Route], tokens: Tokens) -> None:
        self.router: Router[Route] = Router(routes)
        self.tokens = tokens
        by_template: dict[str, list[Route]] = {}
        for route in self.router.routes:
            by_template.setdefault(route.template.source, []).append(route)
        # A path is open when every route on it is (a 405 for POST /healthz
        # needs no token, as GET /healthz does not).
        self._public = {t for t, routes in by_template.items() if all(r.public for r in routes)}
        self._quiet = {t for t, routes in by_template.items() if all(r.quiet for r in routes)}

    def allowed(self, path: str) -> tuple[str, ...] | None:
        """The methods `path` answers, or None when no route has it."""
        try:
            found = self.router.match("OPTIONS", path)
        except PathError:
            return None
        if isinstance(found, WrongMethod):
            return found.allowed
        return ("OPTIONS",) if found is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_of(scope)
        request.check_head()
        path = request.path
        found: Match[Route] | WrongMethod | None = None
        bad_path: PathError | None = None
        try:
            found = self.router.match(request.method, path)
        except PathError as error:
            bad_path = error
        template = None
        if isinstance(found, Match):
            template = found.route.template.source
        elif isinstance(found, WrongMethod):
            template = found.template
        if template is not None:
            scope[ROUTE] = template
            scope[QUIET] = template in self._quiet
        # The token first: without one, a caller learns nothing about which
        # paths exist. Preflights carry no credentials (browsers never send
        # them there).
        authorization = request.headers.get("authorization")
        identity = self.tokens.identify(authorization)
        scope[ACTOR] = None if identity is None else identity.name
        if request.method != "OPTIONS" and template not in self._public and identity is None:
            raise unauthorized(authorization)
        if bad_path is not None:
            raise HttpError.bad_request(str(bad_path))
        if found is None:
            raise not_found_route(request.method, path)
        if isinstance(found, WrongMethod):
            if request.method == "OPTIONS":  # a plain OPTIONS lists the methods
                allow = ", ".join([*found.allowed, "OPTIONS"])
                await Response.json(204, None, [("allow", allow)]).send(send)
                return
            raise wrong_method(request.method, path, found.allowed)
        response = await found.route.endpoint(request, receive, found.variables)
        await response.send(send, head=request.method == "HEAD")


# --- the proto routes ------------------------------------------------------------


def proto_routes(settings: Settings, upstreams: Upstreams) -> list[Route]:
    """One route per binding of the upstream services."""
    return [
        Route(
            binding.template,
            binding.http_method,
            _transcoder(binding, settings, upstreams),
            binding.name,
        )
        for binding in upstreams.bindings
    ]


def _transcoder(binding: Binding, settings: Settings, upstreams: Upstreams) -> Endpoint:
    """The endpoint of one binding: the request transcoded into one gRPC
    call, and its answer back (`gateway.transcoding`)."""

    async def transcode(request: Request, receive: Receive, variables: dict[str, str]) -> Response:
        timeout = request.timeout(settings.timeout, settings.max_timeout)
        conditions = read_conditions(binding.request, request)
        raw = await read_body(request, receive, settings.max_body_bytes, timeout)
        body: Any = NO_BODY
        if raw.strip():
            if binding.body is None:
                raise HttpError.bad_request(
                    f"{binding.http_method} {binding.template.source} takes no request body"
                )
            request.check_json_content_type()
            body = parse_json(raw)
        message = build_request(
            binding, variables, request.query_params(), body, conditions.if_match
        )
        metadata = [(REQUEST_ID_HEADER, request.request_id)]
        authorization = request.headers.get("authorization")
        if authorization is not None:
            if not authorization.isascii() or not authorization.isprintable():
                raise HttpError.bad_request("the Authorization header is not printable ASCII")
            metadata.append(("authorization", authorization))
        try:
            response = await _unless_client_leaves(
                upstreams.call(binding, message, timeout, metadata), receive
            )
        except aio.AioRpcError as error:
            raise HttpError.from_rpc(error, binding.upstream, timeout) from None
        reply = build_reply(binding, response, message)
        tag = entity_tag(reply.etag) if reply.etag else None
        etag = [("etag", tag)] if tag else []
        if conditions.not_modified(reply.etag):
            # RFC 9110 §15.4.5: no body, and of the 200's headers those a
            # cache needs to update what it holds: the ETag.
            return Response.json(304, None, etag)
        headers = [("location", reply.location)] if reply.location else []
        headers += etag
        if reply.next_page_token:
            link = next_link(binding, reply.next_page_token, request.path, request.query)
            headers.append(("link", link))
        return Response.json(reply.status, reply.body, headers)

    return transcode


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


# --- the gateway's own pages --------------------------------------------------------


def probe_pages(settings: Settings, upstreams: Upstreams) -> list[Route]:
    """`/healthz`, `/readyz` (CONTRACT §8) and `/metrics`."""

    async def healthz(request: Request, receive: Receive, variables: dict[str, str]) -> Response:
        return Response.json(200, {"status": "ok"})

    async def readyz(request: Request, receive: Receive, variables: dict[str, str]) -> Response:
        states = await upstreams.health(settings.ready_timeout)
        down = [name for name, state in states.items() if state != "SERVING"]
        if not down:
            return Response.json(200, {"status": "ready", "upstreams": states})
        names = ", ".join(f"{name} ({upstreams.address(name)}) is {states[name]}" for name in down)
        error = HttpError(503, grpc.StatusCode.UNAVAILABLE, f"not ready: {names}")
        return Response.json(503, {**error.body(), "upstreams": states})

    async def metrics(request: Request, receive: Receive, variables: dict[str, str]) -> Response:
        return Response.raw(exposition(), METRICS_CONTENT_TYPE)

    return [
        page("/healthz", healthz, "liveness probe", quiet=True),
        page("/readyz", readyz, "readiness probe", quiet=True),
        page("/metrics", metrics, "Prometheus metrics"),
    ]
