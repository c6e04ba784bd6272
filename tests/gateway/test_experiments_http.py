"""ExperimentService over real HTTP, end to end: gateway → experiments_svc on
PostgreSQL (→ tracking_svc → MLflow for ImportRun). Every route of CONTRACT
§2 with its success paths and the error cases of §3 to §5, exact values."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.fixtures.mlflow import STRATEGY_A
from tests.fixtures.stack import Stack

COLLECTION = "/api/v1/experiments"
STRATEGY_1 = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
STRATEGY_2 = "0f0e0d0c-0b0a-4998-8776-655443322110"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
UNKNOWN_ID_2 = "00000000-0000-4000-8000-000000000001"

EXPERIMENT_FIELDS = (
    "id",
    "strategy_id",
    "dataset_version",
    "feature_version",
    "model_version",
    "git_commit_hash",
    "mlflow_run_id",
    "parameters",
    "metrics",
    "artifacts",
    "created_at",
    "updated_at",
    "revision",
    "etag",
    "deleted_at",
)
LINEAGE = ("strategy_id", "dataset_version", "feature_version", "model_version", "git_commit_hash")
# RFC 3339, UTC, as protobuf's JSON mapping writes a Timestamp.
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
WRITE_ONCE = "is write-once: lineage fields cannot change after the experiment is recorded"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
RESOURCE_INFO = "type.googleapis.com/google.rpc.ResourceInfo"
EXPERIMENT_TYPE = "research.experiments.v1.Experiment"


def path(experiment_id: str) -> str:
    return f"{COLLECTION}/{experiment_id}"


def timestamp(text: str) -> datetime:
    assert RFC3339_UTC.fullmatch(text), text
    return datetime.fromisoformat(text)


def assert_error(
    response: httpx.Response, status: int, code: int, message: str, field: str | None = None
) -> dict[str, Any]:
    """The contract's error body (CONTRACT §4); a BadRequest naming `field`
    when one is given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert list(body) == ["code", "message", "detail", "details"]
    assert body["code"] == code
    assert body["message"] == message
    assert body["detail"] == message
    if field is not None:
        violation = {"field": field, "description": message}
        assert body["details"] == [{"@type": BAD_REQUEST, "field_violations": [violation]}]
    return body


def not_found_detail(experiment_id: str) -> dict[str, str]:
    return {
        "@type": RESOURCE_INFO,
        "resource_type": EXPERIMENT_TYPE,
        "resource_name": experiment_id,
        "description": "not found",
    }


async def create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    fields.setdefault("strategy_id", STRATEGY_1)
    response = await http.post(COLLECTION, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == path(body["id"])
    return body


async def list_ids(http: httpx.AsyncClient, query: str = "") -> list[str]:
    response = await http.get(f"{COLLECTION}?{query}" if query else COLLECTION)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    return [row["id"] for row in body]


# --- create ----------------------------------------------------------------


async def test_create_answers_201_with_location_and_every_field(stack: Stack) -> None:
    before = datetime.now(UTC)
    sent = {
        "strategy_id": STRATEGY_1,
        "dataset_version": "ds-2024-06",
        "feature_version": "sha256:feat",
        "model_version": "v7",
        "git_commit_hash": "3f9a1c2",
        "mlflow_run_id": "run-abc",
        "parameters": {
            "n_estimators": 200,
            "learning_rate": 0.05,
            "nested": {"depth": 3, "items": [1, 2.5, "x", True, None]},
        },
        "metrics": {"sharpe": 1.5, "mse": 0.02, "trades": 7, "big": 9007199254740991},
        "artifacts": {"model": "s3://research-artifacts/models/m/model.pkl"},
    }
    response = await stack.http.post(COLLECTION, json=sent)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == list(EXPERIMENT_FIELDS)
    assert response.headers["location"] == f"/api/v1/experiments/{body['id']}"
    assert str(uuid.UUID(body["id"])) == body["id"]
    assigned = ("id", "created_at", "updated_at", "revision", "etag", "deleted_at")
    assert {k: v for k, v in body.items() if k not in assigned} == sent
    assert (body["revision"], body["deleted_at"]) == (1, None)
    assert response.headers["etag"] == f'"{body["etag"]}"'
    # Integers stay integers in the free-form dicts (200, not 200.0).
    assert type(body["parameters"]["n_estimators"]) is int
    assert type(body["parameters"]["nested"]["depth"]) is int
    assert type(body["metrics"]["trades"]) is int
    assert type(body["parameters"]["learning_rate"]) is float
    # (A Struct is a map: its keys come in no particular order.)
    assert re.search(r'"n_estimators":200[,}]', response.text)
    assert re.search(r'"trades":7[,}]', response.text)
    assert "200.0" not in response.text
    created = timestamp(body["created_at"])
    assert body["updated_at"] == body["created_at"]
    assert before - timedelta(seconds=5) <= created <= datetime.now(UTC) + timedelta(seconds=5)
    # The Location names the stored experiment.
    fetched = await stack.http.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_a_create_retried_with_its_request_id_answers_the_first_201(stack: Stack) -> None:
    request_id = str(uuid.uuid4())
    sent = {"strategy_id": STRATEGY_1, "metrics": {"sharpe": 1.1}, "request_id": request_id}
    first = await stack.http.post(COLLECTION, json=sent)
    again = await stack.http.post(COLLECTION, json=sent)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert "request_id" not in first.json()  # a request field, not part of the experiment
    assert len((await stack.http.get(COLLECTION)).json()) == 1
    other = await stack.http.post(COLLECTION, json={**sent, "metrics": {"sharpe": 2.0}})
    body = assert_error(other, 409, 6, other.json()["message"])
    assert body["message"].startswith(f"request_id {request_id} was used by another create")
    bad = await stack.http.post(COLLECTION, json={**sent, "request_id": "42"})
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field_violations"][0]["field"] == "request_id"


async def test_create_with_only_strategy_id_nulls_and_empty_dicts(stack: Stack) -> None:
    response = await stack.http.post(COLLECTION, json={"strategy_id": STRATEGY_2})
    assert response.status_code == 201
    body = response.json()
    assert list(body) == list(EXPERIMENT_FIELDS)
    assert body == {
        "id": body["id"],
        "strategy_id": STRATEGY_2,
        "dataset_version": None,
        "feature_version": None,
        "model_version": None,
        "git_commit_hash": None,
        "mlflow_run_id": None,
        "parameters": {},
        "metrics": {},
        "artifacts": {},
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "revision": 1,
        "etag": body["etag"],
        "deleted_at": None,
    }
    # Every field present, unset optionals as null, in the raw text too.
    assert '"dataset_version":null' in response.text
    assert '"mlflow_run_id":null' in response.text
    timestamp(body["created_at"])


async def test_create_accepts_a_json_content_type_with_charset(stack: Stack) -> None:
    response = await stack.http.post(
        COLLECTION,
        content=b'{"strategy_id": "%s"}' % STRATEGY_1.encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201
    assert response.json()["strategy_id"] == STRATEGY_1


# (body, field named, message): each is 400 INVALID_ARGUMENT with a BadRequest.
CREATE_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({}, "strategy_id", "strategy_id is required"),
    ({"strategy_id": ""}, "strategy_id", "strategy_id is required"),
    ({"strategy_id": "nope"}, "strategy_id", "strategy_id must be a UUID, got 'nope'"),
    (
        {"strategy_idd": STRATEGY_1},
        "strategy_idd",
        "strategy_idd is not a field of CreateExperimentRequest (unknown field)",
    ),
    (
        # A mistyped lineage field is refused, never dropped silently.
        {"strategy_id": STRATEGY_1, "dataset_versoin": "ds-1"},
        "dataset_versoin",
        "dataset_versoin is not a field of CreateExperimentRequest (unknown field)",
    ),
    ({"strategy_id": 5}, "strategy_id", "strategy_id must be a string, got a number"),
    (
        {"strategy_id": STRATEGY_1, "git_commit_hash": ["abc"]},
        "git_commit_hash",
        "git_commit_hash must be a string, got an array",
    ),
    (
        {"strategy_id": STRATEGY_1, "parameters": [1, 2]},
        "parameters",
        "parameters must be a JSON object, got an array",
    ),
    (
        {"strategy_id": STRATEGY_1, "metrics": "1.5"},
        "metrics",
        "metrics must be a JSON object, got a string",
    ),
    (
        {"strategy_id": STRATEGY_1, "artifacts": {"model": 1}},
        "artifacts.model",
        "artifacts.model must be a string, got a number",
    ),
    (
        {"strategy_id": STRATEGY_1, "model_version": "m" * 256},
        "model_version",
        "model_version must be at most 255 characters, got 256",
    ),
]


async def test_create_refuses_a_bad_body_naming_the_field(stack: Stack) -> None:
    for body, field, message in CREATE_ERRORS:
        response = await stack.http.post(COLLECTION, json=body)
        assert_error(response, 400, 3, message, field)
    assert await list_ids(stack.http) == []


async def test_create_refuses_query_parameters(stack: Stack) -> None:
    # `body: "*"`: every field comes from the body; a query is a mistake.
    response = await stack.http.post(
        f"{COLLECTION}?dataset_version=ds-1", json={"strategy_id": STRATEGY_1}
    )
    message = "dataset_version is not a query parameter of this route (unknown parameter)"
    assert_error(response, 400, 3, message, "dataset_version")
    assert await list_ids(stack.http) == []


def nested(levels: int, leaf: Any = 1) -> Any:
    """`leaf` inside `levels` objects and arrays, alternating."""
    value = leaf
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


async def test_deep_nesting_is_served_to_32_levels_and_refused_beyond(stack: Stack) -> None:
    # The body is level 1, `parameters` level 2, "deep" holds 30 more: 32.
    deepest = nested(30)
    created = await create(stack.http, parameters={"deep": deepest}, metrics={"m": deepest})
    assert created["parameters"] == {"deep": deepest}
    assert (await stack.http.get(path(created["id"]))).json() == created
    other = await create(stack.http)
    compared = await stack.http.post(f"{COLLECTION}/compare", json=[created["id"], other["id"]])
    assert compared.status_code == 200, compared.text
    assert compared.json()["param_diff"]["deep"]["values"][created["id"]] == deepest
    patched = await stack.http.patch(path(other["id"]), json={"metrics": {"deep": deepest}})
    assert patched.status_code == 200, patched.text

    # One more level is a 400 naming the field, not a failure upstream.
    message = "parameters nests JSON deeper than 32 levels"
    for levels in (31, 32, 200, 900):
        too_deep = {"deep": nested(levels)}
        response = await stack.http.post(
            COLLECTION, json={"strategy_id": STRATEGY_1, "parameters": too_deep}
        )
        assert_error(response, 400, 3, message, "parameters")
        response = await stack.http.patch(path(other["id"]), json={"parameters": too_deep})
        assert_error(response, 400, 3, message, "parameters")
    response = await stack.http.post(
        f"{COLLECTION}/compare", json=[created["id"], nested(32, other["id"])]
    )
    assert_error(response, 400, 3, "[1] nests JSON deeper than 32 levels", "[1]")
    assert await list_ids(stack.http) == [other["id"], created["id"]]


async def test_create_refuses_malformed_json(stack: Stack) -> None:
    response = await stack.http.post(
        COLLECTION,
        content=b'{"strategy_id": ',
        headers={"content-type": "application/json"},
    )
    body = assert_error(
        response,
        400,
        3,
        "the body is not valid JSON: unexpected end of data: line 1 column 17 (char 16)",
    )
    assert body["details"] == []


async def test_create_refuses_a_json_array_body(stack: Stack) -> None:
    response = await stack.http.post(COLLECTION, json=[STRATEGY_1])
    assert_error(response, 400, 3, "the body must be a JSON object, got an array")


async def test_create_refuses_a_non_json_content_type(stack: Stack) -> None:
    response = await stack.http.post(
        COLLECTION,
        content=f"strategy_id={STRATEGY_1}".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_error(
        response,
        415,
        3,
        "Content-Type must be application/json, got 'application/x-www-form-urlencoded'"
        " (with curl: -H 'Content-Type: application/json')",
    )
    assert await list_ids(stack.http) == []


# --- list ------------------------------------------------------------------


async def _three(http: httpx.AsyncClient) -> tuple[str, str, str]:
    """Three experiments (oldest first) with overlapping lineage."""
    a = await create(
        http,
        strategy_id=STRATEGY_1,
        dataset_version="ds-1",
        feature_version="f-1",
        model_version="m-1",
        git_commit_hash="aaa111",
        mlflow_run_id="run-a",
    )
    b = await create(
        http,
        strategy_id=STRATEGY_2,
        dataset_version="ds-1",
        feature_version="f-2",
        model_version="m-1",
        git_commit_hash="bbb222",
        mlflow_run_id="run-b",
    )
    c = await create(
        http,
        strategy_id=STRATEGY_1,
        dataset_version="ds-2",
        feature_version="f-2",
        model_version="m-2",
        git_commit_hash="aaa111",
    )
    return a["id"], b["id"], c["id"]


async def test_list_is_a_bare_array_newest_first(stack: Stack) -> None:
    assert (await stack.http.get(COLLECTION)).json() == []
    a, b, c = await _three(stack.http)
    response = await stack.http.get(COLLECTION)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    rows = response.json()
    assert isinstance(rows, list)
    assert [row["id"] for row in rows] == [c, b, a]
    for row in rows:
        assert list(row) == list(EXPERIMENT_FIELDS)
    assert rows[0]["mlflow_run_id"] is None
    assert rows[0] == (await stack.http.get(path(c))).json()


# (query, expected rows by name, newest first) over `_three`'s a, b, c.
LIST_FILTERS = [
    (f"strategy_id={STRATEGY_1}", "ca"),
    (f"strategy_id={STRATEGY_2}", "b"),
    ("dataset_version=ds-1", "ba"),
    ("feature_version=f-2", "cb"),
    ("model_version=m-1", "ba"),
    ("git_commit_hash=aaa111", "ca"),
    ("mlflow_run_id=run-b", "b"),
    (f"strategy_id={STRATEGY_1}&dataset_version=ds-1", "a"),
    ("dataset_version=ds-1&model_version=m-2", ""),
    ("dataset_version=ds-9", ""),
    (f"strategy_id={UNKNOWN_ID}", ""),
    # Percent-encoded values are decoded.
    ("git_commit_hash=aaa%31%311", "ca"),
]


async def test_list_filters_by_strategy_and_each_lineage_field(stack: Stack) -> None:
    a, b, c = await _three(stack.http)
    by_name = {"a": a, "b": b, "c": c}
    for query, expected in LIST_FILTERS:
        found = await list_ids(stack.http, query)
        assert found == [by_name[name] for name in expected], query


async def test_list_pages_with_skip_and_limit(stack: Stack) -> None:
    a, b, c = await _three(stack.http)
    assert await list_ids(stack.http, "limit=2") == [c, b]
    assert await list_ids(stack.http, "skip=2&limit=2") == [a]
    assert await list_ids(stack.http, "skip=1") == [b, a]
    assert await list_ids(stack.http, "skip=3") == []
    assert await list_ids(stack.http, "limit=1") == [c]
    assert await list_ids(stack.http, "limit=1000") == [c, b, a]
    assert await list_ids(stack.http, f"strategy_id={STRATEGY_1}&skip=1&limit=1") == [a]


LIST_QUERY_ERRORS = [
    ("limit=0", "limit", "limit must be between 1 and 1000, got 0"),
    ("limit=1001", "limit", "limit must be between 1 and 1000, got 1001"),
    ("limit=abc", "limit", "limit must be an integer, got 'abc'"),
    ("limit=1.5", "limit", "limit must be an integer, got '1.5'"),
    ("limit=1&limit=2", "limit", "limit is given more than once"),
    ("skip=-1", "skip", "skip must be 0 or more, got -1"),
    ("strategy_id=nope", "strategy_id", "strategy_id must be a UUID, got 'nope'"),
    ("dataset_version=", "dataset_version", "dataset_version must not be empty when given"),
    (
        "strategy=x",
        "strategy",
        "strategy is not a query parameter of this route (unknown parameter)",
    ),
    (
        # A mistyped filter must not silently return everything.
        "datset_version=ds-1",
        "datset_version",
        "datset_version is not a query parameter of this route (unknown parameter)",
    ),
]


async def test_list_refuses_bad_query_parameters_naming_them(stack: Stack) -> None:
    await create(stack.http)
    for query, field, message in LIST_QUERY_ERRORS:
        response = await stack.http.get(f"{COLLECTION}?{query}")
        assert_error(response, 400, 3, message, field)


# --- get -------------------------------------------------------------------


async def test_get_returns_the_experiment(stack: Stack) -> None:
    created = await create(stack.http, dataset_version="ds-1", metrics={"sharpe": 1.25})
    response = await stack.http.get(path(created["id"]))
    assert response.status_code == 200
    assert response.json() == created


async def test_get_unknown_id_is_404(stack: Stack) -> None:
    response = await stack.http.get(path(UNKNOWN_ID))
    body = assert_error(response, 404, 5, "Experiment not found")
    assert body["details"] == [not_found_detail(UNKNOWN_ID)]


async def test_get_malformed_id_is_400(stack: Stack) -> None:
    response = await stack.http.get(path("not-a-uuid"))
    assert_error(
        response, 400, 3, "experiment_id must be a UUID, got 'not-a-uuid'", "experiment_id"
    )


# --- update ----------------------------------------------------------------


async def test_patch_replaces_present_fields_and_leaves_the_rest(stack: Stack) -> None:
    created = await create(
        stack.http,
        dataset_version="ds-1",
        git_commit_hash="abc123",
        mlflow_run_id="run-1",
        parameters={"lr": 0.05, "depth": 6},
        metrics={"sharpe": 1.2, "mse": 0.04},
        artifacts={"model": "s3://bucket/model.pkl"},
    )
    response = await stack.http.patch(
        path(created["id"]), json={"metrics": {"sharpe": 1.9, "trades": 12}}
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert list(updated) == list(EXPERIMENT_FIELDS)
    # The dict is replaced, not merged; everything absent is untouched.
    assert updated["metrics"] == {"sharpe": 1.9, "trades": 12}
    assert type(updated["metrics"]["trades"]) is int
    moved = ("metrics", "updated_at", "revision", "etag")
    untouched = {k: v for k, v in created.items() if k not in moved}
    assert {k: v for k, v in updated.items() if k not in moved} == untouched
    assert updated["revision"] == created["revision"] + 1
    assert updated["etag"] != created["etag"]
    assert timestamp(updated["updated_at"]) > timestamp(created["updated_at"])
    assert updated["created_at"] == created["created_at"]
    assert (await stack.http.get(path(created["id"]))).json() == updated

    # A present null clears: mlflow_run_id to null, a dict to {}.
    response = await stack.http.patch(
        path(created["id"]), json={"mlflow_run_id": None, "artifacts": None}
    )
    assert response.status_code == 200, response.text
    cleared = response.json()
    assert cleared["mlflow_run_id"] is None
    assert cleared["artifacts"] == {}
    assert cleared["parameters"] == {"lr": 0.05, "depth": 6}
    assert cleared["metrics"] == {"sharpe": 1.9, "trades": 12}
    assert cleared["dataset_version"] == "ds-1"
    assert timestamp(cleared["updated_at"]) > timestamp(updated["updated_at"])

    response = await stack.http.patch(
        path(created["id"]),
        json={"parameters": {}, "mlflow_run_id": "run-2", "artifacts": {"log": "s3://l"}},
    )
    assert response.status_code == 200, response.text
    final = response.json()
    assert final["parameters"] == {}
    assert final["mlflow_run_id"] == "run-2"
    assert final["artifacts"] == {"log": "s3://l"}
    assert (await stack.http.get(path(created["id"]))).json() == final

    # An explicit update_mask: the fields it names are replaced, and a null
    # clears; the mask and the body's keys must agree.
    response = await stack.http.patch(
        f"{path(created['id'])}?update_mask=metrics,artifacts",
        json={"metrics": {"mse": 0.5}, "artifacts": None},
    )
    assert response.status_code == 200, response.text
    masked = response.json()
    assert masked["metrics"] == {"mse": 0.5}
    assert masked["artifacts"] == {}
    assert masked["parameters"] == {}
    assert masked["mlflow_run_id"] == "run-2"
    assert await list_ids(stack.http, "mlflow_run_id=run-2") == [created["id"]]
    assert await list_ids(stack.http, "mlflow_run_id=run-1") == []


PATCH_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    *(
        ({name: value}, name, f"{name} {WRITE_ONCE}")
        for name, value in [
            ("strategy_id", STRATEGY_2),
            ("dataset_version", "ds-2"),
            ("feature_version", "f-2"),
            ("model_version", "m-2"),
            ("git_commit_hash", "def456"),
        ]
    ),
    (
        {"metrics": {"sharpe": 2.0}, "dataset_version": "ds-2"},
        "dataset_version",
        f"dataset_version {WRITE_ONCE}",
    ),
    ({"metricz": {}}, "metricz", "metricz is not a field of Experiment (unknown field)"),
    ({"id": UNKNOWN_ID}, "id", "id is output only and cannot be updated"),
    (
        {"created_at": "2020-01-01T00:00:00Z"},
        "created_at",
        "created_at is output only and cannot be updated",
    ),
    ({"metrics": [1]}, "metrics", "metrics must be a JSON object, got an array"),
    ({"mlflow_run_id": 7}, "mlflow_run_id", "mlflow_run_id must be a string, got a number"),
]


async def test_patch_refuses_lineage_unknown_and_mistyped_fields(stack: Stack) -> None:
    created = await create(stack.http, dataset_version="ds-1", metrics={"sharpe": 1.0})
    for body, field, message in PATCH_ERRORS:
        response = await stack.http.patch(path(created["id"]), json=body)
        assert_error(response, 400, 3, message, field)
    # Nothing changed, not even updated_at.
    assert (await stack.http.get(path(created["id"]))).json() == created


async def test_patch_unknown_id_is_404_and_malformed_is_400(stack: Stack) -> None:
    response = await stack.http.patch(path(UNKNOWN_ID), json={"metrics": {}})
    body = assert_error(response, 404, 5, "Experiment not found")
    assert body["details"] == [not_found_detail(UNKNOWN_ID)]
    response = await stack.http.patch(path("x1"), json={"metrics": {}})
    assert_error(response, 400, 3, "experiment_id must be a UUID, got 'x1'", "experiment_id")


# --- delete ----------------------------------------------------------------


async def test_delete_is_204_with_no_body_then_404(stack: Stack) -> None:
    created = await create(stack.http)
    kept = await create(stack.http)
    response = await stack.http.delete(path(created["id"]))
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
    assert response.headers["content-length"] == "0"
    assert_error(await stack.http.get(path(created["id"])), 404, 5, "Experiment not found")
    body = assert_error(
        await stack.http.delete(path(created["id"])), 404, 5, "Experiment not found"
    )
    assert body["details"] == [not_found_detail(created["id"])]
    assert await list_ids(stack.http) == [kept["id"]]


async def test_delete_malformed_id_is_400(stack: Stack) -> None:
    response = await stack.http.delete(path("123"))
    assert_error(response, 400, 3, "experiment_id must be a UUID, got '123'", "experiment_id")


# --- compare ---------------------------------------------------------------


async def _compared(http: httpx.AsyncClient) -> tuple[dict[str, Any], ...]:
    e1 = await create(
        http,
        strategy_id=STRATEGY_1,
        dataset_version="ds-1",
        feature_version="f-1",
        model_version="m-1",
        git_commit_hash="aaa111",
        parameters={"lr": 0.05, "depth": 6, "kind": "xgb"},
        metrics={"sharpe": 1.2, "mse": 0.04, "custom": 3, "flag": True},
    )
    e2 = await create(
        http,
        strategy_id=STRATEGY_1,
        dataset_version="ds-1",
        feature_version="f-2",
        model_version="m-1",
        git_commit_hash="bbb222",
        parameters={"lr": 0.01, "depth": 6},
        metrics={"sharpe": 1.5, "mse": 0.05, "custom": 1},
    )
    e3 = await create(
        http,
        strategy_id=STRATEGY_2,
        dataset_version="ds-1",
        parameters={"lr": 0.05, "depth": 6, "kind": "xgb"},
        metrics={"sharpe": 0.9, "mse": 0.03, "custom": 2, "max_drawdown": -0.12},
    )
    return e1, e2, e3


async def test_compare_sets_rows_in_request_order_with_diffs(stack: Stack) -> None:
    e1, e2, e3 = await _compared(stack.http)
    i1, i2, i3 = e1["id"], e2["id"], e3["id"]
    response = await stack.http.post(f"{COLLECTION}/compare", json=[i2, i1, i3])
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["experiments", "metric_diff", "param_diff", "lineage_diff", "selection"]
    assert body["experiments"] == [e2, e1, e3]

    def values(v2: Any, v1: Any, v3: Any) -> dict[str, Any]:
        return {i2: v2, i1: v1, i3: v3}

    # Without a baseline, the four figures against it are null (CONTRACT §11).
    for entry in body["metric_diff"].values():
        assert list(entry)[3:] == ["baseline", "delta", "change_pct", "verdict"]
        for figure in ("baseline", "delta", "change_pct", "verdict"):
            assert entry.pop(figure) is None
    assert body["metric_diff"] == {
        "sharpe": {"values": values(1.5, 1.2, 0.9), "best_id": i2, "direction": "maximize"},
        "mse": {"values": values(0.05, 0.04, 0.03), "best_id": i3, "direction": "minimize"},
        # No built-in rule: the experiments default, minimize.
        "custom": {"values": values(1, 3, 2), "best_id": i2, "direction": "minimize"},
        # A boolean does not count for best: no best at all.
        "flag": {"values": values(None, True, None), "best_id": None, "direction": "minimize"},
        "max_drawdown": {
            "values": values(None, None, -0.12),
            "best_id": i3,
            "direction": "maximize",
        },
    }
    # A Sharpe ratio is judged for selection bias, as its best experiment.
    assert list(body["selection"]) == ["sharpe"]
    assert body["selection"]["sharpe"]["experiment_id"] == i2
    assert body["param_diff"] == {
        "lr": {"values": values(0.01, 0.05, 0.05), "varies": True},
        "depth": {"values": values(6, 6, 6), "varies": False},
        "kind": {"values": values(None, "xgb", "xgb"), "varies": True},
    }
    assert type(body["param_diff"]["depth"]["values"][i1]) is int
    # `values` lists every compared id in request order (CONTRACT §7).
    for diff in ("metric_diff", "param_diff", "lineage_diff"):
        for key, entry in body[diff].items():
            assert list(entry["values"]) == [i2, i1, i3], (diff, key)
    assert body["lineage_diff"] == {
        "strategy_id": {"values": values(STRATEGY_1, STRATEGY_1, STRATEGY_2), "varies": True},
        "dataset_version": {"values": values("ds-1", "ds-1", "ds-1"), "varies": False},
        "feature_version": {"values": values("f-2", "f-1", None), "varies": True},
        "model_version": {"values": values("m-1", "m-1", None), "varies": True},
        "git_commit_hash": {"values": values("bbb222", "aaa111", None), "varies": True},
    }


async def test_compare_direction_overrides_from_the_query(stack: Stack) -> None:
    e1, e2, e3 = await _compared(stack.http)
    i1, i2, i3 = e1["id"], e2["id"], e3["id"]
    response = await stack.http.post(
        f"{COLLECTION}/compare?maximize=custom&minimize=sharpe&minimize=max_drawdown",
        json=[i1, i2, i3],
    )
    assert response.status_code == 200, response.text
    diff = response.json()["metric_diff"]
    assert diff["custom"] == {
        "values": {i1: 3, i2: 1, i3: 2},
        "best_id": i1,
        "direction": "maximize",
        "baseline": None,
        "delta": None,
        "change_pct": None,
        "verdict": None,
    }
    assert diff["sharpe"]["best_id"] == i3
    assert diff["sharpe"]["direction"] == "minimize"
    assert diff["max_drawdown"]["best_id"] == i3
    assert diff["max_drawdown"]["direction"] == "minimize"
    # Unnamed metrics keep their built-in rule.
    assert diff["mse"]["best_id"] == i3
    assert diff["mse"]["direction"] == "minimize"


async def test_compare_against_a_baseline_lists_every_id_in_request_order(stack: Stack) -> None:
    e1, e2, e3 = await _compared(stack.http)
    i1, i2, i3 = e1["id"], e2["id"], e3["id"]
    response = await stack.http.post(f"{COLLECTION}/compare?baseline={i1}", json=[i3, i1, i2])
    assert response.status_code == 200, response.text
    diff = response.json()["metric_diff"]
    custom = diff["custom"]  # minimize: 3 (baseline), 1, 2
    assert custom["baseline"] == 3
    # Objects keyed by experiment id follow the request, baseline or not.
    assert list(custom["delta"]) == [i3, i1, i2]
    assert custom["delta"] == {i3: -1, i1: 0, i2: -2}
    assert list(custom["verdict"]) == [i3, i1, i2]
    assert custom["verdict"] == {i3: "better", i1: "baseline", i2: "better"}
    # The baseline lacks the metric: every id is still a key of `delta` and
    # `change_pct` (the gateway's `every_key`), null for each.
    drawdown = diff["max_drawdown"]
    assert drawdown["baseline"] is None
    assert drawdown["delta"] == {i3: None, i1: None, i2: None}
    assert list(drawdown["delta"]) == [i3, i1, i2]
    assert drawdown["change_pct"] == {i3: None, i1: None, i2: None}
    assert list(drawdown["change_pct"]) == [i3, i1, i2]


async def test_compare_refuses_a_baseline_it_does_not_compare(stack: Stack) -> None:
    a, b, outsider = [(await create(stack.http))["id"] for _ in range(3)]
    url = f"{COLLECTION}/compare"
    cases = [
        (f"baseline={outsider}", f"baseline must be one of the compared ids, got '{outsider}'"),
        ("baseline=zz", "baseline must be a UUID, got 'zz'"),
        (f"baseline={a}&baseline={b}", "baseline is given more than once"),
    ]
    for query, message in cases:
        response = await stack.http.post(f"{url}?{query}", json=[a, b])
        assert_error(response, 400, 3, message, "baseline")


async def test_compare_ties_go_to_the_earliest_id(stack: Stack) -> None:
    a = await create(stack.http, metrics={"sharpe": 1.0, "mse": 0.1})
    b = await create(stack.http, metrics={"sharpe": 1.0, "mse": 0.1})
    response = await stack.http.post(f"{COLLECTION}/compare", json=[b["id"], a["id"]])
    assert response.status_code == 200
    diff = response.json()["metric_diff"]
    assert diff["sharpe"]["best_id"] == b["id"]
    assert diff["mse"]["best_id"] == b["id"]
    assert response.json()["param_diff"] == {}


async def test_compare_refuses_bad_id_lists(stack: Stack) -> None:
    ids = [(await create(stack.http))["id"] for _ in range(2)]
    url = f"{COLLECTION}/compare"
    field = "experiment_ids"
    cases: list[tuple[Any, str, str]] = [
        ([], field, "experiment_ids must hold 2 to 10 ids, got 0"),
        (ids[:1], field, "experiment_ids must hold 2 to 10 ids, got 1"),
        (
            [str(uuid.uuid4()) for _ in range(11)],
            field,
            "experiment_ids must hold 2 to 10 ids, got 11",
        ),
        (
            [ids[0], ids[1], ids[0]],
            field,
            f"experiment_ids must be distinct; repeated: {ids[0]}",
        ),
        ([ids[0], "zz"], "experiment_ids[1]", "experiment_ids[1] must be a UUID, got 'zz'"),
        ([ids[0], 7], "[1]", "[1] must be a string, got a number"),
    ]
    for body, name, message in cases:
        assert_error(await stack.http.post(url, json=body), 400, 3, message, name)
    assert_error(
        await stack.http.post(url, json={"experiment_ids": ids}),
        400,
        3,
        "the body must be a JSON array, got an object",
    )
    assert_error(
        await stack.http.post(f"{url}?maximize=sharpe&minimize=sharpe", json=ids),
        400,
        3,
        "maximize and minimize both name 'sharpe'",
        "maximize",
    )
    assert_error(
        await stack.http.post(f"{url}?maximise=sharpe", json=ids),
        400,
        3,
        "maximise is not a query parameter of this route (unknown parameter)",
        "maximise",
    )
    assert_error(
        await stack.http.post(f"{url}?experiment_ids={ids[0]}", json=ids),
        400,
        3,
        "experiment_ids is not a query parameter of this route (unknown parameter)",
        "experiment_ids",
    )


async def test_compare_unknown_ids_is_404_listing_every_one(stack: Stack) -> None:
    known = (await create(stack.http))["id"]
    response = await stack.http.post(
        f"{COLLECTION}/compare", json=[UNKNOWN_ID, known, UNKNOWN_ID_2]
    )
    body = assert_error(response, 404, 5, f"Experiments not found: {UNKNOWN_ID}, {UNKNOWN_ID_2}")
    assert body["details"] == [not_found_detail(UNKNOWN_ID), not_found_detail(UNKNOWN_ID_2)]


# --- import ----------------------------------------------------------------


async def test_import_records_a_run_once(stack: Stack) -> None:
    run_id = stack.seeded.training_a
    url = f"{COLLECTION}/import"
    response = await stack.http.post(url, json={"mlflow_run_id": run_id})
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == list(EXPERIMENT_FIELDS)
    assert response.headers["location"] == f"/api/v1/experiments/{body['id']}"
    assert body == {
        "id": body["id"],
        "strategy_id": STRATEGY_A,
        "dataset_version": "ds-2024-06",
        "feature_version": "v3",
        "model_version": "v1",
        "git_commit_hash": "3f9a1c2",
        "mlflow_run_id": run_id,
        "parameters": {
            "plugin_key": "ml.xgboost",
            "learning_rate": "0.05",
            "max_depth": "6",
            "n_estimators": "200",
            "subsample": "0.8",
        },
        "metrics": {
            "oos_sharpe": 1.42,
            "max_drawdown": -0.1231,
            "rmse": 0.2,
            "custom_score": 3,
            "accuracy": 0.61,
            "calmar_ratio": 1.15,
        },
        "artifacts": {"mlflow": stack.seeded.artifact_uris[run_id]},
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "revision": 1,
        "etag": body["etag"],
        "deleted_at": None,
    }
    timestamp(body["created_at"])
    assert (await stack.http.get(response.headers["location"])).json() == body

    again = await stack.http.post(url, json={"mlflow_run_id": run_id})
    assert again.status_code == 200, again.text
    assert "location" not in again.headers
    assert again.json() == body
    assert await list_ids(stack.http) == [body["id"]]


async def test_import_unknown_run_is_404(stack: Stack) -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    response = await stack.http.post(f"{COLLECTION}/import", json={"mlflow_run_id": run_id})
    body = assert_error(response, 404, 5, f"MLflow run not found: {run_id}")
    assert body["details"] == [
        {
            "@type": RESOURCE_INFO,
            "resource_type": "mlflow.Run",
            "resource_name": run_id,
            "description": "not found",
        }
    ]


async def test_import_run_without_strategy_tag_is_failed_precondition(stack: Stack) -> None:
    run_id = stack.seeded.untagged
    response = await stack.http.post(f"{COLLECTION}/import", json={"mlflow_run_id": run_id})
    message = f"MLflow run {run_id} has no strategy_id tag; tag it with its strategy's UUID"
    body = assert_error(response, 400, 9, message)
    assert body["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": [{"type": "TAG", "subject": "strategy_id", "description": message}],
        }
    ]
    assert await list_ids(stack.http) == []


async def test_import_refuses_a_bad_body(stack: Stack) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({}, "mlflow_run_id", "mlflow_run_id is required"),
        ({"run_id": "x"}, "run_id", "run_id is not a field of ImportRunRequest (unknown field)"),
        ({"mlflow_run_id": 12}, "mlflow_run_id", "mlflow_run_id must be a string, got a number"),
    ]
    for body, field, message in cases:
        response = await stack.http.post(f"{COLLECTION}/import", json=body)
        assert_error(response, 400, 3, message, field)


# --- around every route ----------------------------------------------------


async def test_a_trailing_slash_matches_the_same_route(stack: Stack) -> None:
    response = await stack.http.post(f"{COLLECTION}/", json={"strategy_id": STRATEGY_1})
    assert response.status_code == 201
    created = response.json()
    assert (await stack.http.get(f"{COLLECTION}/")).json() == [created]
    assert (await stack.http.get(f"{path(created['id'])}/")).json() == created
    patched = await stack.http.patch(f"{path(created['id'])}/", json={"metrics": {"mse": 1}})
    assert patched.json()["metrics"] == {"mse": 1}
    other = await create(stack.http)
    compared = await stack.http.post(f"{COLLECTION}/compare/", json=[created["id"], other["id"]])
    assert compared.status_code == 200
    assert (await stack.http.delete(f"{path(created['id'])}/")).status_code == 204


async def test_request_id_is_echoed_when_given_and_generated_when_not(stack: Stack) -> None:
    given = await stack.http.get(COLLECTION, headers={"X-Request-Id": "notebook-42.a:b"})
    assert given.headers["x-request-id"] == "notebook-42.a:b"
    failed = await stack.http.get(path(UNKNOWN_ID), headers={"X-Request-Id": "req-404"})
    assert failed.status_code == 404
    assert failed.headers["x-request-id"] == "req-404"
    first = (await stack.http.get(COLLECTION)).headers["x-request-id"]
    second = (await stack.http.post(COLLECTION, json={})).headers["x-request-id"]
    for generated in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert first != second
    # An id that is not short and plain is replaced, not echoed.
    replaced = await stack.http.get(COLLECTION, headers={"X-Request-Id": "a b;<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
