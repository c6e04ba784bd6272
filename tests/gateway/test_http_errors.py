"""The gateway's own behaviour (CONTRACT §1, §3, §4, §8): the gRPC→HTTP
status table, error bodies with rendered `google.rpc` details, CORS, the body
limit, unknown routes and wrong methods, upstream outages and recovery,
deadlines, the probes, and what is forwarded upstream as metadata.

Most of it runs against the real stack; the status table, details, deadline
and metadata tests use a small real grpc.aio server speaking the real
TrackingService descriptor, whose GetRun does what the run id asks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from gateway.config import Settings as GatewaySettings
from gateway.errors import HTTP_STATUS, http_status
from gateway.server import create_server
from gateway.upstreams import Upstream
from research.tracking.v1 import tracking_pb2
from tests.fixtures.stack import ALLOWED_ORIGIN, Stack

# Small, so that the 413 tests need little data; every other request here is
# far below it.
BODY_LIMIT = 1024
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
COLLECTION = "/api/v1/experiments"
ERROR_KEYS = ["code", "message", "detail", "details"]

# CONTRACT §4, every gRPC status (OK is a success: 200).
CONTRACT_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
ERROR_CODES = [code for code in grpc.StatusCode if code != grpc.StatusCode.OK]
BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
STATUS_DETAILS_KEY = "grpc-status-details-bin"
UNKNOWN_DETAIL_TYPE = "type.googleapis.com/fake.v1.NotInThisProcess"


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    return GatewaySettings(
        cors_origins=(ALLOWED_ORIGIN,), shutdown_grace=1, max_body_bytes=BODY_LIMIT
    )


def assert_error(response: httpx.Response, status: int, code: int, message: str) -> list[Any]:
    """The contract's error body; its `details`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ERROR_KEYS
    assert body["code"] == code
    assert body["message"] == message
    assert body["detail"] == message
    details: list[Any] = body["details"]
    return details


# --- the status table, unit ---------------------------------------------------


def test_http_status_table_is_the_contracts() -> None:
    assert len(grpc.StatusCode) == 17
    assert set(CONTRACT_STATUS) == set(grpc.StatusCode)
    assert HTTP_STATUS == CONTRACT_STATUS
    for code, status in CONTRACT_STATUS.items():
        assert http_status(code) == status, code


def test_http_status_of_anything_unlisted_is_500() -> None:
    unlisted: Any = object()
    assert http_status(unlisted) == 500


# --- a fake TrackingService behind a real gateway --------------------------


@dataclass
class FakeTracking:
    """GetRun by run id: `rich-<n>` aborts with code n and a google.rpc.Status
    (BadRequest, ErrorInfo and a detail of a type nobody knows); `plain-<n>`
    aborts with code n and nothing else; `sleep-<ms>` answers after that
    long; `raise` raises; `garbage` answers bytes that are no GetRunResponse;
    anything else answers a run named after the id. Every call's metadata is
    kept."""

    metadata: list[dict[str, str]] = field(default_factory=list)

    async def get_run(self, request: tracking_pb2.GetRunRequest, context: Any) -> Any:
        self.metadata.append(
            {
                key: value
                for key, value in context.invocation_metadata() or ()
                if isinstance(value, str)
            }
        )
        kind, _, argument = request.run_id.partition("-")
        if kind in ("rich", "plain"):
            code = BY_NUMBER[int(argument)]
            message = f"fake says {code.name}"
            trailers: tuple[tuple[str, bytes], ...] = ()
            if kind == "rich":
                trailers = ((STATUS_DETAILS_KEY, rich_status(code, message).SerializeToString()),)
            await context.abort(code, message, trailing_metadata=trailers)
        if kind == "sleep":
            await asyncio.sleep(int(argument) / 1000)
        if kind == "raise":
            raise RuntimeError("boom in the fake")
        if kind == "garbage":
            return b"\xff\xff\xff\xff"
        return tracking_pb2.GetRunResponse(
            run=tracking_pb2.Run(run_id=request.run_id, run_name="fake", status="FINISHED")
        )


def rich_status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    violation = error_details_pb2.BadRequest.FieldViolation(field="run_id", description=message)
    status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=code.name, domain="fake.test", metadata={"n": "1"})
    )
    status.details.append(any_pb2.Any(type_url=UNKNOWN_DETAIL_TYPE, value=b"\x08\x01"))
    return status


def rendered_details(code: grpc.StatusCode, message: str) -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": "run_id", "description": message}],
        },
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": code.name,
            "domain": "fake.test",
            "metadata": {"n": "1"},
        },
        {"@type": UNKNOWN_DETAIL_TYPE},
    ]


def _serialize(response: Any) -> bytes:
    # Lets the fake answer raw bytes (`garbage`) as well as messages.
    if isinstance(response, bytes):
        return response
    data: bytes = response.SerializeToString()
    return data


@dataclass
class Faked:
    fake: FakeTracking
    http: httpx.AsyncClient


@pytest.fixture
async def faked() -> AsyncIterator[Faked]:
    fake = FakeTracking()
    server = aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        fake.get_run,
        request_deserializer=tracking_pb2.GetRunRequest.FromString,
        response_serializer=_serialize,
    )
    service = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"]
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, {"GetRun": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gateway, gateway_port = create_server(
        GatewaySettings(),
        "127.0.0.1:0",
        upstreams=[Upstream("tracking", f"127.0.0.1:{port}", (service,))],
    )
    await gateway.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway_port}", timeout=10
        ) as http:
            yield Faked(fake, http)
    finally:
        await gateway.stop()
        await server.stop(0)


def run(run_id: str) -> str:
    return f"/api/v1/tracking/runs/{run_id}"


async def test_every_grpc_code_with_details_is_the_contracts_http_status(faked: Faked) -> None:
    for code in ERROR_CODES:
        message = f"fake says {code.name}"
        response = await faked.http.get(run(f"rich-{code.value[0]}"))
        details = assert_error(response, CONTRACT_STATUS[code], code.value[0], message)
        assert details == rendered_details(code, message), code
        assert "Traceback" not in response.text
        if code == grpc.StatusCode.UNAUTHENTICATED:
            assert response.headers["www-authenticate"] == 'Bearer realm="research"'
        else:
            assert "www-authenticate" not in response.headers


async def test_every_grpc_code_without_details_is_the_contracts_http_status(
    faked: Faked,
) -> None:
    # Without a google.rpc.Status the gateway takes the error for the
    # transport's and says so in words for these three.
    worded = {
        grpc.StatusCode.UNAVAILABLE: "the tracking service is unavailable: fake says UNAVAILABLE",
        grpc.StatusCode.DEADLINE_EXCEEDED: "the tracking service did not answer within 5 s",
        grpc.StatusCode.CANCELLED: "the call to the tracking service was cancelled",
    }
    for code in ERROR_CODES:
        message = worded.get(code, f"fake says {code.name}")
        response = await faked.http.get(run(f"plain-{code.value[0]}"))
        assert assert_error(response, CONTRACT_STATUS[code], code.value[0], message) == [], code


async def test_a_handler_crash_upstream_is_500_without_a_stack_trace(faked: Faked) -> None:
    response = await faked.http.get(run("raise"))
    assert response.status_code == 500
    body = response.json()
    assert list(body) == ERROR_KEYS
    assert body["code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert body["details"] == []
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


async def test_an_unreadable_upstream_answer_is_a_contract_500(
    faked: Faked, caplog: pytest.LogCaptureFixture
) -> None:
    response = await faked.http.get(run("garbage"), headers={"X-Request-Id": "req-garbage"})
    # The trace goes to the log, not to the caller.
    [logged] = [r for r in caplog.records if r.name == "gateway.http" and r.exc_info]
    assert logged.getMessage() == "unhandled error in GET /api/v1/tracking/runs/garbage"
    request_id = "req-garbage"
    details = assert_error(
        response,
        500,
        grpc.StatusCode.INTERNAL.value[0],
        f"internal error (request id {request_id})",
    )
    assert details == []
    assert response.headers["x-request-id"] == request_id
    assert "Traceback" not in response.text


async def test_the_deadline_is_the_grpc_timeout_header(faked: Faked) -> None:
    started = time.perf_counter()
    response = await faked.http.get(run("sleep-1500"), headers={"Grpc-Timeout": "200m"})
    elapsed = time.perf_counter() - started
    details = assert_error(response, 504, 4, "the tracking service did not answer within 0.2 s")
    assert details == []
    assert elapsed < 1.2
    # Within the deadline the call succeeds.
    ok = await faked.http.get(run("sleep-50"), headers={"Grpc-Timeout": "2S"})
    assert ok.status_code == 200
    assert ok.json()["run_id"] == "sleep-50"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("abc", "Grpc-Timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n), got 'abc'"),
        ("5", "Grpc-Timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n), got '5'"),
        (
            "123456789S",
            "Grpc-Timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n), got '123456789S'",
        ),
        ("-1S", "Grpc-Timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n), got '-1S'"),
        ("0m", "Grpc-Timeout must be more than zero"),
    ],
)
async def test_a_bad_grpc_timeout_is_400(faked: Faked, header: str, message: str) -> None:
    response = await faked.http.get(run("echo"), headers={"Grpc-Timeout": header})
    details = assert_error(response, 400, 3, message)
    assert details == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": "Grpc-Timeout", "description": message}],
        }
    ]
    assert faked.fake.metadata == []  # refused before any call


async def test_authorization_and_request_id_are_forwarded(faked: Faked) -> None:
    response = await faked.http.get(
        run("echo"), headers={"Authorization": "Bearer s3cret", "X-Request-Id": "trace-7"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "trace-7"
    assert response.json()["run_id"] == "echo"
    [sent] = faked.fake.metadata
    assert sent["authorization"] == "Bearer s3cret"
    assert sent["x-request-id"] == "trace-7"

    # No id given: the generated one goes upstream and back; no Authorization.
    response = await faked.http.get(run("echo"))
    assert response.status_code == 200
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    second = faked.fake.metadata[1]
    assert second["x-request-id"] == generated
    assert "authorization" not in second


async def test_an_authorization_that_is_not_ascii_is_400(faked: Faked) -> None:
    response = await faked.http.get(
        run("echo"), headers=[(b"authorization", "Bearer caf\u00e9".encode("latin-1"))]
    )
    assert_error(response, 400, 3, "the Authorization header is not printable ASCII")
    assert faked.fake.metadata == []


# --- CORS -------------------------------------------------------------------


async def test_a_preflight_from_the_allowed_origin_is_204(stack: Stack) -> None:
    response = await stack.http.options(
        f"{COLLECTION}/{STRATEGY}",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Content-Type, Authorization, If-Match",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    # Each CORS header once: browsers refuse a repeated allow-origin.
    assert response.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
    assert response.headers.get_list("access-control-allow-methods") == ["DELETE, GET, HEAD, PATCH"]
    assert response.headers.get_list("access-control-allow-headers") == [
        "authorization, content-type, grpc-timeout, if-match, if-none-match, x-request-id"
    ]
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers.get_list("vary") == ["Origin"]

    collection = await stack.http.options(
        COLLECTION, headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert collection.status_code == 204
    assert collection.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
    assert collection.headers["access-control-allow-methods"] == "GET, HEAD, POST"


async def test_a_preflight_from_another_origin_is_403(stack: Stack) -> None:
    response = await stack.http.options(
        COLLECTION,
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    details = assert_error(
        response,
        403,
        7,
        "CORS preflight refused: origin 'http://evil.example' is not allowed (CORS_ORIGINS)",
    )
    assert details == []
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-methods" not in response.headers


async def test_a_preflight_for_a_method_the_path_lacks_is_refused(stack: Stack) -> None:
    response = await stack.http.options(
        COLLECTION, headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "DELETE"}
    )
    assert_error(
        response, 403, 7, "CORS preflight refused: method 'DELETE' is not allowed on this path"
    )
    assert "access-control-allow-methods" not in response.headers
    assert "access-control-allow-origin" not in response.headers
    header = await stack.http.options(
        COLLECTION,
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-secret",
        },
    )
    assert_error(header, 403, 7, "CORS preflight refused: request header 'x-secret' is not allowed")


async def test_a_plain_options_lists_the_methods(stack: Stack) -> None:
    response = await stack.http.options(COLLECTION)
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"


async def test_actual_requests_carry_cors_headers_for_the_allowed_origin_only(
    stack: Stack,
) -> None:
    allowed = await stack.http.post(
        COLLECTION, json={"strategy_id": STRATEGY}, headers={"Origin": ALLOWED_ORIGIN}
    )
    assert allowed.status_code == 201
    assert allowed.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
    assert allowed.headers["access-control-expose-headers"] == (
        "etag, link, location, x-request-id"
    )
    assert allowed.headers["vary"] == "Origin"
    # Errors too, so that a script can read them.
    failed = await stack.http.get(f"{COLLECTION}/nope", headers={"Origin": ALLOWED_ORIGIN})
    assert failed.status_code == 400
    assert failed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    other = await stack.http.get(COLLECTION, headers={"Origin": "http://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-expose-headers" not in other.headers
    assert other.headers["vary"] == "Origin"
    none = await stack.http.get(COLLECTION)
    assert "access-control-allow-origin" not in none.headers


# --- body limit ---------------------------------------------------------------


def _create_body(size: int) -> bytes:
    """A valid create body of exactly `size` bytes."""
    head = b'{"strategy_id": "%s", "parameters": {"pad": "' % STRATEGY.encode()
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_a_body_at_the_limit_is_served(stack: Stack) -> None:
    body = _create_body(BODY_LIMIT)
    assert len(body) == BODY_LIMIT
    response = await stack.http.post(
        COLLECTION, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_a_declared_length_over_the_limit_is_413(stack: Stack) -> None:
    response = await stack.http.post(
        COLLECTION,
        content=_create_body(BODY_LIMIT + 1),
        headers={"content-type": "application/json"},
    )
    assert (
        assert_error(response, 413, 8, f"the request body is larger than {BODY_LIMIT} bytes") == []
    )
    assert (await stack.http.get(COLLECTION)).json() == []


async def test_a_chunked_body_over_the_limit_is_413(stack: Stack) -> None:
    body = _create_body(BODY_LIMIT * 3)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    response = await stack.http.post(
        COLLECTION, content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, 8, f"the request body is larger than {BODY_LIMIT} bytes")
    assert (await stack.http.get(COLLECTION)).json() == []


# --- routes -----------------------------------------------------------------


async def test_an_unknown_route_is_404_with_the_contract_body(stack: Stack) -> None:
    for method, path in [
        ("GET", "/api/v1/nothing"),
        ("GET", "/api/v1/experiments/a/b"),
        ("POST", "/"),
        ("DELETE", "/api/v2/experiments"),
    ]:
        response = await stack.http.request(method, path)
        assert assert_error(response, 404, 5, f"no route for {method} {path}") == []


async def test_a_wrong_method_is_405_with_allow(stack: Stack) -> None:
    cases = [
        ("PUT", f"{COLLECTION}/{STRATEGY}", "DELETE, GET, HEAD, PATCH"),
        ("DELETE", COLLECTION, "GET, HEAD, POST"),
        ("GET", f"{COLLECTION}/compare", "POST"),
        ("GET", f"{COLLECTION}/import", "POST"),
        ("POST", "/api/v1/tracking/runs", "GET, HEAD"),
        # The gateway's own paths too.
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/readyz", "GET, HEAD"),
    ]
    for method, path, allow in cases:
        response = await stack.http.request(method, path)
        message = f"{method} is not allowed on {path}; allowed: {allow}"
        assert assert_error(response, 405, 12, message) == [], path
        assert response.headers["allow"] == allow


# --- probes and outages -------------------------------------------------------


async def test_healthz_and_readyz(stack: Stack) -> None:
    health = await stack.http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await stack.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "upstreams": {"experiments": "SERVING", "tracking": "SERVING"},
    }


async def test_an_upstream_down_is_503_and_recovers_without_a_restart(
    stack: Stack, migrated_postgres: str
) -> None:
    created = await stack.http.post(COLLECTION, json={"strategy_id": STRATEGY})
    assert created.status_code == 201
    port = stack.experiments.port
    await stack.experiments.stop(0)

    down = await stack.http.get(COLLECTION)
    assert down.status_code == 503, down.text
    body = down.json()
    assert list(body) == ERROR_KEYS
    assert body["code"] == 14
    assert body["message"].startswith("the experiments service is unavailable: ")
    assert body["detail"] == body["message"]
    # The tracking routes do not depend on it.
    assert (await stack.http.get("/api/v1/tracking/experiments")).status_code == 200

    ready = await stack.http.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["code"] == 14
    assert body["message"] == f"not ready: experiments (127.0.0.1:{port}) is UNAVAILABLE"
    assert body["detail"] == body["message"]
    assert body["upstreams"] == {"experiments": "UNAVAILABLE", "tracking": "SERVING"}

    # A new server on the same port: the gateway finds it by itself.
    again, _ = await create_experiments(
        ExperimentsSettings(
            database_url=migrated_postgres,
            tracking_address=f"127.0.0.1:{stack.tracking.port}",
            health_interval=0.2,
            db_timeout=3,
        ),
        f"127.0.0.1:{port}",
    )
    await again.start()
    try:
        async with asyncio.timeout(5):
            while (response := await stack.http.get(COLLECTION)).status_code != 200:
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.1)
        assert [row["id"] for row in response.json()] == [created.json()["id"]]
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["upstreams"] == {"experiments": "SERVING", "tracking": "SERVING"}
    finally:
        await again.stop(0)


async def test_an_upstream_at_a_closed_port_is_503(unused_tcp_port: int) -> None:
    gateway, port = create_server(
        GatewaySettings(
            experiments_address=f"127.0.0.1:{unused_tcp_port}",
            tracking_address=f"127.0.0.1:{unused_tcp_port}",
        ),
        "127.0.0.1:0",
    )
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            started = time.perf_counter()
            response = await http.get(run("abc"))
            assert time.perf_counter() - started < 5
            assert response.status_code == 503
            assert response.json()["message"].startswith("the tracking service is unavailable: ")
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            address = f"127.0.0.1:{unused_tcp_port}"
            assert ready.json()["message"] == (
                f"not ready: experiments ({address}) is UNAVAILABLE, "
                f"tracking ({address}) is UNAVAILABLE"
            )
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await gateway.stop()
