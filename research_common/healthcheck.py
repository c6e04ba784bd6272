"""A container health check.

    python -m research_common.healthcheck HOST:PORT [SERVICE]
        asks `grpc.health.v1.Health/Check` (SERVICE defaults to the whole
        server, "") and exits 0 only on SERVING;
    python -m research_common.healthcheck --http URL
        GETs URL (the gateway's /readyz when URL has no path) and exits 0
        only on 200.

Anything else exits 1 with one line on stderr saying why; never 2, which
Docker reserves. With TLS_CA_FILE set (and TLS_SERVER_NAME, as the gateway
reads them) the gRPC check dials TLS and verifies the server against that CA.
Proxy variables are ignored: the target is always local to the container.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from research_common.config import ConfigError, parse_address
from research_common.tls import TlsSettings

# Seconds one check may take; below the healthcheck `timeout:` of the compose file.
DEFAULT_TIMEOUT = 3.0
READY_PATH = "/readyz"
# How much of an error response's body goes into the one-line reason.
_BODY_EXCERPT = 200


class Unhealthy(Exception):
    """The target is not healthy; the message is the one-line reason."""


def check_grpc(
    address: str,
    service: str = "",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> None:
    """Return if `service` at `address` reports SERVING; raise `Unhealthy`."""
    try:
        parse_address("address", address)
        tls = TlsSettings.from_env(
            {
                name: value
                for name, value in (os.environ if env is None else env).items()
                if name in {"TLS_CA_FILE", "TLS_SERVER_NAME"}
            }
        )
    except ConfigError as error:
        raise Unhealthy(str(error)) from None
    # No HTTP proxy for a local check, whatever the environment says.
    options: list[tuple[str, str | int]] = [("grpc.enable_http_proxy", 0)]
    if tls.ca is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca)
        channel = grpc.secure_channel(address, credentials, options=options)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            details = " ".join((error.details() or "").split())
            if code == grpc.StatusCode.NOT_FOUND:
                details = f"the server has no service {service!r}"
            reason = f"{address}: {code.name}"
            raise Unhealthy(f"{reason}: {details}" if details else reason) from None
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise Unhealthy(f"{address}: {service or 'server'} is {status}")


def check_http(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Return if GET `url` answers 200; raise `Unhealthy`."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise Unhealthy(f"not an http(s) URL: {url!r}")
    if parts.path in {"", "/"}:
        parts = parts._replace(path=READY_PATH)
    target = urllib.parse.urlunsplit(parts)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(target, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            body = " ".join(error.read(_BODY_EXCERPT).decode(errors="replace").split())
        reason = f"{target}: HTTP {error.code}"
        raise Unhealthy(f"{reason}: {body}" if body else reason) from None
    except urllib.error.URLError as error:
        raise Unhealthy(f"{target}: {error.reason}") from None
    except OSError as error:  # a timeout while reading, a reset connection
        raise Unhealthy(f"{target}: {type(error).__name__}: {error}") from None
    if status != 200:
        raise Unhealthy(f"{target}: HTTP {status}")


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 too: Docker reserves exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m research_common.healthcheck",
        description="Exit 0 if the service is healthy, else 1 with the reason on stderr.",
    )
    parser.add_argument("address", nargs="?", help="HOST:PORT of a gRPC server")
    parser.add_argument("service", nargs="?", default="", help="service name (default: server)")
    parser.add_argument("--http", metavar="URL", help="check URL (default path /readyz) instead")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    args = parser.parse_args(argv)
    if (args.address is None) == (args.http is None):
        parser.error("give either HOST:PORT [SERVICE] or --http URL")
    if not args.timeout > 0:
        parser.error("--timeout must be positive")
    try:
        if args.http is not None:
            check_http(args.http, timeout=args.timeout)
        else:
            check_grpc(args.address, args.service, timeout=args.timeout)
    except Unhealthy as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
