"""One page of MLflow's run search, as the rows ListRuns answers with.

Over a tracking server, the page is read straight from MLflow's REST
answer (`POST /api/2.0/mlflow/runs/search`): MLflow's client would turn the
JSON into its protobuf messages and those into entities before this
service turned them into its own messages, and that was most of the
façade's cost (a walk of 1,000 runs took 1.23-1.25x MLflow's own paging;
BENCHMARKS.md, scenario 8). The request goes over this service's own
kept-alive connections (tracking_svc.rest_client), which send what MLflow's
`http_request` would, or through `http_request` itself where they cannot
(or with MLFLOW_DIRECT_HTTP=false). Over the embedded store (no server) the
client's entities are read as before.

`http_request` and `verify_rest_response` are MLflow internals: they are
looked up once, and without them the client's path is used, with a warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from mlflow.entities import Run

log = logging.getLogger("tracking.mlflow")

ENDPOINT = "/api/2.0/mlflow/runs/search"
GET_ENDPOINT = "/api/2.0/mlflow/runs/get"
# MLflow's SQL stores keep ±inf as the largest finite double.
_INF_STAND_IN = 1.7976931348623157e308
# How protobuf's JSON writes the floats JSON has no number for.
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as the run search answers it."""

    run_id: str
    run_name: str
    status: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]  # as logged: ±inf restored, NaN kept
    tags: dict[str, str]
    lifecycle_stage: str = "active"
    # The step of each metric's latest value (MLflow's latest is the one at
    # the highest step); None where the source does not say (the client's
    # entities keep steps only in private attributes).
    steps: dict[str, int] | None = None
    # What GetRun shows besides.
    end_time: int | None = None
    artifact_uri: str = ""
    experiment_id: str = ""


@dataclass(frozen=True, slots=True)
class RunsPage:
    runs: list[RunRow]
    token: str | None  # MLflow's token of the next page


def restore_infinity(value: float) -> float:
    """A metric as it was logged: MLflow's SQL stores turn ±inf into ±max."""
    if abs(value) == _INF_STAND_IN:
        return math.inf if value > 0 else -math.inf
    return value


def metrics_of(run: Run) -> dict[str, float]:
    """Final metric values as logged (±inf included; NaN stays NaN)."""
    return {key: restore_infinity(value) for key, value in run.data.metrics.items()}


def row_of(run: Run) -> RunRow:
    """A run of MLflow's client as a row."""
    return RunRow(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        status=run.info.status,
        start_time=run.info.start_time or 0,
        params=dict(run.data.params),
        metrics=metrics_of(run),
        tags=dict(run.data.tags),
        lifecycle_stage=run.info.lifecycle_stage,
        end_time=run.info.end_time,
        artifact_uri=run.info.artifact_uri or "",
        experiment_id=str(run.info.experiment_id),
    )


def _pairs(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {entry["key"]: entry.get("value", "") for entry in entries}


def _number(value: float | int | str) -> float:
    if isinstance(value, str):
        return _SPECIAL[value] if value in _SPECIAL else float(value)
    return restore_infinity(float(value))


def rows_of(document: Mapping[str, Any]) -> RunsPage:
    """The rows of MLflow's JSON answer to a run search (protobuf's JSON
    mapping: empty fields left out, int64 possibly as strings)."""
    rows = [row_of_json(run) for run in document.get("runs", ())]
    return RunsPage(rows, document.get("next_page_token") or None)


def row_of_json(run: Mapping[str, Any]) -> RunRow:
    """One run of MLflow's REST answers (run search, runs/get) as a row."""
    info, data = run.get("info", {}), run.get("data", {})
    end_time = info.get("end_time")
    return RunRow(
        run_id=info["run_id"],
        run_name=info.get("run_name", ""),
        status=info.get("status", ""),
        start_time=int(info.get("start_time", 0)),
        params=_pairs(data.get("params", ())),
        metrics={
            entry["key"]: _number(entry.get("value", 0.0)) for entry in data.get("metrics", ())
        },
        tags=_pairs(data.get("tags", ())),
        lifecycle_stage=info.get("lifecycle_stage", "active"),
        steps={entry["key"]: int(entry.get("step", 0)) for entry in data.get("metrics", ())},
        end_time=None if end_time is None else int(end_time),
        artifact_uri=info.get("artifact_uri", ""),
        experiment_id=str(info.get("experiment_id", "")),
    )


Post = Callable[[dict[str, Any]], RunsPage]
# One request to the tracking server: (method, endpoint, and `params=` for
# the query string or `json=` for the body) to the answer's body;
# MlflowException when it is refused or cannot be sent.
Rest = Callable[..., bytes]


def rest_requests(tracking_uri: str, *, direct: bool, timeout: float) -> Rest | None:
    """A function that sends one request to the tracking server at
    `tracking_uri`: over kept-alive connections of its own (`direct`, each
    request's timeout `timeout` seconds or what is left of its call) when
    they can send what MLflow's client would, else through MLflow's own
    `http_request`; None when `tracking_uri` is not a server, or MLflow no
    longer has the internals it uses (with a warning)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    try:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        from tracking_svc.rest_client import direct_rest
    except ImportError as error:
        log.warning(
            "MLflow's REST helpers are not where this version expects them (%s): "
            "run search and metric histories go through MLflow's client, which is slower",
            error,
        )
        return None
    credentials = get_default_host_creds(tracking_uri)  # type: ignore[no-untyped-call]
    kept_alive = direct_rest(credentials, timeout) if direct else None
    if kept_alive is not None:
        return kept_alive

    def send(method: str, endpoint: str, **kwargs: Any) -> bytes:
        response = http_request(credentials, endpoint, method, **kwargs)  # type: ignore[no-untyped-call]
        verify_rest_response(response, endpoint)  # MlflowException when refused
        content: bytes = response.content
        return content

    return send


def search_with(send: Rest) -> Post:
    """Run search through `send` (rest_requests)."""
    return lambda body: rows_of(orjson.loads(send("POST", ENDPOINT, json=body)))


def get_with(send: Rest) -> Callable[[str], RunRow]:
    """One run by id through `send` (rest_requests): MLflow's runs/get,
    read straight from its JSON as the run search is (GetRun cost 1.86x
    MLflow's own answer through the client's entities; BENCHMARKS.md)."""
    return lambda run_id: row_of_json(
        orjson.loads(send("GET", GET_ENDPOINT, params={"run_id": run_id}))["run"]
    )


def search_body(
    experiment_ids: Sequence[str],
    filter_string: str,
    max_results: int,
    order_by: Sequence[str],
    page_token: str | None,
    run_view_type: str = "ACTIVE_ONLY",
) -> dict[str, Any]:
    """The JSON body of one run search (active runs only by default, as the
    client's)."""
    body: dict[str, Any] = {
        "experiment_ids": list(experiment_ids),
        "filter": filter_string,
        "max_results": max_results,
        "order_by": list(order_by),
        "run_view_type": run_view_type,
    }
    if page_token:
        body["page_token"] = page_token
    return body
