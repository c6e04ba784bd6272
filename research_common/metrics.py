"""Prometheus metrics of all three processes.

The gRPC services count every call by method and status code and time it
(the interceptor records them); each serves them on `METRICS_ADDR` when
that is set. The gateway counts requests by route template, method and
HTTP status and serves them at its own `GET /metrics`.

The metric objects live in prometheus_client's default registry, once per
process, whatever the number of servers a test starts in it.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

log = logging.getLogger("research.metrics")

# Latency buckets from 1 ms to 10 s: calls here take milliseconds, and the
# deadline (5 s by default) bounds the slowest.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "gRPC calls completed, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to answer a gRPC call, by method.",
    ["grpc_service", "grpc_method"],
    buckets=_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered by the gateway, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=_BUCKETS,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_rpc(method: str, code: str, seconds: float) -> None:
    """Record one call of `method` ("/package.Service/Method")."""
    _, service, name = method.split("/", 2) if method.count("/") == 2 else ("", "", method)
    RPC_HANDLED.labels(service, name, code).inc()
    RPC_SECONDS.labels(service, name).observe(seconds)


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """Record one request; `route` is the template, never the raw path
    (ids in paths would make one series per id)."""
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


def exposition() -> bytes:
    """The metrics in Prometheus' text format."""
    return generate_latest()


def serve_metrics(address: str) -> WSGIServer:
    """Serve `/metrics` on `address` (host:port) from a thread; the server is
    stopped with `.shutdown()`."""
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"))
    log.info("metrics on http://%s/metrics", address)
    return server
