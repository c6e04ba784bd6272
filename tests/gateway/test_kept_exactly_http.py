"""What is accepted is kept exactly and can be read back (CONTRACT §3), over
real HTTP through the gateway, on PostgreSQL and on SQLite: free-form
numbers, keys given twice, update masks that disagree with the body, empty
lineage strings, a PATCH that changes nothing, HEAD, and pages and compares
of the largest rows the service accepts, read back through `Link`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research_common.free_form import MAX_SAFE_INTEGER
from tests.experiments_svc.test_kept_exactly import largest
from tests.fixtures.postgres import truncate_experiments
from tests.fixtures.stack import Stack
from tests.gateway.test_experiments_http import COLLECTION, STRATEGY_1, path

BEYOND = f"beyond ±{MAX_SAFE_INTEGER} (2^53 - 1)"
LINK = re.compile(r'<(?P<target>[^>]+)>; rel="next"')


@pytest.fixture(params=["postgresql", "sqlite"])
async def experiments_database(
    request: pytest.FixtureRequest, migrated_postgres: str, tmp_path: Path
) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'experiments.db'}"
    await truncate_experiments(migrated_postgres)
    return migrated_postgres


def assert_refused(response: httpx.Response, message: str, field: str) -> None:
    """400 with the contract's body, a message that starts with `message`,
    and a BadRequest detail naming `field`."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["code", "message", "detail", "details"]
    assert body["code"] == 3
    assert body["message"].startswith(message), body["message"]
    assert body["detail"] == body["message"]
    violations = [v["field"] for d in body["details"] for v in d.get("field_violations", [])]
    assert violations == [field]


async def create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await http.post(COLLECTION, json={"strategy_id": STRATEGY_1, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "field", "shown"),
    [
        ("12345678901234567", "parameters.seed", "12345678901234567"),
        ("9007199254740993", "parameters.seed", "9007199254740993"),
        ("-9007199254740992", "parameters.seed", "-9007199254740992"),
        ("18446744073709551615", "parameters.seed", "18446744073709551615"),
        ("1e300", "parameters.seed", "1e+300"),
    ],
)
async def test_a_number_a_double_cannot_keep_is_400_naming_it(
    stack: Stack, literal: str, field: str, shown: str
) -> None:
    body = f'{{"strategy_id": "{STRATEGY_1}", "parameters": {{"seed": {literal}, "n": 1}}}}'
    response = await stack.http.post(
        COLLECTION, content=body, headers={"content-type": "application/json"}
    )
    assert_refused(response, f"{field} is {shown}, {BEYOND}", field)
    assert "send it as a string" in response.json()["message"]
    assert (await stack.http.get(COLLECTION)).json() == []


async def test_numbers_at_the_edges_read_back_as_sent(stack: Stack) -> None:
    sent = {
        "top": MAX_SAFE_INTEGER,
        "bottom": -MAX_SAFE_INTEGER,
        "seed": "12345678901234567",  # the way to keep a larger one
        "one": 1.0,
        "zero": -0.0,
        "half": 0.5,
        "nested": [1, 2.25, {"deep": MAX_SAFE_INTEGER}],
    }
    created = await create(stack.http, parameters=sent)
    read = (await stack.http.get(path(created["id"]))).json()
    expected = {**sent, "one": 1, "zero": 0}  # integral doubles are integers (README)
    for body in (created, read):
        assert body["parameters"] == expected
        assert type(body["parameters"]["one"]) is int
        assert type(body["parameters"]["zero"]) is int
        assert type(body["parameters"]["top"]) is int
        assert type(body["parameters"]["half"]) is float


async def test_patch_refuses_an_unsafe_number_and_keeps_the_row(stack: Stack) -> None:
    created = await create(stack.http, metrics={"n": 1})
    response = await stack.http.patch(path(created["id"]), json={"metrics": {"n": [0, 2**60]}})
    assert_refused(response, f"metrics.n[1] is {2**60}, {BEYOND}", "metrics.n[1]")
    assert (await stack.http.get(path(created["id"]))).json() == created


# Any JSON a client may send as parameters or metrics: integers of any size,
# floats of any magnitude, strings, booleans, null, nesting.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=["Cs"]), max_size=6), inner, max_size=3
        )
    ),
    max_leaves=8,
)
OBJECTS = st.dictionaries(
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=6),
    JSON_VALUES,
    max_size=4,
)


def _kinds(value: Any) -> Any:
    """`value` with each number tagged with its JSON kind, for comparing
    kinds as well as values (1 == 1.0 == True in Python)."""
    if isinstance(value, dict):
        return {key: _kinds(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_kinds(item) for item in value]
    return (type(value).__name__, value)


def _expected(value: Any) -> Any:
    """What the contract says a value reads back as: an integral float is an
    integer (1.0 → 1, -0.0 → 0); everything else as sent."""
    if isinstance(value, dict):
        return {key: _expected(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expected(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parameters=OBJECTS, metrics=OBJECTS)
async def test_any_accepted_object_reads_back_equal_or_is_refused(
    stack: Stack, parameters: dict[str, Any], metrics: dict[str, Any]
) -> None:
    # The standard encoder: orjson cannot write integers beyond 64 bits.
    body = json.dumps({"strategy_id": STRATEGY_1, "parameters": parameters, "metrics": metrics})
    response = await stack.http.post(
        COLLECTION, content=body, headers={"content-type": "application/json"}
    )
    if response.status_code == 400:
        assert BEYOND in response.json()["message"] or "NUL" in response.json()["message"]
        return
    assert response.status_code == 201, response.text
    read = (await stack.http.get(path(response.json()["id"]))).json()
    for name, sent in (("parameters", parameters), ("metrics", metrics)):
        assert _kinds(read[name]) == _kinds(_expected(sent))


# --- strict bodies ---------------------------------------------------------------


async def test_a_key_given_twice_is_400_naming_it(stack: Stack) -> None:
    body = f'{{"strategy_id": "x", "strategy_id": "{STRATEGY_1}"}}'
    response = await stack.http.post(
        COLLECTION, content=body, headers={"content-type": "application/json"}
    )
    assert_refused(
        response,
        "strategy_id is given twice in one object of the body; send each key once",
        "strategy_id",
    )
    nested = f'{{"strategy_id": "{STRATEGY_1}", "parameters": {{"a": 1, "b": 2, "a": 3}}}}'
    response = await stack.http.post(
        COLLECTION, content=nested, headers={"content-type": "application/json"}
    )
    assert_refused(response, "a is given twice in one object of the body", "a")
    assert (await stack.http.get(COLLECTION)).json() == []


@pytest.mark.parametrize(
    "field",
    ["dataset_version", "feature_version", "model_version", "git_commit_hash", "mlflow_run_id"],
)
async def test_an_empty_lineage_string_is_400(stack: Stack, field: str) -> None:
    response = await stack.http.post(COLLECTION, json={"strategy_id": STRATEGY_1, field: ""})
    assert_refused(response, f"{field} must not be empty", field)


async def test_an_empty_mlflow_run_id_is_400_on_patch_and_blocks_nothing(stack: Stack) -> None:
    first = await create(stack.http)
    second = await create(stack.http)
    for experiment in (first, second):
        response = await stack.http.patch(path(experiment["id"]), json={"mlflow_run_id": ""})
        assert_refused(response, "mlflow_run_id must not be empty", "mlflow_run_id")


# --- update masks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "body", "field", "message"),
    [
        (
            "update_mask=parameters",
            {"parameters": {"a": 1}, "dataset_version": "ds-other"},
            "dataset_version",
            "dataset_version is in the body but update_mask (parameters) does not name it",
        ),
        (
            "update_mask=metrics",
            {"parameters": {"a": 1}},
            "parameters",
            "parameters is in the body but update_mask (metrics) does not name it",
        ),
        (
            "update_mask=parameters,mlflow_run_id",
            {"parameters": {"a": 1}},
            "update_mask",
            "update_mask names 'mlflow_run_id', which the body does not hold",
        ),
        (
            "",
            {"parameters": {"a": 1}, "git_commit_hash": "c2"},
            "git_commit_hash",
            "git_commit_hash is write-once",
        ),
    ],
)
async def test_a_patch_whose_mask_and_body_disagree_is_400_and_writes_nothing(
    stack: Stack, query: str, body: dict[str, Any], field: str, message: str
) -> None:
    created = await create(stack.http, mlflow_run_id="run-1", parameters={"p": 1})
    response = await stack.http.patch(f"{path(created['id'])}?{query}", json=body)
    assert_refused(response, message, field)
    assert (await stack.http.get(path(created["id"]))).json() == created


async def test_an_empty_mask_with_a_null_clears(stack: Stack) -> None:
    created = await create(stack.http, mlflow_run_id="run-1")
    response = await stack.http.patch(
        f"{path(created['id'])}?update_mask=", json={"mlflow_run_id": None}
    )
    assert response.status_code == 200, response.text
    assert response.json()["mlflow_run_id"] is None


async def test_a_patch_that_changes_nothing_leaves_updated_at(stack: Stack) -> None:
    created = await create(stack.http, mlflow_run_id="run-1", parameters={"p": 1}, metrics={})
    response = await stack.http.patch(
        path(created["id"]), json={"mlflow_run_id": "run-1", "parameters": {"p": 1.0}}
    )
    assert response.status_code == 200, response.text
    assert response.json() == created
    changed = await stack.http.patch(path(created["id"]), json={"parameters": {"p": 2}})
    assert changed.json()["updated_at"] > created["updated_at"]


# --- HEAD --------------------------------------------------------------------------


async def test_head_answers_wherever_get_does(stack: Stack) -> None:
    created = await create(stack.http)
    for target in (
        COLLECTION,
        path(created["id"]),
        path("00000000-0000-4000-8000-000000000000"),
        "/api/v1/tracking/experiments",
        "/healthz",
        "/openapi.json",
    ):
        got = await stack.http.get(target)
        head = await stack.http.head(target)
        assert head.status_code == got.status_code, target
        assert head.content == b"", target
        assert head.headers["content-length"] == str(len(got.content)), target
        assert head.headers["content-type"] == got.headers["content-type"], target
    refused = await stack.http.put(COLLECTION)
    assert refused.headers["allow"] == "GET, HEAD, POST"


# --- the largest rows, a full page and a full compare --------------------------------


# On PostgreSQL only: the production store, and 60 rows of 64 KiB are enough
# to write once per run.
@pytest.mark.parametrize("experiments_database", ["postgresql"], indirect=True)
async def test_pages_and_a_compare_of_the_largest_rows_read_back_intact(stack: Stack) -> None:
    rows = [largest(f"r{n:02d}", keys=256) for n in range(60)]
    created = [await create(stack.http, **row) for row in rows]
    # One page of all 60 would be ~3.9 MB of protobuf, beyond what a gRPC
    # client takes in one message: it ends early, and the Link header leads
    # on to the end.
    seen: list[dict[str, Any]] = []
    target: str | None = f"{COLLECTION}?strategy_id={STRATEGY_1}&limit=1000"
    pages = 0
    while target is not None:
        response = await stack.http.get(target)
        assert response.status_code == 200, response.text
        seen += response.json()
        pages += 1
        link = response.headers.get("link")
        target = LINK.fullmatch(link).group("target") if link else None  # type: ignore[union-attr]
    assert pages == 2
    assert seen == created[::-1]
    ten = [experiment["id"] for experiment in created[:10]]
    compared = await stack.http.post(f"{COLLECTION}/compare", json=ten)
    assert compared.status_code == 200, compared.text[:300]
    assert compared.json()["experiments"] == created[:10]
    assert len(compared.json()["param_diff"]) == 10 * 129


# --- the filter over HTTP --------------------------------------------------------------


async def test_a_filter_in_the_query_string_selects_and_links_on(stack: Stack) -> None:
    made = [
        await create(stack.http, dataset_version="ds-a", metrics={"oos_sharpe": sharpe})
        for sharpe in (0.5, 1.3, 2.0, 1.25)
    ]
    await create(stack.http, dataset_version="ds-b", metrics={"oos_sharpe": 3.0})
    query = {"filter": 'metrics.oos_sharpe > 1.2 AND dataset_version = "ds-a"', "page_size": "2"}
    first = await stack.http.get(COLLECTION, params=query)
    assert first.status_code == 200, first.text
    assert [e["id"] for e in first.json()] == [made[3]["id"], made[2]["id"]]
    link = LINK.fullmatch(first.headers["link"])
    assert link is not None
    rest = await stack.http.get(link.group("target"))
    assert [e["id"] for e in rest.json()] == [made[1]["id"]]
    assert "link" not in rest.headers


async def test_a_bad_filter_is_400_naming_the_position(stack: Stack) -> None:
    response = await stack.http.get(COLLECTION, params={"filter": "metrics.oos_sharpe >> 1"})
    assert_refused(response, "filter expects a value", "filter")
    assert "at position 21" in response.json()["message"]


async def test_an_order_in_the_query_string_orders_and_links_on(stack: Stack) -> None:
    made = [
        await create(stack.http, metrics={"oos_sharpe": sharpe, "pbo": pbo})
        for sharpe, pbo in ((0.5, 0.4), (2.0, 0.1), (None, 0.3), (1.3, 0.2))
    ]
    ids = [experiment["id"] for experiment in made]
    query = {"order_by": "metrics.oos_sharpe best, created_at", "page_size": "2"}
    first = await stack.http.get(COLLECTION, params=query)
    assert first.status_code == 200, first.text
    assert [e["id"] for e in first.json()] == [ids[1], ids[3]]  # highest Sharpe first
    link = LINK.fullmatch(first.headers["link"])
    assert link is not None
    assert "order_by=metrics.oos_sharpe+best%2C+created_at" in link.group("target")
    rest = await stack.http.get(link.group("target"))
    assert [e["id"] for e in rest.json()] == [ids[0], ids[2]]  # the null Sharpe last
    assert "link" not in rest.headers
    # `maximize` is a repeated query parameter: pbo best, highest first.
    flipped = await stack.http.get(
        f"{COLLECTION}?order_by=metrics.pbo%20best&maximize=pbo&maximize=other"
    )
    by_pbo = [ids[0], ids[2], ids[3], ids[1]]  # 0.4, 0.3, 0.2, 0.1
    assert [e["id"] for e in flipped.json()] == by_pbo
    lowest = await stack.http.get(COLLECTION, params={"order_by": "metrics.pbo best"})
    assert [e["id"] for e in lowest.json()] == by_pbo[::-1]


async def test_a_bad_order_is_400_naming_order_by(stack: Stack) -> None:
    response = await stack.http.get(COLLECTION, params={"order_by": "metrics.oos_sharpe up"})
    assert_refused(response, "order_by has an unknown word 'up' at position 20", "order_by")
    runs = await stack.http.get("/api/v1/tracking/runs", params={"order_by": "created_at"})
    assert_refused(runs, "order_by names an unknown field 'created_at'", "order_by")


async def test_the_runs_list_links_to_its_next_page(stack: Stack) -> None:
    everything = (await stack.http.get("/api/v1/tracking/runs", params={"limit": 100})).json()
    assert everything["next_page_token"] is None
    seen: list[str] = []
    target: str | None = "/api/v1/tracking/runs?page_size=2"
    while target is not None:
        response = await stack.http.get(target)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [run["run_id"] for run in body["runs"]]
        link = response.headers.get("link")
        assert (link is None) == (body["next_page_token"] is None)
        target = LINK.fullmatch(link).group("target") if link else None  # type: ignore[union-attr]
    assert seen == [run["run_id"] for run in everything["runs"]]
