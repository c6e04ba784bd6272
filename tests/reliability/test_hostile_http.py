"""Hostile input over HTTP, against the real stack: each is answered 4xx with
the contract's error body, and the gateway and both services are healthy
afterwards (the probes answer and a create and a tracking read succeed)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import pytest

from gateway.http import MAX_HEADER_BYTES, MAX_HEADERS
from tests.fixtures.stack import Stack
from tests.reliability.rawhttp import Answer, exchange, request_bytes

pytestmark = pytest.mark.postgres

STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
JSON = [(b"Content-Type", b"application/json")]
TEN_MB = 10 * 1024 * 1024
# Seconds /readyz has to be 200 again after a hostile request (ten probes).
READY_WITHIN = 2.0


@dataclass(frozen=True, slots=True)
class Case:
    method: str
    target: bytes
    status: int
    code: int
    fragment: str
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = tuple(JSON)


CASES = {
    "filter injection, run_type": Case(
        "GET", b"/api/v1/tracking/runs?run_type=%27%20OR%201%3D1%20--", 400, 3, "run_type must be"
    ),
    "filter injection, strategy_id": Case(
        "GET",
        b"/api/v1/tracking/runs?strategy_id=x%22%20or%20tags.run_type%20%21%3D%20%22",
        400,
        3,
        "strategy_id must be",
    ),
    "10 MB body, declared": Case(
        "POST", b"/api/v1/experiments", 413, 8, "larger than", b"x" * TEN_MB
    ),
    "JSON nested 10,000 deep": Case(
        "POST", b"/api/v1/experiments", 400, 3, "not valid JSON", b"[" * 10_000 + b"]" * 10_000
    ),
    "100,000-element array for the compare": Case(
        "POST", b"/api/v1/experiments/compare", 400, 3, "", json.dumps([1] * 100_000).encode()
    ),
    "invalid UTF-8 in the body": Case(
        "POST", b"/api/v1/experiments", 400, 3, "UTF-8", b'{"strategy_id": "\xff\xfe"}'
    ),
    "invalid UTF-8 in the path": Case("GET", b"/api/v1/experiments/%ff%fe", 400, 3, "UTF-8"),
    "invalid UTF-8 in the query": Case(
        "GET", b"/api/v1/experiments?dataset_version=%ff", 400, 3, "UTF-8"
    ),
    "NUL in an experiment id": Case("GET", b"/api/v1/experiments/%00", 400, 3, "must be a UUID"),
    "NUL in a run id": Case("GET", b"/api/v1/tracking/runs/ab%00cd", 400, 3, "MLflow run id"),
    "NUL in a tag filter": Case("GET", b"/api/v1/tracking/runs?run_type=a%00b", 400, 3, "run_type"),
    "NUL in a parameter key": Case(
        "POST",
        b"/api/v1/experiments",
        400,
        3,
        "NUL",
        json.dumps({"strategy_id": STRATEGY, "parameters": {"a\u0000b": 1}}).encode(),
    ),
    "unicode in an experiment id": Case(
        "GET", b"/api/v1/experiments/%C3%BC", 400, 3, "must be a UUID"
    ),
    "unicode in a run id": Case("GET", b"/api/v1/tracking/runs/%C3%A9t%C3%A9", 400, 3, "run id"),
    "unicode in a tag filter": Case(
        "GET", b"/api/v1/tracking/runs?strategy_id=%E2%98%83", 400, 3, "strategy_id"
    ),
    "path traversal in run_id, encoded": Case(
        "GET", b"/api/v1/tracking/runs/..%2F..%2Fetc%2Fpasswd", 400, 3, "MLflow run id"
    ),
    "path traversal in run_id, plain": Case(
        "GET", b"/api/v1/tracking/runs/../../etc/passwd", 404, 5, "no route"
    ),
    "path traversal in run_id, metrics": Case(
        "GET", b"/api/v1/tracking/runs/..%2F..%2Fx/metrics", 400, 3, "MLflow run id"
    ),
    "NUL in a metric key": Case(
        "GET", b"/api/v1/tracking/runs/abc/metrics/a%00b/history", 400, 3, "metric_key"
    ),
    "raw non-ASCII bytes in the request target": Case(
        "GET", b"/api/v1/experiments/\xff\x00", 400, 3, "not valid HTTP/1.1"
    ),
    "unknown content type": Case(
        "POST",
        b"/api/v1/experiments",
        415,
        3,
        "Content-Type must be application/json",
        b"<experiment/>",
        ((b"Content-Type", b"application/xml"),),
    ),
    "form content type": Case(
        "POST",
        b"/api/v1/experiments",
        415,
        3,
        "Content-Type must be application/json",
        b"strategy_id=x",
        ((b"Content-Type", b"application/x-www-form-urlencoded"),),
    ),
    "10,000 headers": Case(
        "GET",
        b"/api/v1/experiments",
        431,
        8,
        f"request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes",
        headers=tuple((b"X-Flood-%d" % i, b"v") for i in range(10_000)),
    ),
    "one 1 MB header": Case(
        "GET",
        b"/api/v1/experiments",
        431,
        8,
        f"request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes",
        headers=((b"X-Big", b"a" * 1024 * 1024),),
    ),
}


def assert_contract_error(answer: Answer, case: Case) -> None:
    assert answer.status == case.status, answer.body[:300]
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert list(body) == ["code", "message", "detail", "details"]
    assert body["code"] == case.code
    assert body["detail"] == body["message"]
    assert case.fragment in body["message"], body["message"]
    assert isinstance(body["details"], list)


async def assert_healthy(stack: Stack) -> None:
    """The gateway and both services still answer."""
    assert (await stack.http.get("/healthz")).status_code == 200
    # Readiness within a few of the stack's 0.2 s health probes: once in CI
    # (one run of several) /readyz answered 503 right after a request the
    # gateway had refused with 400 before any service saw it, and it did not
    # happen again in local runs; the body says which service was not ready.
    ready = await stack.http.get("/readyz")
    deadline = time.monotonic() + READY_WITHIN
    while ready.status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        ready = await stack.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    created = await stack.http.post("/api/v1/experiments", json={"strategy_id": STRATEGY})
    assert created.status_code == 201
    run = await stack.http.get(f"/api/v1/tracking/runs/{stack.seeded.training_a}")
    assert run.status_code == 200


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_request_is_4xx_with_the_contract_body(stack: Stack, name: str) -> None:
    case = CASES[name]
    payload = request_bytes(case.method, case.target, case.headers, case.body)
    answer = await exchange(stack.gateway.port, payload)
    assert_contract_error(answer, case)
    await assert_healthy(stack)


async def test_injection_in_a_lineage_filter_is_an_exact_match(stack: Stack) -> None:
    # Experiments filters are bound parameters, not text pasted into SQL: a
    # quote is just a character of a value no row has.
    made = await stack.http.post(
        "/api/v1/experiments", json={"strategy_id": STRATEGY, "dataset_version": "ds-1"}
    )
    assert made.status_code == 201
    for value in ("' OR '1'='1", "ds-1' --", "ds-1; DROP TABLE experiments"):
        listed = await stack.http.get("/api/v1/experiments", params={"dataset_version": value})
        assert (listed.status_code, listed.json()) == (200, [])
    listed = await stack.http.get("/api/v1/experiments", params={"dataset_version": "ds-1"})
    assert [row["id"] for row in listed.json()] == [made.json()["id"]]


async def test_large_and_unicode_documents_are_stored_intact(stack: Stack) -> None:
    # Within what one experiment may hold (64 KiB encoded), a 5,000-element
    # array and non-ASCII keys and values are data like any other, and come
    # back unchanged; a 100,000-element one (1.1 MB encoded, though within
    # the 1 MiB body limit as JSON) is refused whole, naming the field.
    parameters: dict[str, object] = {"xs": list(range(100_000)), "clé": "värde ☃", "emoji": "📈"}
    document = {
        "strategy_id": STRATEGY,
        "dataset_version": "données-✓",
        "parameters": parameters,
        "artifacts": {"rapport": "s3://bucket/été/report.html"},
    }
    refused = await stack.http.post("/api/v1/experiments", json=document)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"].startswith("parameters is too large")
    parameters["xs"] = list(range(5_000))
    made = await stack.http.post("/api/v1/experiments", json=document)
    assert made.status_code == 201, made.text
    fetched = (await stack.http.get(made.headers["location"])).json()
    for key, value in document.items():
        assert fetched[key] == value
    await assert_healthy(stack)
