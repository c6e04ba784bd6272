"""`filter` and `order_by` texts over HTTP, against the real stack (gateway,
both services, PostgreSQL and a real `mlflow server`): texts each service
accepts, those edited, and texts of any kind (arbitrary text, the
language's pieces in any order, hostile pieces, texts at the bounds), each
percent-encoded into the query string of the list routes. Every answer is
200 or 400, never a 5xx, and every 400 has the contract's error body
(CONTRACT §4) with one BadRequest violation naming the parameter, whose
message starts with its name; the stack is healthy afterwards. Two filters
the fuzz found answering 5xx are pinned by test_edge_values_are_400."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments_svc.filtering import FIELDS as EXPERIMENT_FILTER_FIELDS
from experiments_svc.ordering import FIELDS as EXPERIMENT_ORDER_FIELDS
from research.tracking.v1 import tracking_pb2
from research_common.filters import Fields
from tests.experiments_svc.test_filter_fuzz import COMPILABLE
from tests.fixtures.stack import Stack
from tests.reliability.conftest import Record
from tests.reliability.test_hostile_http import STRATEGY, assert_healthy
from tests.research_common.filter_texts import (
    filter_texts,
    mutated,
    order_texts,
    orders,
    weighted,
)
from tests.research_common.test_filters_fuzz import RUN_ORDER_FIELDS
from tests.tracking_svc.test_filter_fuzz import CONJUNCTIONS
from tracking_svc.filtering import FIELDS as RUN_FILTER_FIELDS

pytestmark = pytest.mark.postgres

EXAMPLES = 150
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
RUNS_TAKE_ORDER_BY = "order_by" in tracking_pb2.ListRunsRequest.DESCRIPTOR.fields_by_name


def _utf8(text: str) -> bool:
    """Whether `text` can be sent (no lone surrogates)."""
    return not any("\ud800" <= char <= "\udfff" for char in text)


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    parameter: str
    texts: st.SearchStrategy[str]


def _route(path: str, parameter: str, fields: Fields, valid: st.SearchStrategy[str]) -> Route:
    """Texts for one parameter: half from `valid` (texts the service
    accepts, or nearly), as they are and edited, half of any kind."""
    valid = valid.filter(_utf8)
    of_any_kind = filter_texts if parameter == "filter" else order_texts
    texts = weighted(
        (2, valid), (1, mutated(valid, encodable=True)), (3, of_any_kind(fields, encodable=True))
    )
    return Route(path, parameter, texts)


ROUTES = {
    "experiments filter": _route(
        "/api/v1/experiments", "filter", EXPERIMENT_FILTER_FIELDS, COMPILABLE
    ),
    "experiments order_by": _route(
        "/api/v1/experiments", "order_by", EXPERIMENT_ORDER_FIELDS, orders(EXPERIMENT_ORDER_FIELDS)
    ),
    "runs filter": _route("/api/v1/tracking/runs", "filter", RUN_FILTER_FIELDS, CONJUNCTIONS),
    "runs order_by": _route(
        "/api/v1/tracking/runs", "order_by", RUN_ORDER_FIELDS, orders(RUN_ORDER_FIELDS)
    ),
}
SKIPS = {
    "runs order_by": pytest.mark.skipif(
        not RUNS_TAKE_ORDER_BY, reason="ListRunsRequest has no order_by field yet"
    )
}

# Experiments whose metrics and parameters hold every kind of value, so
# that a filter or an order is evaluated over rows, not over an empty table.
DOCUMENTS = [
    {
        "strategy_id": STRATEGY,
        "dataset_version": "ds1",
        "metrics": {"a": 1.5, "b": "x", "c": True, "d": None, "oos.sharpe": 2, "k": -0.0},
        "parameters": {"a": "1", "x": 3, "y": [1, 2], "z": {"w": 1}},
    },
    {"strategy_id": STRATEGY, "metrics": {"a": "1.5", "b": 2}, "parameters": {"a": 1}},
    {"strategy_id": STRATEGY},
]


def assert_answer(response: httpx.Response, parameter: str, text: str) -> None:
    """200, or 400 with the contract's body naming `parameter`."""
    assert response.status_code in (200, 400), (text, response.status_code, response.text)
    if response.status_code == 200:
        return
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert list(body) == ["code", "message", "detail", "details"], body
    assert body["code"] == 3
    assert body["detail"] == body["message"]
    assert body["message"].startswith(f"{parameter} "), (text, body["message"])
    violation = {"field": parameter, "description": body["message"]}
    assert body["details"] == [{"@type": BAD_REQUEST, "field_violations": [violation]}], body


def fuzz(base_url: str, route: Route) -> Counter[int]:
    """EXAMPLES texts sent to `route` and checked; the statuses seen. Run
    in a thread: the stack serves on the test's event loop meanwhile."""
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=base_url, timeout=20) as http:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(text=route.texts)
        def check(text: str) -> None:
            response = http.get(f"{route.path}?{route.parameter}={quote(text, safe='')}")
            statuses[response.status_code] += 1
            assert_answer(response, route.parameter, text)

        check()
    return statuses


@pytest.mark.parametrize("name", [pytest.param(name, marks=SKIPS.get(name, ())) for name in ROUTES])
async def test_any_text_is_200_or_400_naming_the_parameter(
    stack: Stack, name: str, figures: Record
) -> None:
    for document in DOCUMENTS:
        made = await stack.http.post("/api/v1/experiments", json=document)
        assert made.status_code == 201, made.text
    began = time.monotonic()
    statuses = await asyncio.to_thread(fuzz, stack.base_url, ROUTES[name])
    figures(
        requests=sum(statuses.values()),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        seconds=round(time.monotonic() - began, 1),
    )
    # Both outcomes were reached: the texts are not all refused.
    assert statuses[200], statuses
    assert statuses[400], statuses
    await assert_healthy(stack)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        # Once a 500: the time, converted to UTC for the query, left the
        # calendar (OverflowError while the statement was bound).
        ("/api/v1/experiments", 'created_at < "0001-01-01T00:00:00+14:00"'),
        ("/api/v1/experiments", 'updated_at > "9999-12-31T23:59:59-14:00"'),
        # Once a 503 and /readyz 503 for a moment: MLflow's store could not
        # bind a number beyond 64 bits and answered 500, taken for an outage.
        ("/api/v1/tracking/runs", "start_time > 1e19"),
        ("/api/v1/tracking/runs", "start_time > 9223372036854775807"),
    ],
)
async def test_edge_values_are_400(stack: Stack, path: str, text: str) -> None:
    """Each is a 400 naming filter, and the stack stays ready."""
    response = await stack.http.get(f"{path}?filter={quote(text, safe='')}")
    assert response.status_code == 400, response.text
    assert_answer(response, "filter", text)
    assert (await stack.http.get("/readyz")).status_code == 200
