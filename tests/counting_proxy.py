"""A small threaded HTTP/1.1 reverse proxy in front of the MLflow server, on a
free loopback port. It records every request and how many were in flight at
once, and can hold each request for a while before passing it on: enough to
see what tracking_svc asks MLflow, and whether it asks in parallel."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.started import Started

# Headers that belong to one connection, not to the request (RFC 9110 §7.6.1);
# Host is set anew for the upstream connection.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
UPSTREAM_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the proxy received it."""

    method: str
    path: str  # with the query string


class CountingProxy(Started):
    """Forwards to `upstream_port` on 127.0.0.1; `url` is what clients use."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        # Seconds each request waits before it is forwarded.
        self.delay = 0.0
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def matching(self, fragment: str) -> list[Request]:
        """The recorded requests whose path contains `fragment`."""
        return [request for request in self.requests if fragment in request.path]

    def reset(self) -> None:
        """Forget the requests seen so far and the in-flight high-water mark."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    @contextlib.contextmanager
    def delayed(self, seconds: float) -> Iterator[None]:
        """Hold every request for `seconds` inside the block."""
        self.delay = seconds
        try:
            yield
        finally:
            self.delay = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="counting-proxy", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def _begin(self, request: Request) -> float:
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return self.delay

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An idle keep-alive connection is closed after this many seconds.
            timeout = 10

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                delay = proxy._begin(Request(self.command, self.path))
                try:
                    if delay:
                        time.sleep(delay)
                    status, reason, headers, payload = self._upstream(body)
                finally:
                    proxy._end()
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _upstream(
                self, body: bytes | None
            ) -> tuple[int, str, list[tuple[str, str]], bytes]:
                connection = http.client.HTTPConnection(
                    "127.0.0.1", proxy.upstream_port, timeout=UPSTREAM_TIMEOUT
                )
                try:
                    headers = {
                        name: value
                        for name, value in self.headers.items()
                        if name.lower() not in _HOP_BY_HOP
                    }
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, response.reason, response.getheaders(), response.read()
                except OSError as error:
                    message = f"upstream unreachable: {error}".encode()
                    return 502, "Bad Gateway", [("Content-Type", "text/plain")], message
                finally:
                    connection.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the recorded requests are the log

        return Handler
