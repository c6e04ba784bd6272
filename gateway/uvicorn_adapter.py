"""Everything the gateway takes from uvicorn beyond its public API, in one
place, checked when the gateway starts.

1. The HTTP/1.1 connection: uvicorn's httptools protocol with two changes,
   both so that what never reaches the ASGI app is still answered the
   contract's way (CONTRACT §4: one error body from any route):
   - a request the parser refuses (raw non-ASCII bytes in the target, a
     malformed head) is answered 400 with the error body, not uvicorn's
     plain text;
   - a request head must arrive within `head_timeout` seconds of the
     connection opening or of its first byte; otherwise 408 with the error
     body, and the connection is closed. Without it a client sending half a
     head and then nothing (slowloris) held its connection open for ever.
2. The server without uvicorn's own signal handling: signals are the
   process runner's business; uvicorn's capture would re-raise SIGTERM after
   shutdown and end the process with -15 instead of 0.

Both rest on uvicorn internals (method names of `HttpToolsProtocol`, its
`loop`, `transport` and `server_state` attributes, `Server.capture_signals`).
`check()` looks for them; where one is missing, the gateway logs one warning
naming it and what is lost, and serves on plain uvicorn for that part,
instead of relying on an exact version pin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import grpc
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.errors import HttpError

log = logging.getLogger("gateway.server")

_STATUS_LINES = {400: b"HTTP/1.1 400 Bad Request\r\n", 408: b"HTTP/1.1 408 Request Timeout\r\n"}


class HttpProtocol(HttpToolsProtocol):
    head_timeout: float = 5.0  # set per server by `protocol_class`
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Duck-typed: it is the transport for everything uvicorn calls.
        self.transport = cast(asyncio.Transport, OneWritePerStep(transport, self.loop))
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The next request on a kept-alive connection: its head is timed too.
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._send_error(HttpError.bad_request(f"the request is not valid HTTP/1.1: {msg}"))

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._send_error(
                HttpError(
                    408,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"the request head did not arrive within {self.head_timeout:g} s",
                )
            )

    def _send_error(self, error: HttpError) -> None:
        """`error` as the whole answer, then close the connection."""
        payload = orjson.dumps(error.body())
        content = [_STATUS_LINES[error.status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(payload)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                payload,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


class OneWritePerStep:
    """A transport that joins what is written to it within one step of the
    event loop into one write of the transport below it.

    uvicorn writes a response's head and its body separately, and with
    TCP_NODELAY each write is a send() of its own and a segment of its own.
    The gateway sends both in one step of its task, so they go out as one
    send(): one system call and one segment fewer per response."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, ...)
        # is the transport's own.
        return getattr(self._transport, name)


def protocol_class(head_timeout: float) -> type[HttpProtocol]:
    """HttpProtocol with this server's head timeout (uvicorn makes one
    instance per connection from the class it is given)."""
    return type("HttpProtocol", (HttpProtocol,), {"head_timeout": head_timeout})


class QuietServer(uvicorn.Server):
    """uvicorn's server, leaving signals to the process runner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# What each part needs of uvicorn: (owner, attribute) pairs.
_PROTOCOL_NEEDS = (
    (HttpToolsProtocol, "connection_made"),
    (HttpToolsProtocol, "on_message_begin"),
    (HttpToolsProtocol, "on_headers_complete"),
    (HttpToolsProtocol, "connection_lost"),
    (HttpToolsProtocol, "send_400_response"),
)
_SERVER_NEEDS = ((uvicorn.Server, "capture_signals"),)


@dataclass(frozen=True, slots=True)
class Adapter:
    """What the gateway's server is built with."""

    http: type[asyncio.Protocol] | str
    server: type[uvicorn.Server]


def _missing(needs: tuple[tuple[type, str], ...]) -> list[str]:
    return [
        f"{owner.__name__}.{name}"
        for owner, name in needs
        if not callable(getattr(owner, name, None))
    ]


def check(head_timeout: float) -> Adapter:
    """The protocol and server classes to run with: this module's where
    uvicorn has what they rest on, plain uvicorn's otherwise (one warning
    for each part that falls back)."""
    http: type[asyncio.Protocol] | str = protocol_class(head_timeout)
    missing = _missing(_PROTOCOL_NEEDS)
    if not hasattr(ServerState(), "default_headers"):
        missing.append("ServerState.default_headers")
    if missing:
        log.warning(
            "uvicorn %s lacks %s: requests its HTTP parser refuses get uvicorn's plain-text "
            "400, and a slow request head is not cut off with 408; serving on plain uvicorn",
            uvicorn.__version__,
            ", ".join(missing),
        )
        http = "httptools"
    server: type[uvicorn.Server] = QuietServer
    missing = _missing(_SERVER_NEEDS)
    if missing:
        log.warning(
            "uvicorn %s lacks %s: uvicorn handles SIGTERM and SIGINT itself, and the exit "
            "status after a signal may not be 0; serving on plain uvicorn",
            uvicorn.__version__,
            ", ".join(missing),
        )
        server = uvicorn.Server
    return Adapter(http, server)
