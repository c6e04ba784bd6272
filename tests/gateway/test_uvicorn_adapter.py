"""The uvicorn adapter: what the gateway takes from uvicorn's internals is
checked at start-up, and a uvicorn without it still serves, with a warning
naming what is missing and what is lost."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway import uvicorn_adapter
from gateway.config import Settings
from gateway.server import create_server

# Upstreams that are never called: /healthz does not ask them.
SETTINGS = Settings(
    experiments_address="127.0.0.1:9", tracking_address="127.0.0.1:9", shutdown_grace=1
)


def test_with_every_internal_present_the_adapter_is_used(caplog: pytest.LogCaptureFixture) -> None:
    adapter = uvicorn_adapter.check(head_timeout=2.5)
    assert isinstance(adapter.http, type)
    assert issubclass(adapter.http, uvicorn_adapter.HttpProtocol)
    assert adapter.http.head_timeout == 2.5
    assert adapter.server is uvicorn_adapter.QuietServer
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_without_capture_signals_the_plain_server_is_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(uvicorn.Server, "capture_signals")
    adapter = uvicorn_adapter.check(head_timeout=1)
    assert adapter.server is uvicorn.Server
    assert issubclass(adapter.http, uvicorn_adapter.HttpProtocol)  # type: ignore[arg-type]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "lacks Server.capture_signals" in warnings[0]
    assert "uvicorn handles SIGTERM and SIGINT itself" in warnings[0]


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return answer


async def test_a_uvicorn_without_the_protocol_internals_still_serves(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(HttpToolsProtocol, "send_400_response")
    caplog.set_level(logging.WARNING, logger="gateway.server")
    server, port = create_server(SETTINGS, "127.0.0.1:0")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            response = await http.get("/healthz")
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
            # The API's routing and error bodies are the gateway's own: unchanged.
            missing = await http.get("/nothing")
            assert missing.status_code == 404
            assert missing.json()["code"] == 5
        # What is lost: the connection is uvicorn's own httptools protocol
        # (no contract body for what its parser refuses, no head timeout).
        assert server.adapter.http == "httptools"
        assert server.adapter.server is uvicorn_adapter.QuietServer
    finally:
        await server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "lacks HttpToolsProtocol.send_400_response" in warnings[0]
    assert "serving on plain uvicorn" in warnings[0]


async def test_with_the_adapter_a_refused_request_gets_the_contract_body() -> None:
    server, port = create_server(SETTINGS, "127.0.0.1:0")
    await server.start()
    try:
        refused = await _raw(port, b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        await server.stop()
    assert refused.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b'"code":3' in refused


class _Recorded(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 5) if name == "peername" else default


async def test_what_one_step_writes_goes_out_as_one_write() -> None:
    below = _Recorded()
    joined = uvicorn_adapter.OneWritePerStep(below, asyncio.get_running_loop())
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    joined.write(b"{}")
    assert below.writes == []
    assert joined.get_write_buffer_size() == 7 + 40
    await asyncio.sleep(0)  # the next step of the loop
    assert below.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    # The next step's writes are a write of their own.
    joined.write(b"next")
    await asyncio.sleep(0)
    assert below.writes[1:] == [b"next"]
    # Everything else is the transport's own.
    assert joined.get_extra_info("peername") == ("127.0.0.1", 5)


async def test_close_sends_what_is_pending_first_and_nothing_after() -> None:
    below = _Recorded()
    joined = uvicorn_adapter.OneWritePerStep(below, asyncio.get_running_loop())
    joined.write(b"head")
    joined.write(b"body")
    joined.close()
    assert below.writes == [b"headbody"]
    assert below.closed
    joined.write(b"late")
    await asyncio.sleep(0)
    assert below.writes == [b"headbody"]
