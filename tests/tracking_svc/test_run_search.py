"""The run search read straight from MLflow's REST answer gives the same
rows as MLflow's client, on the session's real `mlflow server` (NaN and
±inf metrics, runs without tags or params included); and the JSON reader
on its own, for the forms protobuf's JSON mapping may take."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from testbed.mlflow_server import MlflowServer
from tests.fixtures.mlflow import Seeded
from tests.tracking_svc.conftest import Backend
from tracking_svc.config import Settings
from tracking_svc.rest_client import KeptAliveRest
from tracking_svc.run_search import (
    Rest,
    RunRow,
    get_with,
    rest_requests,
    row_of,
    rows_of,
    search_body,
    search_with,
)


@pytest.fixture(params=["direct", "mlflow-http"])
def send(request: pytest.FixtureRequest, mlflow_server: MlflowServer) -> Iterator[Rest]:
    """Requests to the session's `mlflow server` over each transport:
    tracking_svc's own connections, and MLflow's `http_request`."""
    rest = rest_requests(
        mlflow_server.url, direct=request.param == "direct", timeout=Settings().mlflow_timeout
    )
    assert rest is not None
    assert isinstance(rest, KeptAliveRest) == (request.param == "direct")
    yield rest
    if isinstance(rest, KeptAliveRest):
        rest.close()


def _comparable(row: RunRow) -> tuple[object, ...]:
    """NaN is not equal to itself: compare it as a word."""
    metrics = {k: "NaN" if math.isnan(v) else v for k, v in row.metrics.items()}
    return (row.run_id, row.run_name, row.status, row.start_time, row.params, metrics, row.tags)


def test_rest_rows_equal_the_clients_rows(
    server_store: Backend, mlflow_server: MlflowServer, send: Rest
) -> None:
    seeded: Seeded = server_store.seeded
    post = search_with(send)
    order = ["attributes.start_time DESC"]
    client = MlflowClient(tracking_uri=mlflow_server.url)
    expected = client.search_runs([seeded.experiment_id], order_by=order, max_results=3)
    page = post(search_body([seeded.experiment_id], "", 3, order, None))
    assert [_comparable(row) for row in page.runs] == [_comparable(row_of(run)) for run in expected]
    assert page.token == expected.token
    rest = post(search_body([seeded.experiment_id], "", 100, order, page.token))
    assert [row.run_id for row in page.runs + rest.runs] == seeded.newest_first
    assert rest.token is None
    infinite = next(row for row in rest.runs + page.runs if row.run_id == seeded.backtest_b)
    assert {v for v in infinite.metrics.values() if math.isinf(v)} == {math.inf, -math.inf}


def test_rows_of_reads_every_form_of_protobufs_json() -> None:
    page = rows_of(
        {
            "runs": [
                {
                    "info": {"run_id": "r1", "start_time": "1700000000000", "status": "FINISHED"},
                    "data": {
                        "metrics": [
                            {"key": "nan", "value": "NaN"},
                            {"key": "up", "value": "Infinity"},
                            {"key": "max", "value": 1.7976931348623157e308},
                            {"key": "low", "value": -1.7976931348623157e308},
                            {"key": "zero"},
                            {"key": "n", "value": 3},
                        ],
                        "params": [{"key": "p", "value": "1"}, {"key": "empty"}],
                    },
                },
                {"info": {"run_id": "r2", "run_name": "named", "start_time": 5}},
            ],
            "next_page_token": "abc",
        }
    )
    first, second = page.runs
    assert first.start_time == 1_700_000_000_000
    assert math.isnan(first.metrics["nan"])
    assert (first.metrics["up"], first.metrics["max"], first.metrics["low"]) == (
        math.inf,
        math.inf,
        -math.inf,
    )
    assert (first.metrics["zero"], first.metrics["n"]) == (0.0, 3.0)
    assert first.params == {"p": "1", "empty": ""}
    assert (first.run_name, first.tags) == ("", {})
    assert (second.run_name, second.start_time, second.metrics) == ("named", 5, {})
    assert page.token == "abc"
    assert rows_of({}).runs == []
    assert rows_of({}).token is None


def test_a_local_store_has_no_rest_search() -> None:
    for uri in ("sqlite:///x.db", "file:///tmp/mlruns"):
        assert rest_requests(uri, direct=True, timeout=1.0) is None


def test_a_run_read_over_rest_equals_the_clients(
    server_store: Backend, mlflow_server: MlflowServer, send: Rest
) -> None:
    # GetRun's REST path (runs/get read straight from JSON) against the
    # client's entity, for every seeded run: finished, running, ±inf, NaN.
    get = get_with(send)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    for run_id in server_store.seeded.newest_first:
        ours, theirs = get(run_id), row_of(client.get_run(run_id))
        assert _comparable(ours) == _comparable(theirs)
        assert (ours.end_time, ours.artifact_uri, ours.experiment_id, ours.lifecycle_stage) == (
            theirs.end_time,
            theirs.artifact_uri,
            theirs.experiment_id,
            theirs.lifecycle_stage,
        )
