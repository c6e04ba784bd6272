"""`python -m research_common.healthcheck`, the containers' health check, run
as a process against a real experiments server, a real TLS one, a stub HTTP
server, and ports where nothing (or nothing useful) listens."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from experiments_svc.config import Settings
from experiments_svc.server import SERVICE_NAME, create_server
from research_common.healthcheck import main
from research_common.server import GrpcServer
from research_common.tls import TlsSettings
from testbed.ports import free_port
from tests.certificates import make_certificates

# Proxy variables pointing nowhere: the check must not use them.
NO_PROXY_ENV = {
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "grpc_proxy": "http://127.0.0.1:9",
}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TLS_") and "proxy" not in key.lower()
    }
    return {**env, **NO_PROXY_ENV, **(extra or {})}


async def healthcheck(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit code and stderr of `python -m research_common.healthcheck ARGS`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "research_common.healthcheck",
        *args,
        env=_env(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def _server(tmp_path: Path, tls: TlsSettings | None = None) -> GrpcServer:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'experiments.db'}",
        tracking_address="127.0.0.1:1",
        health_interval=60,
        tls=tls or TlsSettings(),
    )
    server, _ = await create_server(settings, "127.0.0.1:0")
    await server.start()
    return server


@pytest.fixture
async def experiments(tmp_path: Path) -> AsyncIterator[GrpcServer]:
    server = await _server(tmp_path)
    yield server
    await server.stop(0)


async def test_serving_is_exit_0(experiments: GrpcServer) -> None:
    address = f"127.0.0.1:{experiments.port}"
    assert await healthcheck(address) == (0, "")
    assert await healthcheck(address, SERVICE_NAME) == (0, "")


async def test_unknown_service_is_exit_1(experiments: GrpcServer) -> None:
    code, stderr = await healthcheck(f"127.0.0.1:{experiments.port}", "no.such.Service")
    assert code == 1
    reason = "NOT_FOUND: the server has no service 'no.such.Service'"
    assert stderr == f"unhealthy: 127.0.0.1:{experiments.port}: {reason}\n"


async def test_not_serving_is_exit_1(experiments: GrpcServer) -> None:
    # What a draining server reports after SIGTERM.
    await experiments.health.stop()
    code, stderr = await healthcheck(f"127.0.0.1:{experiments.port}")
    assert code == 1
    assert stderr == f"unhealthy: 127.0.0.1:{experiments.port}: server is NOT_SERVING\n"
    code, stderr = await healthcheck(f"127.0.0.1:{experiments.port}", SERVICE_NAME)
    assert code == 1
    assert stderr.endswith(f": {SERVICE_NAME} is NOT_SERVING\n")


async def test_closed_port_is_exit_1() -> None:
    port = free_port()
    code, stderr = await healthcheck(f"127.0.0.1:{port}")
    assert code == 1
    assert stderr.startswith(f"unhealthy: 127.0.0.1:{port}: UNAVAILABLE: ")
    assert stderr.count("\n") == 1


async def test_a_silent_server_times_out() -> None:
    """A port that accepts connections and never answers: the check gives
    up after --timeout, well within the healthcheck's own timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        code, stderr = await healthcheck(f"127.0.0.1:{port}", "--timeout", "0.5")
        elapsed = time.monotonic() - started
    assert code == 1
    assert stderr.startswith(f"unhealthy: 127.0.0.1:{port}: DEADLINE_EXCEEDED: ")
    assert elapsed < 3


async def test_tls_with_the_ca_of_the_environment(tmp_path: Path) -> None:
    paths = make_certificates(tmp_path)
    tls = TlsSettings.from_env(
        {"TLS_CERT_FILE": str(paths["cert"]), "TLS_KEY_FILE": str(paths["key"])}
    )
    server = await _server(tmp_path, tls)
    try:
        address = f"127.0.0.1:{server.port}"
        assert await healthcheck(address, env={"TLS_CA_FILE": str(paths["ca"])}) == (0, "")
        # Verified against the CA, by the name TLS_SERVER_NAME gives.
        with_name = {"TLS_CA_FILE": str(paths["ca"]), "TLS_SERVER_NAME": "localhost"}
        assert await healthcheck(address, env=with_name) == (0, "")
        wrong_name = {"TLS_CA_FILE": str(paths["ca"]), "TLS_SERVER_NAME": "elsewhere"}
        code, stderr = await healthcheck(address, env=wrong_name)
        assert code == 1
        assert stderr.startswith(f"unhealthy: {address}: UNAVAILABLE: ")
        # Plaintext gets nothing from a TLS server.
        code, stderr = await healthcheck(address)
        assert code == 1
        assert stderr.startswith(f"unhealthy: {address}: UNAVAILABLE: ")
        code, stderr = await healthcheck(address, env={"TLS_CA_FILE": "/no/such.pem"})
        assert (code, stderr) == (
            1,
            "unhealthy: TLS_CA_FILE: cannot read '/no/such.pem': No such file or directory\n",
        )
    finally:
        await server.stop(0)


# --- --http --------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    statuses: ClassVar[dict[str, tuple[int, bytes]]] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, body = self.statuses.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"statuses": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()
    thread.join()


async def test_http_ready_is_exit_0(http_server: tuple[int, type[_Handler]]) -> None:
    port, handler = http_server
    handler.statuses["/readyz"] = (200, b'{"status": "ready"}')
    handler.statuses["/health"] = (200, b"OK")
    # No path: the gateway's /readyz. A bare host:port is taken as http://.
    assert await healthcheck("--http", f"http://127.0.0.1:{port}") == (0, "")
    assert await healthcheck("--http", f"127.0.0.1:{port}/") == (0, "")
    assert await healthcheck("--http", f"http://127.0.0.1:{port}/health") == (0, "")
    assert handler.seen == ["/readyz", "/readyz", "/health"]


async def test_http_not_ready_is_exit_1(http_server: tuple[int, type[_Handler]]) -> None:
    port, handler = http_server
    handler.statuses["/readyz"] = (503, b'{\n  "tracking": "NOT_SERVING"\n}')
    handler.statuses["/empty"] = (500, b"")
    code, stderr = await healthcheck("--http", f"http://127.0.0.1:{port}")
    assert code == 1
    assert stderr == (
        f'unhealthy: http://127.0.0.1:{port}/readyz: HTTP 503: {{ "tracking": "NOT_SERVING" }}\n'
    )
    code, stderr = await healthcheck("--http", f"http://127.0.0.1:{port}/empty")
    assert (code, stderr) == (1, f"unhealthy: http://127.0.0.1:{port}/empty: HTTP 500\n")


async def test_http_closed_port_and_bad_urls_are_exit_1() -> None:
    port = free_port()
    code, stderr = await healthcheck("--http", f"http://127.0.0.1:{port}/readyz")
    assert code == 1
    assert stderr == f"unhealthy: http://127.0.0.1:{port}/readyz: [Errno 111] Connection refused\n"
    code, stderr = await healthcheck("--http", "ftp://127.0.0.1/readyz")
    assert (code, stderr) == (1, "unhealthy: not an http(s) URL: 'ftp://127.0.0.1/readyz'\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["127.0.0.1:50051", "--http", "http://127.0.0.1:8080"],
        ["127.0.0.1:50051", "--timeout", "0"],
        ["127.0.0.1:50051", "--timeout", "soon"],
        ["127.0.0.1:50051", "--no-such-option"],
    ],
)
def test_usage_errors_are_exit_1_not_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Docker reserves exit code 2; argparse would use it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    assert "usage: python -m research_common.healthcheck" in capsys.readouterr().err


def test_a_malformed_address_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["localhost"]) == 1
    assert capsys.readouterr().err == "unhealthy: address must be host:port, got 'localhost'\n"
