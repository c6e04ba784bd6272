"""Malformed protobuf sent straight to either service (issue 11, item 5):
invalid UTF-8 in a string field, truncated bytes, an impossible wire type
and nesting past the parser's depth limit are INVALID_ARGUMENT with a clear
message, logged at INFO with the caller's request id, and nothing is logged
at ERROR (CONTRACT §4: UNKNOWN and INTERNAL mean a bug, and bad input is
not one)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from research_common.auth import MISSING, Tokens
from research_common.logging import JsonFormatter
from research_common.server import GrpcServer
from testbed.ports import free_port
from tests.fixtures.grpc import rpc_error
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.server import create_server as create_tracking

EXPERIMENTS = "/research.experiments.v1.ExperimentService/"
TRACKING = "/research.tracking.v1.TrackingService/"
TOKEN = "decoding-token.1"

BAD_UTF8 = "a string field is not valid UTF-8"
CORRUPT = "the wire format is truncated or corrupt"
TOO_DEEP = "messages are nested too deeply"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _deep_struct(depth: int) -> bytes:
    """A google.protobuf.Struct `{"k": {"k": ...}}` `depth` levels deep,
    encoded by hand (Struct.fields = 1 is a map: entry key = 1, value = 2;
    Value.struct_value = 5): three messages per level, far past the
    parser's limit of 100 at 200 levels."""
    inner = b""
    for _ in range(depth):
        entry = _field(1, b"k") + _field(2, _field(5, inner))
        inner = _field(1, entry)
    return inner


def _deep_groups(depth: int) -> bytes:
    """Unknown field 15 as `depth` nested groups (start-group wire type 3,
    end-group 4): the only nesting a tracking request, which has no message
    fields, can carry."""
    return _varint(15 << 3 | 3) * depth + _varint(15 << 3 | 4) * depth


@dataclass(frozen=True)
class Case:
    method: str
    raw: bytes
    message: str

    @property
    def service(self) -> str:
        return "experiments" if self.method.startswith(EXPERIMENTS) else "tracking"


GET_EXPERIMENT = f"{EXPERIMENTS}GetExperiment"
GET_RUN = f"{TRACKING}GetRun"
NOT_A_GET_EXPERIMENT = "the request is not a valid research.experiments.v1.GetExperimentRequest: "
NOT_A_CREATE = "the request is not a valid research.experiments.v1.CreateExperimentRequest: "
NOT_A_GET_RUN = "the request is not a valid research.tracking.v1.GetRunRequest: "

CASES = {
    # experiment_id (field 1) holding the bytes ff fe.
    "experiments-bad-utf8": Case(
        GET_EXPERIMENT, b"\x0a\x02\xff\xfe", NOT_A_GET_EXPERIMENT + BAD_UTF8
    ),
    # field 1 says 5 bytes follow; 2 do.
    "experiments-truncated": Case(GET_EXPERIMENT, b"\x0a\x05ab", NOT_A_GET_EXPERIMENT + CORRUPT),
    # field 1 with wire type 7, which does not exist.
    "experiments-wire-type": Case(GET_EXPERIMENT, b"\x0f", NOT_A_GET_EXPERIMENT + CORRUPT),
    # parameters (field 7) nested 200 Structs deep.
    "experiments-too-deep": Case(
        f"{EXPERIMENTS}CreateExperiment", _field(7, _deep_struct(200)), NOT_A_CREATE + TOO_DEEP
    ),
    "tracking-bad-utf8": Case(GET_RUN, b"\x0a\x02\xff\xfe", NOT_A_GET_RUN + BAD_UTF8),
    "tracking-truncated": Case(GET_RUN, b"\x0a\x05ab", NOT_A_GET_RUN + CORRUPT),
    "tracking-wire-type": Case(GET_RUN, b"\x0f", NOT_A_GET_RUN + CORRUPT),
    # upb reports unknown groups past its depth limit as corrupt wire
    # format, the pure-Python parser as too deep: either is a clear answer.
    "tracking-too-deep": Case(GET_RUN, _deep_groups(200), NOT_A_GET_RUN),
}


@asynccontextmanager
async def _experiments(database: Path, tokens: Tokens | None = None) -> AsyncIterator[GrpcServer]:
    settings = ExperimentsSettings(
        database_url=f"sqlite:///{database}", health_interval=0.2, tokens=tokens or Tokens()
    )
    server, _ = await create_experiments(settings, "127.0.0.1:0")
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


@asynccontextmanager
async def _tracking() -> AsyncIterator[GrpcServer]:
    # No MLflow at all: a malformed request must be refused before any
    # handler (and so any MLflow call) runs.
    settings = TrackingSettings(
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        experiment_name="decoding",
        health_interval=0.2,
    )
    server, _ = await create_tracking(settings, "127.0.0.1:0")
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


@pytest.fixture
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GrpcServer]:
    """The service `request.param` ("experiments" or "tracking") names."""
    if request.param == "experiments":
        async with _experiments(tmp_path / "experiments.db") as started:
            yield started
    else:
        async with _tracking() as started:
            yield started


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The services' records at DEBUG and up, formatted as their JSON lines
    (which read the request id the interceptor set); other libraries' at
    WARNING and up. Not the root at DEBUG: grpc.aio's DEBUG lines can
    deadlock with a handler (grpc/grpc#43421; a hung test in CI)."""
    caplog.handler.setFormatter(JsonFormatter("test"))
    caplog.set_level(logging.DEBUG, logger="research")
    return caplog


async def _send_raw(
    server: GrpcServer, method: str, raw: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> aio.AioRpcError:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return await rpc_error(call(raw, metadata=metadata, timeout=10))


async def _logged_lines(
    caplog: pytest.LogCaptureFixture, method: str, within: float = 2.0
) -> list[dict[str, object]]:
    """`_lines_of`, once the server has logged the call: the client may
    have its error before the server's handler writes its log line (the
    line is written after the abort), which a CI run caught."""
    deadline = time.monotonic() + within
    # The server logs in its own task, which sets no event the test could wait on.
    while not (lines := _lines_of(caplog, method)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return lines


def _lines_of(caplog: pytest.LogCaptureFixture, method: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("rpc") == method]


@pytest.mark.parametrize(
    ("server", "case"),
    [(case.service, case) for case in CASES.values()],
    ids=CASES.keys(),
    indirect=["server"],
)
async def test_malformed_protobuf_is_invalid_argument(
    server: GrpcServer, case: Case, logged: pytest.LogCaptureFixture
) -> None:
    request_id = f"malformed-{case.service}-1"

    error = await _send_raw(server, case.method, case.raw, (("x-request-id", request_id),))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = error.details() or ""
    assert details.startswith(case.message), details
    assert details.partition(": ")[2] in {BAD_UTF8, CORRUPT, TOO_DEEP}, details
    # No class names, no parser internals.
    for internal in ("<class", "DecodeError", "Traceback", "upb", "Error parsing"):
        assert internal not in details
    assert [r.getMessage() for r in logged.records if r.levelno >= logging.ERROR] == []
    [line] = await _logged_lines(logged, case.method)
    assert (line["level"], line["code"], line["request_id"]) == (
        "info",
        "INVALID_ARGUMENT",
        request_id,
    )


@pytest.mark.parametrize("server", ["experiments"], indirect=True)
async def test_a_malformed_health_check_is_invalid_and_quiet(
    server: GrpcServer, logged: pytest.LogCaptureFixture
) -> None:
    method = "/grpc.health.v1.Health/Check"
    error = await _send_raw(server, method, b"\x0a\x02\xff\xfe")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        f"the request is not a valid grpc.health.v1.HealthCheckRequest: {BAD_UTF8}"
    )
    assert [r.getMessage() for r in logged.records if r.levelno >= logging.ERROR] == []
    # Health stays at DEBUG, as for a well-formed check.
    [line] = await _logged_lines(logged, method)
    assert (line["level"], line["code"]) == ("debug", "INVALID_ARGUMENT")


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[GrpcServer]:
    async with _experiments(tmp_path / "experiments.db", Tokens((TOKEN,))) as started:
        yield started


async def test_without_a_token_malformed_bytes_are_still_unauthenticated(
    guarded: GrpcServer, logged: pytest.LogCaptureFixture
) -> None:
    # The token is checked before the bytes are looked at: a caller without
    # one learns nothing about the request format.
    raw = CASES["experiments-bad-utf8"].raw
    refused = await _send_raw(guarded, GET_EXPERIMENT, raw)
    assert (refused.code(), refused.details()) == (grpc.StatusCode.UNAUTHENTICATED, MISSING)
    invalid = await _send_raw(guarded, GET_EXPERIMENT, raw, (("authorization", f"Bearer {TOKEN}"),))
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.details() == NOT_A_GET_EXPERIMENT + BAD_UTF8
    assert [r.getMessage() for r in logged.records if r.levelno >= logging.ERROR] == []
