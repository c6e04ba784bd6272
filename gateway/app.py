"""The gateway as one ASGI application, built once from layers (outermost
first; see `gateway.layers` and `gateway.endpoints`):

    RequestLog → Cors → ErrorResponses → Dispatch (the router)

A request goes in at the top: `RequestLog` parses its head once into the
scope, sets the request id in the log context and echoes it back; `Cors`
answers a preflight or adds the CORS headers on the way out; the router
matches the path against every route (the upstream services' bindings and
the gateway's own pages alike), writes the matched template into the scope,
checks the token unless the route is open, and calls the route's endpoint,
whose `Response` it sends. An `HttpError` raised anywhere below becomes the
contract's error body in `ErrorResponses`; on its way back out the answer
gets its CORS headers, and `RequestLog` writes the access-log line and the
metrics. Adding a page is one more `page(...)` in the list of routes.

The lifespan opens and closes the channels to the upstream services.
"""

from __future__ import annotations

import asyncio

from gateway.config import Settings
from gateway.console import Console
from gateway.cors import CorsPolicy
from gateway.docs import ApiDocs
from gateway.endpoints import Dispatch, probe_pages, proto_routes
from gateway.http import Receive, Scope, Send
from gateway.layers import Cors, ErrorResponses, RequestLog
from gateway.upstreams import Upstreams


class Gateway:
    """The application uvicorn serves."""

    def __init__(self, settings: Settings, upstreams: Upstreams) -> None:
        self.settings = settings
        self.upstreams = upstreams
        # Set once the lifespan has started: the server is about to serve.
        self.started = asyncio.Event()
        # /openapi.json and /docs: built here, once, from the routed bindings.
        self.docs = ApiDocs(upstreams.bindings)
        self.dispatch = Dispatch(
            [
                *proto_routes(settings, upstreams),
                *probe_pages(settings, upstreams),
                *self.docs.routes(),
                *Console().routes(),
            ],
            settings.tokens,
        )
        self.http = RequestLog(
            Cors(
                ErrorResponses(self.dispatch),
                CorsPolicy(settings.cors_origins),
                self.dispatch.allowed,
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.upstreams.open()
                await send({"type": "lifespan.startup.complete"})
                self.started.set()
            elif message["type"] == "lifespan.shutdown":
                await self.upstreams.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
