"""Slow clients against the real stack: a body or a request head that
trickles in, or never comes, is answered 408 with the contract's error body
once the request deadline (here 2 s) has passed, the connection is closed,
and nobody else waits meanwhile."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from gateway.config import Settings as GatewaySettings
from tests.fixtures.stack import Stack
from tests.reliability.conftest import Record
from tests.reliability.rawhttp import Answer, read_answer, request_bytes
from tests.reliability.test_hostile_http import JSON, STRATEGY, assert_healthy

pytestmark = pytest.mark.postgres

DEADLINE = 2.0
STALLED = 50
HALF_A_HEAD = b"GET /api/v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    """A short request deadline, so that waiting it out is quick."""
    return GatewaySettings(timeout=DEADLINE, shutdown_grace=1)


def assert_408(answer: Answer, fragment: str) -> None:
    assert answer.status == 408, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    body = answer.json()
    assert list(body) == ["code", "message", "detail", "details"]
    assert (body["code"], body["details"]) == (4, [])
    assert fragment in body["message"]
    assert body["detail"] == body["message"]


async def stalled_answer(port: int, payload: bytes, prefix: bytes = b"") -> tuple[Answer, float]:
    """Send `prefix` (whole requests, answered first) and `payload`, then
    nothing; the answer to `payload` and how long it took; the connection
    must be closed after it."""
    async with asyncio.timeout(DEADLINE + 5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if prefix:
                writer.write(prefix)
                assert (await read_answer(reader)).status == 200
            began = time.monotonic()
            writer.write(payload)
            await writer.drain()
            answer = await read_answer(reader)
            took = time.monotonic() - began
            assert await reader.read() == b""  # closed by the gateway
        finally:
            writer.close()
    return answer, took


async def test_a_slow_body_is_408(stack: Stack, figures: Record) -> None:
    # Half the declared body, then nothing: the request's deadline covers
    # reading the body too; the caller's Grpc-Timeout (1 s) sets it here.
    body = json.dumps({"strategy_id": STRATEGY}).encode()
    head = request_bytes("POST", b"/api/v1/experiments", [*JSON, (b"Grpc-Timeout", b"1S")], body)
    answer, took = await stalled_answer(stack.gateway.port, head[: len(head) - len(body) // 2])
    figures(answered_after_s=round(took, 2))
    assert_408(answer, "the request body did not arrive within 1 s")
    assert 1.0 <= took < 1.0 + 2.0
    await assert_healthy(stack)


@pytest.mark.parametrize(
    ("label", "prefix", "payload"),
    [
        pytest.param("half a head", b"", HALF_A_HEAD, id="half-a-head"),
        pytest.param("no bytes at all", b"", b"", id="no-bytes"),
        pytest.param(
            "half a second head after a whole request",
            request_bytes("GET", b"/healthz"),
            HALF_A_HEAD,
            id="kept-alive-second-head",
        ),
    ],
)
async def test_a_slow_head_is_408(
    stack: Stack, label: str, prefix: bytes, payload: bytes, figures: Record
) -> None:
    answer, took = await stalled_answer(stack.gateway.port, payload, prefix)
    figures(answered_after_s=round(took, 2))
    assert_408(answer, f"the request head did not arrive within {DEADLINE:g} s")
    assert DEADLINE - 0.1 <= took < DEADLINE + 2.0, label
    await assert_healthy(stack)


async def test_stalled_connections_hold_up_nobody(stack: Stack, figures: Record) -> None:
    # 50 slowloris connections: others are served at once meanwhile, and
    # every stalled one is answered 408 and closed at the deadline.
    opened = [
        await asyncio.open_connection("127.0.0.1", stack.gateway.port) for _ in range(STALLED)
    ]
    try:
        for _, writer in opened:
            writer.write(HALF_A_HEAD)
            await writer.drain()
        began = time.monotonic()
        await assert_healthy(stack)
        served_in = time.monotonic() - began
        async with asyncio.timeout(DEADLINE + 5):
            answers = await asyncio.gather(*(read_answer(reader) for reader, _ in opened))
        all_answered_in = time.monotonic() - began
    finally:
        for _, writer in opened:
            writer.close()
    figures(
        stalled=STALLED,
        others_served_in_s=round(served_in, 2),
        all_408_in_s=round(all_answered_in, 2),
    )
    assert served_in < 1.0
    assert [answer.status for answer in answers] == [408] * STALLED
    await assert_healthy(stack)
