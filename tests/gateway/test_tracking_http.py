"""TrackingService over real HTTP, end to end: gateway → tracking_svc → the
session's real `mlflow server`. Every tracking route of CONTRACT §2 with the
JSON rules of §3, the errors of §4, the behaviour of §6 and the diff rules of
§7, exact values; the tracking API document's compare example reproduced.

Runs this module logs itself go to experiments of its own, never to the
seeded default experiment (other modules assert its exact run list)."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from gateway.config import Settings as GatewaySettings
from gateway.server import create_server as create_gateway
from testbed.mlflow_server import MlflowServer
from testbed.ports import free_port
from tests.fixtures.mlflow import FOLD_SHARPE, STRATEGY_A, STRATEGY_B, T0, Seeded
from tests.fixtures.stack import Stack
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.server import create_server as create_tracking

RUNS = "/api/v1/tracking/runs"
COMPARE = f"{RUNS}/compare"
EXPERIMENTS = "/api/v1/tracking/experiments"

SUMMARY_FIELDS = ["run_id", "run_name", "status", "start_time", "params", "metrics", "tags"]
RUN_FIELDS = [
    "run_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
    "params",
    "metrics",
    "tags",
    "experiment_id",
    "lifecycle_stage",
]
LINEAGE_TAGS = [
    "strategy_id",
    "run_type",
    "git_commit",
    "dataset_version",
    "feature_version",
    "model_version",
    "signal_version",
]
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
RESOURCE_INFO = "type.googleapis.com/google.rpc.ResourceInfo"
RUN_ID_RULE = "must be an MLflow run id (letters, digits, '_' and '-', at most 256 characters)"
FILTER_RULE = "must be 1 to 128 letters, digits or '_.:-' characters"
MLFLOW_DOWN = "the MLflow tracking server is unavailable; retry later"
MLFLOW_SILENT = "the MLflow tracking server did not answer in time; retry later"
# A well-formed MLflow run id that no run has.
UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"
UNKNOWN_RUN_2 = "fedcba9876543210fedcba9876543210"


# --- helpers -----------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise AssertionError(f"the response holds the non-JSON constant {name}")


def strict_json(response: httpx.Response) -> Any:
    """The body as JSON, failing on NaN / Infinity / -Infinity (which
    Python's json would otherwise accept)."""
    return json.loads(response.text, parse_constant=_no_constants)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return strict_json(response)


def assert_error(
    response: httpx.Response, status: int, code: int, message: str, field: str | None = None
) -> dict[str, Any]:
    """The contract's error body (CONTRACT §4); a BadRequest naming `field`
    when one is given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = strict_json(response)
    assert list(body) == ["code", "message", "detail", "details"]
    assert body["code"] == code
    assert body["message"] == message
    assert body["detail"] == message
    if field is not None:
        violation = {"field": field, "description": message}
        assert body["details"] == [{"@type": BAD_REQUEST, "field_violations": [violation]}]
    return body


def run_not_found(run_ids: list[str]) -> list[dict[str, str]]:
    return [
        {
            "@type": RESOURCE_INFO,
            "resource_type": "mlflow.Run",
            "resource_name": run_id,
            "description": "not found",
        }
        for run_id in run_ids
    ]


def echo(value: str) -> str:
    """How the services quote a caller's value in a message: its repr, cut
    to 64 characters."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


@dataclass(frozen=True)
class Expected:
    """What MLflow holds for one seeded run (NaN and ±inf as None, as the
    gateway renders them)."""

    run_name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float | None]
    lineage: dict[str, str]
    extra_tags: dict[str, str]

    @property
    def tags(self) -> dict[str, str]:
        # MLflow adds the run name as a tag of its own.
        return {**self.extra_tags, **self.lineage, "mlflow.runName": self.run_name}


def expected_runs(seeded: Seeded) -> dict[str, Expected]:
    """Every run `seed` logs to the default experiment and the other one."""
    a, b = STRATEGY_A, STRATEGY_B
    return {
        seeded.training_a: Expected(
            "training",
            "FINISHED",
            {
                "plugin_key": "ml.xgboost",
                "learning_rate": "0.05",
                "max_depth": "6",
                "n_estimators": "200",
                "subsample": "0.8",
            },
            {
                "oos_sharpe": 1.42,
                "max_drawdown": -0.1231,
                "rmse": 0.2,
                "custom_score": 3.0,
                "accuracy": 0.61,
                "calmar_ratio": 1.15,
            },
            {
                "strategy_id": a,
                "run_type": "training",
                "git_commit": "3f9a1c2",
                "dataset_version": "ds-2024-06",
                "feature_version": "v3",
                "model_version": "v1",
                "signal_version": "s2",
            },
            {"team": "alpha"},
        ),
        seeded.training_b: Expected(
            "training",
            "FINISHED",
            {
                "plugin_key": "ml.xgboost",
                "learning_rate": "0.01",
                "max_depth": "6",
                "n_estimators": "300",
            },
            {
                "oos_sharpe": 1.18,
                "max_drawdown": -0.1544,
                "rmse": 0.1,
                "custom_score": 5.0,
                "accuracy": 0.61,
            },
            {
                "strategy_id": b,
                "run_type": "training",
                "git_commit": "9c8b7a6",
                "dataset_version": "ds-2024-06",
                "feature_version": "v3",
                "model_version": "v2",
            },
            {},
        ),
        seeded.walk_forward_a: Expected(
            "walk_forward",
            "FINISHED",
            {"n_splits": "5", "method": "rolling"},
            # The final oos_sharpe is the value of the last step (fold 4).
            {"mean_oos_sharpe": 0.84, "oos_sharpe": FOLD_SHARPE[4]},
            {
                "strategy_id": a,
                "run_type": "walk_forward",
                "git_commit": "3f9a1c2",
                "dataset_version": "ds-2024-06",
            },
            {},
        ),
        seeded.cpcv_b: Expected(
            "cpcv",
            "FAILED",
            {"n_groups": "6"},
            # NaN renders as null; oos_sharpe ends at step 1's later value.
            {"calmar_ratio": None, "sortino": None, "oos_sharpe": 0.7},
            {"strategy_id": b, "run_type": "cpcv", "dataset_version": "ds-2024-07"},
            {},
        ),
        seeded.backtest_a: Expected(
            "backtest",
            "RUNNING",
            {"initial_capital": "1000000"},
            {"total_return": 0.25, "max_drawdown": -0.08},
            {"strategy_id": a, "run_type": "backtest", "git_commit": "3f9a1c2"},
            {},
        ),
        seeded.backtest_b: Expected(
            "backtest",
            "KILLED",
            {"initial_capital": "500000"},
            # +inf and -inf render as null.
            {"calmar_ratio": None, "sortino": None, "total_return": -0.05},
            {"strategy_id": b, "run_type": "backtest"},
            {},
        ),
        seeded.untagged: Expected(
            "manual-check",
            "FINISHED",
            {"learning_rate": "0.05"},
            {"oos_sharpe": 1.0},
            {},
            {"note": "manual"},
        ),
        seeded.other: Expected(
            "training",
            "FINISHED",
            {"learning_rate": "0.02"},
            {"oos_sharpe": 2.0},
            {"strategy_id": a, "run_type": "training", "git_commit": "3f9a1c2"},
            {},
        ),
    }


def summary(seeded: Seeded, run_id: str) -> dict[str, Any]:
    """A seeded run as ListRuns renders it, fields in contract order."""
    run = expected_runs(seeded)[run_id]
    return {
        "run_id": run_id,
        "run_name": run.run_name,
        "status": run.status,
        "start_time": seeded.start_times[run_id],
        "params": run.params,
        "metrics": run.metrics,
        "tags": run.tags,
    }


@asynccontextmanager
async def serve(
    tracking_uri: str, experiment_name: str, experiments_address: str = "127.0.0.1:1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A tracking_svc of our own (default experiment `experiment_name`) with
    a gateway of our own in front; an HTTP client on that gateway."""
    tracking, _ = await create_tracking(
        TrackingSettings(
            tracking_uri=tracking_uri, experiment_name=experiment_name, health_interval=0.2
        ),
        "127.0.0.1:0",
    )
    await tracking.start()
    try:
        gateway, port = create_gateway(
            GatewaySettings(
                tracking_address=f"127.0.0.1:{tracking.port}",
                experiments_address=experiments_address,
                shutdown_grace=1,
            ),
            "127.0.0.1:0",
        )
        await gateway.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
                yield http
        finally:
            await gateway.stop()
    finally:
        await tracking.stop(0)


# --- runs this module logs (in experiments of its own) -------------------------

# The compare example of the tracking API document: three training runs.
DOC_IDS = ("abc123def456", "def456ghi789", "ghi789jkl012")
DOC_PARAMS = (
    {"learning_rate": "0.05", "max_depth": "6", "n_estimators": "200"},
    {"learning_rate": "0.01", "max_depth": "6", "n_estimators": "200"},
    {"learning_rate": "0.10", "max_depth": "8", "n_estimators": "300"},
)
DOC_METRICS = (
    {"oos_sharpe": 1.42, "max_drawdown": -0.1231},
    {"oos_sharpe": 1.18, "max_drawdown": -0.1544},
    {"oos_sharpe": 1.35, "max_drawdown": -0.1389},
)
# The document's own times for its first run (Get Run Detail example).
DOC_START, DOC_END = 1_699_900_800_000, 1_699_901_520_000
DOC_LINEAGE = (
    Lineage(STRATEGY_A, "training", "3f9a1c2", "ds-2024-06", "v3", "v1"),
    Lineage(STRATEGY_A, "training", "3f9a1c2", "ds-2024-06", "v3", "v1"),
    Lineage(STRATEGY_A, "training", "7d2e4b1", "ds-2024-06", "v3", "v2"),
)
# The document's compare response, verbatim (its placeholder ids included).
DOC_COMPARE: dict[str, Any] = {
    "runs": [
        {
            "run_id": "abc123def456",
            "run_name": "training",
            "run_type": "training",
            "params": {"learning_rate": "0.05", "max_depth": "6", "n_estimators": "200"},
            "metrics": {"oos_sharpe": 1.42, "max_drawdown": -0.1231},
        },
        {
            "run_id": "def456ghi789",
            "run_name": "training",
            "run_type": "training",
            "params": {"learning_rate": "0.01", "max_depth": "6", "n_estimators": "200"},
            "metrics": {"oos_sharpe": 1.18, "max_drawdown": -0.1544},
        },
        {
            "run_id": "ghi789jkl012",
            "run_name": "training",
            "run_type": "training",
            "params": {"learning_rate": "0.10", "max_depth": "8", "n_estimators": "300"},
            "metrics": {"oos_sharpe": 1.35, "max_drawdown": -0.1389},
        },
    ],
    "metric_diff": {
        "oos_sharpe": {
            "values": {"abc123def456": 1.42, "def456ghi789": 1.18, "ghi789jkl012": 1.35},
            "best_run_id": "abc123def456",
        },
        "max_drawdown": {
            "values": {"abc123def456": -0.1231, "def456ghi789": -0.1544, "ghi789jkl012": -0.1389},
            "best_run_id": "abc123def456",
        },
    },
    "param_diff": {
        "learning_rate": {
            "values": {"abc123def456": "0.05", "def456ghi789": "0.01", "ghi789jkl012": "0.10"},
            "varies": True,
        },
        "max_depth": {
            "values": {"abc123def456": "6", "def456ghi789": "6", "ghi789jkl012": "8"},
            "varies": True,
        },
        "n_estimators": {
            "values": {"abc123def456": "200", "def456ghi789": "200", "ghi789jkl012": "300"},
            "varies": True,
        },
    },
}

# Metric names with characters that must be percent-encoded in a path.
SLASHED_KEY = "fold/oos_sharpe"
SPACED_KEY = "fold sharpe"


@dataclass(frozen=True)
class Logged:
    """What this module logged: the document's three runs (default experiment
    of our own tracking_svc), and a run with awkward metric names."""

    example_experiment: str
    example: tuple[str, str, str]
    example_start_times: tuple[int, int, int]
    keyed: str  # in a third experiment: metrics SLASHED_KEY and SPACED_KEY
    keyed_start: int


@pytest.fixture(scope="module")
def logged(mlflow_server: MlflowServer) -> Logged:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    suffix = uuid.uuid4().hex[:8]
    example_name = f"tracking-http-example-{suffix}"
    example_experiment = str(client.create_experiment(example_name))
    ids: list[str] = []
    starts: list[int] = []
    for i, (lineage, params, metrics) in enumerate(
        zip(DOC_LINEAGE, DOC_PARAMS, DOC_METRICS, strict=True)
    ):
        started = DOC_START + i * 60_000
        run_id = str(start_run(client, example_experiment, lineage, start_time=started).info.run_id)
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for key, metric in metrics.items():
            client.log_metric(run_id, key, metric, timestamp=started + 1_000, step=0)
        client.set_terminated(run_id, "FINISHED", end_time=DOC_END + i * 60_000)
        ids.append(run_id)
        starts.append(started)

    keys_experiment = str(client.create_experiment(f"tracking-http-keys-{suffix}"))
    keyed_start = DOC_START - 3_600_000
    keyed = str(
        start_run(
            client, keys_experiment, Lineage(STRATEGY_A, "walk_forward"), start_time=keyed_start
        ).info.run_id
    )
    # Logged out of step order; NaN and ±inf among the values.
    for step, point in ((2, 0.5), (0, float("nan")), (3, float("-inf")), (1, float("inf"))):
        client.log_metric(keyed, SLASHED_KEY, point, timestamp=keyed_start + 10 * step, step=step)
    client.log_metric(keyed, SPACED_KEY, 1.25, timestamp=keyed_start + 5, step=7)
    client.set_terminated(keyed, "FINISHED", end_time=keyed_start + 1_000)
    return Logged(
        example_name,
        (ids[0], ids[1], ids[2]),
        (starts[0], starts[1], starts[2]),
        keyed,
        keyed_start,
    )


# --- GET /api/v1/tracking/runs -------------------------------------------------


async def test_list_runs_newest_first_with_exact_summaries(stack: Stack) -> None:
    seeded = stack.seeded
    response = await stack.http.get(RUNS)
    body = ok(response)
    assert list(body) == ["runs", "total", "next_page_token"]
    assert body["next_page_token"] is None  # the last page (CONTRACT §10)
    assert [run["run_id"] for run in body["runs"]] == seeded.newest_first
    assert body["total"] == 7
    for run in body["runs"]:
        assert list(run) == SUMMARY_FIELDS
        # Epoch milliseconds as a JSON integer, not proto3 JSON's int64 string.
        assert type(run["start_time"]) is int
    assert body["runs"] == [summary(seeded, run_id) for run_id in seeded.newest_first]
    start_times = [run["start_time"] for run in body["runs"]]
    assert start_times == sorted(start_times, reverse=True)
    assert f'"start_time":{seeded.start_times[seeded.training_a]},' in response.text
    # A trailing slash is the same route.
    assert ok(await stack.http.get(f"{RUNS}/")) == body


async def test_list_runs_renders_non_finite_metrics_as_null(stack: Stack) -> None:
    seeded = stack.seeded
    response = await stack.http.get(RUNS)
    # strict_json fails on NaN / Infinity: the body is valid JSON.
    runs = {run["run_id"]: run for run in ok(response)["runs"]}
    assert runs[seeded.cpcv_b]["metrics"] == {
        "calmar_ratio": None,
        "sortino": None,
        "oos_sharpe": 0.7,
    }
    assert runs[seeded.backtest_b]["metrics"] == {
        "calmar_ratio": None,
        "sortino": None,
        "total_return": -0.05,
    }
    for token in ("NaN", "Infinity", "1.7976931348623157e+308", "1.7976931348623157e308"):
        assert token not in response.text


async def test_list_runs_filters_by_lineage_tags(stack: Stack) -> None:
    seeded = stack.seeded

    async def listed(**query: str) -> list[str]:
        body = ok(await stack.http.get(RUNS, params=query))
        assert body["total"] == len(body["runs"])
        return [run["run_id"] for run in body["runs"]]

    assert await listed(run_type="training") == [seeded.training_b, seeded.training_a]
    assert await listed(run_type="backtest") == [seeded.backtest_b, seeded.backtest_a]
    assert await listed(strategy_id=STRATEGY_A) == [
        seeded.backtest_a,
        seeded.walk_forward_a,
        seeded.training_a,
    ]
    assert await listed(strategy_id=STRATEGY_B) == [
        seeded.backtest_b,
        seeded.cpcv_b,
        seeded.training_b,
    ]
    assert await listed(run_type="backtest", strategy_id=STRATEGY_B) == [seeded.backtest_b]
    assert await listed(run_type="training", strategy_id=STRATEGY_A, limit="1") == [
        seeded.training_a
    ]
    # A value that no run has: nothing, not everything.
    assert await listed(run_type="no_such_type") == []
    assert await listed(strategy_id="00000000-0000-4000-8000-000000000000") == []
    # The other experiment's run is never listed (its run_type is training).
    assert seeded.other not in await listed(strategy_id=STRATEGY_A, run_type="training")

    # The document's example query, answered with the seeded walk-forward run.
    response = await stack.http.get(
        f"{RUNS}?run_type=walk_forward&strategy_id={STRATEGY_A}&limit=20"
    )
    assert ok(response) == {
        "runs": [summary(seeded, seeded.walk_forward_a)],
        "total": 1,
        "next_page_token": None,
    }


async def test_list_runs_limit(stack: Stack) -> None:
    seeded = stack.seeded
    for limit, count in (("1", 1), ("3", 3), ("7", 7), ("100", 7), ("150", 7)):
        body = ok(await stack.http.get(RUNS, params={"limit": limit}))
        assert [run["run_id"] for run in body["runs"]] == seeded.newest_first[:count], limit
        assert body["total"] == count
    for limit in ("-1", "-150", "0"):
        assert_error(
            await stack.http.get(RUNS, params={"limit": limit}),
            400,
            3,
            f"limit must be a positive number, got {limit}",
            "limit",
        )
    assert_error(
        await stack.http.get(RUNS, params={"limit": "ten"}),
        400,
        3,
        "limit must be an integer, got 'ten'",
        "limit",
    )


async def test_list_runs_limit_defaults_to_50_and_clamps_to_100(
    gateway_seed: Seeded, mlflow_server: MlflowServer
) -> None:
    # The default experiment has 7 runs: the bulk experiment (105 runs) is
    # served by a tracking_svc of our own to show the default and the clamp.
    newest_first = list(reversed(gateway_seed.bulk))
    assert len(newest_first) == 105
    async with serve(mlflow_server.url, gateway_seed.bulk_experiment_name) as http:
        for query, count in (
            ({}, 50),
            ({"limit": "100"}, 100),
            ({"limit": "101"}, 100),
            ({"limit": "150"}, 100),
            ({"limit": "2147483647"}, 100),
        ):
            body = ok(await http.get(RUNS, params=query))
            assert [run["run_id"] for run in body["runs"]] == newest_first[:count], query
            assert body["total"] == count
            assert body["runs"][0] == {
                "run_id": newest_first[0],
                "run_name": "bulk-104",
                "status": "RUNNING",
                "start_time": 1_700_000_000_000 + 104_000,
                "params": {},
                "metrics": {},
                "tags": {"mlflow.runName": "bulk-104"},
            }


@pytest.mark.parametrize("field", ["run_type", "strategy_id"])
async def test_list_runs_refuses_unsafe_filter_values(stack: Stack, field: str) -> None:
    ten_kb = ("x' OR '1'='1' -- \\ " * 600)[:10_240]
    for value in (
        "x' OR 1=1",
        "'",
        "\\",
        "training' OR tags.run_type != '",
        'training" OR "1"="1',
        "training; DROP TABLE runs",
        "tràining",
        "",
        "a" * 129,
        ten_kb,
    ):
        response = await stack.http.get(RUNS, params={field: value})
        assert_error(response, 400, 3, f"{field} {FILTER_RULE}, got {echo(value)}", field)
    # The longest accepted value: 128 characters, matching nothing.
    assert ok(await stack.http.get(RUNS, params={field: "a" * 128})) == {
        "runs": [],
        "total": 0,
        "next_page_token": None,
    }


async def test_list_runs_refuses_unknown_and_repeated_query_parameters(stack: Stack) -> None:
    for name in ("runtype", "strategy", "run_type ", "max_results"):
        assert_error(
            await stack.http.get(RUNS, params={name: "training"}),
            400,
            3,
            f"{name} is not a query parameter of this route (unknown parameter)",
            name,
        )
    assert_error(
        await stack.http.get(f"{RUNS}?run_type=training&run_type=cpcv"),
        400,
        3,
        "run_type is given more than once",
        "run_type",
    )


# --- GET /api/v1/tracking/runs/{run_id} ------------------------------------------


async def test_get_run_has_every_field(stack: Stack) -> None:
    seeded = stack.seeded
    for run_id in [*seeded.newest_first, seeded.other]:
        run = expected_runs(seeded)[run_id]
        response = await stack.http.get(f"{RUNS}/{run_id}")
        body = ok(response)
        assert list(body) == RUN_FIELDS
        experiment_id = (
            seeded.other_experiment_id if run_id == seeded.other else seeded.experiment_id
        )
        assert body == {
            "run_id": run_id,
            "run_name": run.run_name,
            "status": run.status,
            "start_time": seeded.start_times[run_id],
            "end_time": seeded.end_times.get(run_id),
            "artifact_uri": seeded.artifact_uris[run_id],
            "params": run.params,
            "metrics": run.metrics,
            "tags": run.tags,
            "experiment_id": experiment_id,
            "lifecycle_stage": "active",
        }, run_id
        assert type(body["start_time"]) is int
        if run_id == seeded.backtest_a:
            # Still RUNNING: end_time present and null.
            assert body["end_time"] is None
            assert '"end_time":null' in response.text
        else:
            assert type(body["end_time"]) is int
            assert body["end_time"] == seeded.end_times[run_id]
    # A trailing slash is the same route.
    assert ok(await stack.http.get(f"{RUNS}/{seeded.training_a}/"))["run_id"] == seeded.training_a


async def test_get_unknown_run_is_404(stack: Stack) -> None:
    body = assert_error(
        await stack.http.get(f"{RUNS}/{UNKNOWN_RUN}"), 404, 5, f"Run not found: {UNKNOWN_RUN}"
    )
    assert body["details"] == run_not_found([UNKNOWN_RUN])


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("..%2F..%2Fetc", "../../etc"),
        ("..%2F..%2F..%2Fetc%2Fpasswd", "../../../etc/passwd"),
        ("%2e%2e", ".."),
        ("x%27%20OR%201%3D1", "x' OR 1=1"),
        ("-leading-dash", "-leading-dash"),
        ("a" * 257, "a" * 257),
    ],
)
async def test_malformed_run_ids_are_400_never_500(stack: Stack, raw: str, decoded: str) -> None:
    # tracking_svc/validation.py: a run id that breaks MLflow's own id rule
    # is INVALID_ARGUMENT (400), on every route that takes one.
    message = f"run_id {RUN_ID_RULE}, got {echo(decoded)}"
    for suffix in ("", "/metrics", "/params", "/metrics/oos_sharpe/history"):
        response = await stack.http.get(f"{RUNS}/{raw}{suffix}")
        assert_error(response, 400, 3, message, "run_id")


# --- /metrics, /params -----------------------------------------------------------


async def test_run_metrics_and_params(stack: Stack) -> None:
    seeded = stack.seeded
    for run_id in (seeded.training_a, seeded.cpcv_b, seeded.backtest_b, seeded.other):
        run = expected_runs(seeded)[run_id]
        metrics = ok(await stack.http.get(f"{RUNS}/{run_id}/metrics"))
        assert list(metrics) == ["run_id", "metrics"]
        assert metrics == {"run_id": run_id, "metrics": run.metrics}
        params = ok(await stack.http.get(f"{RUNS}/{run_id}/params"))
        assert list(params) == ["run_id", "params"]
        assert params == {"run_id": run_id, "params": run.params}
    # The same final values as the run detail.
    detail = ok(await stack.http.get(f"{RUNS}/{seeded.training_a}"))
    metrics = ok(await stack.http.get(f"{RUNS}/{seeded.training_a}/metrics"))
    assert metrics["metrics"] == detail["metrics"]


async def test_run_metrics_and_params_of_an_unknown_run_are_empty(stack: Stack) -> None:
    # As documented: 200 with {} (not 404).
    assert ok(await stack.http.get(f"{RUNS}/{UNKNOWN_RUN}/metrics")) == {
        "run_id": UNKNOWN_RUN,
        "metrics": {},
    }
    assert ok(await stack.http.get(f"{RUNS}/{UNKNOWN_RUN}/params")) == {
        "run_id": UNKNOWN_RUN,
        "params": {},
    }


# --- /metrics/{metric_key}/history -----------------------------------------------


async def test_metric_history_in_step_order(stack: Stack) -> None:
    seeded = stack.seeded
    run_id = seeded.walk_forward_a
    body = ok(await stack.http.get(f"{RUNS}/{run_id}/metrics/oos_sharpe/history"))
    assert list(body) == ["run_id", "metric_key", "history"]
    # Logged as folds 3, 0, 4, 1, 2: returned by step.
    assert body == {
        "run_id": run_id,
        "metric_key": "oos_sharpe",
        "history": [
            {"step": step, "timestamp": seeded.fold_timestamps[step], "value": FOLD_SHARPE[step]}
            for step in range(5)
        ],
    }
    for point in body["history"]:
        assert list(point) == ["step", "timestamp", "value"]
        assert type(point["step"]) is int
        assert type(point["timestamp"]) is int
    # A step logged twice: by step, then by time.
    cpcv = ok(await stack.http.get(f"{RUNS}/{seeded.cpcv_b}/metrics/oos_sharpe/history"))
    assert cpcv["history"] == [
        {"step": step, "timestamp": timestamp, "value": value}
        for step, timestamp, value in seeded.cpcv_history
    ]
    # A single value logged at step 0.
    single = ok(await stack.http.get(f"{RUNS}/{seeded.training_a}/metrics/rmse/history"))
    assert single == {
        "run_id": seeded.training_a,
        "metric_key": "rmse",
        "history": [{"step": 0, "timestamp": T0, "value": 0.2}],
    }
    # A metric the run never logged: an empty history.
    assert ok(await stack.http.get(f"{RUNS}/{run_id}/metrics/no_such_metric/history")) == {
        "run_id": run_id,
        "metric_key": "no_such_metric",
        "history": [],
    }


async def test_metric_history_keys_are_percent_decoded(stack: Stack, logged: Logged) -> None:
    run_id, start = logged.keyed, logged.keyed_start
    response = await stack.http.get(f"{RUNS}/{run_id}/metrics/fold%2Foos_sharpe/history")
    # NaN and ±inf are null, and the body is valid JSON.
    assert ok(response) == {
        "run_id": run_id,
        "metric_key": SLASHED_KEY,
        "history": [
            {"step": 0, "timestamp": start, "value": None},
            {"step": 1, "timestamp": start + 10, "value": None},
            {"step": 2, "timestamp": start + 20, "value": 0.5},
            {"step": 3, "timestamp": start + 30, "value": None},
        ],
    }
    response = await stack.http.get(f"{RUNS}/{run_id}/metrics/fold%20sharpe/history")
    assert ok(response) == {
        "run_id": run_id,
        "metric_key": SPACED_KEY,
        "history": [{"step": 7, "timestamp": start + 5, "value": 1.25}],
    }
    # The run's final values: the slashed metric ends at step 3 (-inf).
    assert ok(await stack.http.get(f"{RUNS}/{run_id}/metrics")) == {
        "run_id": run_id,
        "metrics": {SLASHED_KEY: None, SPACED_KEY: 1.25},
    }


async def test_metric_history_errors(stack: Stack) -> None:
    seeded = stack.seeded
    body = assert_error(
        await stack.http.get(f"{RUNS}/{UNKNOWN_RUN}/metrics/oos_sharpe/history"),
        404,
        5,
        f"Run not found: {UNKNOWN_RUN}",
    )
    assert body["details"] == run_not_found([UNKNOWN_RUN])
    rule = (
        "must be an MLflow metric name (letters, digits, spaces and '_./-:', "
        "at most 250 characters)"
    )
    for raw, decoded in (("bad%27key", "bad'key"), ("x%3By", "x;y"), ("k" * 251, "k" * 251)):
        assert_error(
            await stack.http.get(f"{RUNS}/{seeded.training_a}/metrics/{raw}/history"),
            400,
            3,
            f"metric_key {rule}, got {echo(decoded)}",
            "metric_key",
        )


# --- POST /api/v1/tracking/runs/compare ------------------------------------------


def lineage_entry(values: dict[str, Any]) -> dict[str, Any]:
    return {"values": values, "varies": len({json.dumps(v) for v in values.values()}) > 1}


# What each metric_diff entry holds against a baseline (CONTRACT §11).
BASELINE_FIGURES = ("baseline", "delta", "change_pct", "verdict")


def without_baseline(diff: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`diff` less the figures against a baseline, which must all be null
    (and come last, in proto order) since the request named none."""
    for key, entry in diff.items():
        assert list(entry)[-4:] == list(BASELINE_FIGURES), key
        assert [entry[figure] for figure in BASELINE_FIGURES] == [None] * 4, key
    return {
        key: {name: value for name, value in entry.items() if name not in BASELINE_FIGURES}
        for key, entry in diff.items()
    }


async def test_compare_reproduces_the_documented_example(
    mlflow_server: MlflowServer, logged: Logged
) -> None:
    ids = logged.example
    rename = dict(zip(DOC_IDS, ids, strict=True))

    def real_ids(value: Any) -> Any:
        """The document's example with its placeholder ids replaced."""
        if isinstance(value, dict):
            return {rename.get(k, k): real_ids(v) for k, v in value.items()}
        if isinstance(value, list):
            return [real_ids(v) for v in value]
        return rename.get(value, value) if isinstance(value, str) else value

    expected = real_ids(copy.deepcopy(DOC_COMPARE))
    # What CONTRACT §6/§7 add to the document's example: each metric's
    # direction (both maximised by the built-in rules), the lineage diff,
    # and each row's lifecycle stage (issue 11).
    for metric in expected["metric_diff"].values():
        metric["direction"] = "maximize"
    for row in expected["runs"]:
        row["lifecycle_stage"] = "active"
    expected["lineage_diff"] = {
        "strategy_id": lineage_entry(dict.fromkeys(ids, STRATEGY_A)),
        "run_type": lineage_entry(dict.fromkeys(ids, "training")),
        "git_commit": lineage_entry(dict(zip(ids, ["3f9a1c2", "3f9a1c2", "7d2e4b1"], strict=True))),
        "dataset_version": lineage_entry(dict.fromkeys(ids, "ds-2024-06")),
        "feature_version": lineage_entry(dict.fromkeys(ids, "v3")),
        "model_version": lineage_entry(dict(zip(ids, ["v1", "v1", "v2"], strict=True))),
        "signal_version": lineage_entry(dict.fromkeys(ids, None)),
    }
    assert [entry["varies"] for entry in expected["lineage_diff"].values()] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
    ]

    async with serve(mlflow_server.url, logged.example_experiment) as http:
        response = await http.post(COMPARE, json={"run_ids": list(ids)})
        body = ok(response)
        assert list(body) == [
            "runs",
            "metric_diff",
            "param_diff",
            "lineage_diff",
            "fold_stats",
            "paired",
            "overfitting",
        ]
        # One step per metric: no fold statistics; no baseline: no pairs.
        assert (body.pop("fold_stats"), body.pop("paired"), body.pop("overfitting")) == ({}, {}, {})
        body["metric_diff"] = without_baseline(body["metric_diff"])
        assert body == expected
        assert body["metric_diff"]["oos_sharpe"]["best_run_id"] == ids[0]
        assert body["metric_diff"]["max_drawdown"]["best_run_id"] == ids[0]
        assert all(entry["varies"] for entry in body["param_diff"].values())
        assert set(body["lineage_diff"]) == set(LINEAGE_TAGS)
        for row in body["runs"]:
            assert list(row) == [
                "run_id",
                "run_name",
                "run_type",
                "params",
                "metrics",
                "lifecycle_stage",
            ]
        # Params stay strings as MLflow stores them ("0.10", not 0.1).
        assert '"learning_rate":"0.10"' in response.text

        # The same three runs through the run search, newest first.
        listed = ok(
            await http.get(RUNS, params={"run_type": "training", "strategy_id": STRATEGY_A})
        )
        assert [run["run_id"] for run in listed["runs"]] == list(reversed(ids))
        assert [run["start_time"] for run in listed["runs"]] == list(
            reversed(logged.example_start_times)
        )
        first = ok(await http.get(f"{RUNS}/{ids[0]}"))
        assert (first["start_time"], first["end_time"]) == (DOC_START, DOC_END)


async def test_compare_rows_in_request_order_with_non_finite_values(stack: Stack) -> None:
    seeded = stack.seeded
    ids = [seeded.untagged, seeded.backtest_b, seeded.training_a, seeded.cpcv_b]
    u, bb, ta, cb = ids
    response = await stack.http.post(COMPARE, json={"run_ids": ids})
    body = ok(response)
    runs = expected_runs(seeded)
    assert body["runs"] == [
        {
            "run_id": run_id,
            "run_name": runs[run_id].run_name,
            # The untagged run has no run_type tag.
            "run_type": runs[run_id].lineage.get("run_type", "unknown"),
            "params": runs[run_id].params,
            "metrics": runs[run_id].metrics,
            "lifecycle_stage": "active",
        }
        for run_id in ids
    ]
    assert body["runs"][0]["run_type"] == "unknown"

    def values(*row: Any) -> dict[str, Any]:
        return dict(zip(ids, row, strict=True))

    assert without_baseline(body["metric_diff"]) == {
        "oos_sharpe": {
            "values": values(1.0, None, 1.42, 0.7),
            "best_run_id": ta,
            "direction": "maximize",
        },
        # NaN (cpcv_b) and +inf (backtest_b) are null and do not count.
        "calmar_ratio": {
            "values": values(None, None, 1.15, None),
            "best_run_id": ta,
            "direction": "maximize",
        },
        # NaN and -inf only: no best at all.
        "sortino": {
            "values": values(None, None, None, None),
            "best_run_id": None,
            "direction": "maximize",
        },
        "total_return": {
            "values": values(None, -0.05, None, None),
            "best_run_id": bb,
            "direction": "maximize",
        },
        "max_drawdown": {
            "values": values(None, None, -0.1231, None),
            "best_run_id": ta,
            "direction": "maximize",
        },
        "rmse": {
            "values": values(None, None, 0.2, None),
            "best_run_id": ta,
            "direction": "minimize",
        },
        "accuracy": {
            "values": values(None, None, 0.61, None),
            "best_run_id": ta,
            "direction": "maximize",
        },
        # No built-in rule: the tracking default, maximize.
        "custom_score": {
            "values": values(None, None, 3.0, None),
            "best_run_id": ta,
            "direction": "maximize",
        },
    }
    assert body["param_diff"] == {
        "learning_rate": {"values": values("0.05", None, "0.05", None), "varies": True},
        "initial_capital": {"values": values(None, "500000", None, None), "varies": True},
        "plugin_key": {"values": values(None, None, "ml.xgboost", None), "varies": True},
        "max_depth": {"values": values(None, None, "6", None), "varies": True},
        "n_estimators": {"values": values(None, None, "200", None), "varies": True},
        "subsample": {"values": values(None, None, "0.8", None), "varies": True},
        "n_groups": {"values": values(None, None, None, "6"), "varies": True},
    }
    assert body["lineage_diff"] == {
        tag: lineage_entry({run_id: runs[run_id].lineage.get(tag) for run_id in ids})
        for tag in LINEAGE_TAGS
    }
    assert body["lineage_diff"]["signal_version"] == {
        "values": values(None, None, "s2", None),
        "varies": True,
    }
    assert body["lineage_diff"]["run_type"] == {
        # The lineage diff shows the tag itself: null, not "unknown".
        "values": values(None, "backtest", "training", "cpcv"),
        "varies": True,
    }
    for token in ("NaN", "Infinity"):
        assert token not in response.text
    # Another order: the rows follow it.
    reordered = ok(await stack.http.post(COMPARE, json={"run_ids": [cb, ta, u, bb]}))
    assert [row["run_id"] for row in reordered["runs"]] == [cb, ta, u, bb]


async def test_compare_values_keys_follow_the_request_order(stack: Stack) -> None:
    """CONTRACT §7: `values` holds every compared id in request order (the
    `key_order` field option tells the gateway which request field orders it)."""
    # Reverse-sorted: neither sorted order nor insertion by id can pass by luck.
    ids = sorted(stack.seeded.newest_first, reverse=True)
    body = ok(await stack.http.post(COMPARE, json={"run_ids": ids}))
    assert [row["run_id"] for row in body["runs"]] == ids
    for section in ("metric_diff", "param_diff", "lineage_diff"):
        for key, entry in body[section].items():
            assert list(entry["values"]) == ids, (section, key)


async def test_compare_against_a_baseline_lists_every_run_in_request_order(stack: Stack) -> None:
    """CONTRACT §11 through the gateway: the objects keyed by run id follow
    the request, and those marked `every_key` (`delta`, `change_pct`, each
    metric of `fold_stats`) hold every compared run, null where the service
    sent no entry."""
    seeded = stack.seeded
    # Walk-forward: oos_sharpe at 5 steps; cpcv: at 2; training: at 1 only.
    wf, cb, ta = seeded.walk_forward_a, seeded.cpcv_b, seeded.training_a
    ids = [cb, ta, wf]
    body = ok(await stack.http.post(COMPARE, json={"run_ids": ids, "baseline_run_id": wf}))
    sharpe = body["metric_diff"]["oos_sharpe"]
    assert sharpe["baseline"] == FOLD_SHARPE[4]  # the run's final value, at its last step
    for figure in ("delta", "change_pct", "verdict"):
        assert list(sharpe[figure]) == ids, figure
    assert sharpe["delta"][wf] == 0
    assert sharpe["verdict"] == {cb: "worse", ta: "better", wf: "baseline"}
    # Only training_a has `accuracy`; the baseline lacks it: every delta is null.
    accuracy = body["metric_diff"]["accuracy"]
    assert accuracy["baseline"] is None
    assert accuracy["delta"] == {cb: None, ta: None, wf: None}
    assert list(accuracy["delta"]) == ids
    assert accuracy["change_pct"] == {cb: None, ta: None, wf: None}
    assert list(accuracy["verdict"]) == ids
    # A metric with fewer than two steps in a run: that run is null.
    folds = body["fold_stats"]["oos_sharpe"]
    assert list(folds) == ids
    assert folds[ta] is None
    assert list(folds[wf]) == [
        "folds",
        "mean",
        "std",
        "min",
        "max",
        "worst",
        "positive_share",
        "skipped",
    ]
    assert (folds[wf]["folds"], folds[wf]["min"], folds[wf]["max"]) == (5, -0.2, 1.6)
    assert folds[cb]["folds"] == 2
    # Every run but the baseline, in request order (no `every_key` here).
    assert list(body["paired"]["oos_sharpe"]) == [cb, ta]


async def test_compare_refuses_a_baseline_it_does_not_compare(stack: Stack) -> None:
    seeded = stack.seeded
    ids = [seeded.training_a, seeded.training_b]
    outsider = seeded.walk_forward_a
    response = await stack.http.post(COMPARE, json={"run_ids": ids, "baseline_run_id": outsider})
    message = f"baseline_run_id must be one of the compared ids, got '{outsider}'"
    assert_error(response, 400, 3, message, "baseline_run_id")
    twice = (
        f'{{"run_ids": ["{ids[0]}", "{ids[1]}"], '
        f'"baseline_run_id": "{ids[0]}", "baseline_run_id": "{ids[1]}"}}'
    )
    response = await stack.http.post(
        COMPARE, content=twice, headers={"Content-Type": "application/json"}
    )
    message = "baseline_run_id is given twice in one object of the body; send each key once"
    assert_error(response, 400, 3, message, "baseline_run_id")


async def test_compare_direction_overrides_and_ties(stack: Stack) -> None:
    seeded = stack.seeded
    ta, tb = seeded.training_a, seeded.training_b
    response = await stack.http.post(
        COMPARE,
        json={
            "run_ids": [tb, ta],
            "maximize": ["rmse", "no_such_metric"],
            "minimize": ["oos_sharpe", "custom_score"],
        },
    )
    diff = ok(response)["metric_diff"]
    assert without_baseline(diff) == {
        "oos_sharpe": {
            "values": {tb: 1.18, ta: 1.42},
            "best_run_id": tb,
            "direction": "minimize",
        },
        "rmse": {"values": {tb: 0.1, ta: 0.2}, "best_run_id": ta, "direction": "maximize"},
        "custom_score": {
            "values": {tb: 5.0, ta: 3.0},
            "best_run_id": ta,
            "direction": "minimize",
        },
        # Not overridden: the built-in rule (drawdowns: -0.12 beats -0.15).
        "max_drawdown": {
            "values": {tb: -0.1544, ta: -0.1231},
            "best_run_id": ta,
            "direction": "maximize",
        },
        # A tie goes to the earliest id of the request.
        "accuracy": {"values": {tb: 0.61, ta: 0.61}, "best_run_id": tb, "direction": "maximize"},
        "calmar_ratio": {
            "values": {tb: None, ta: 1.15},
            "best_run_id": ta,
            "direction": "maximize",
        },
    }
    # Without overrides the built-in rules and the maximize default apply.
    plain = ok(await stack.http.post(COMPARE, json={"run_ids": [ta, tb]}))["metric_diff"]
    assert {key: (entry["direction"], entry["best_run_id"]) for key, entry in plain.items()} == {
        "oos_sharpe": ("maximize", ta),
        "rmse": ("minimize", tb),
        "custom_score": ("maximize", tb),
        "max_drawdown": ("maximize", ta),
        "accuracy": ("maximize", ta),
        "calmar_ratio": ("maximize", ta),
    }
    assert_error(
        await stack.http.post(
            COMPARE, json={"run_ids": [ta, tb], "maximize": ["rmse"], "minimize": ["rmse"]}
        ),
        400,
        3,
        "maximize and minimize both name 'rmse'",
        "maximize",
    )


async def test_compare_refuses_bad_id_lists(stack: Stack) -> None:
    seeded = stack.seeded
    ta, tb = seeded.training_a, seeded.training_b
    eleven = [*seeded.newest_first, seeded.other, UNKNOWN_RUN, UNKNOWN_RUN_2, "abc"]
    assert len(set(eleven)) == 11
    cases: list[tuple[Any, str, str]] = [
        ({"run_ids": []}, "run_ids", "run_ids must hold 2 to 10 ids, got 0"),
        ({}, "run_ids", "run_ids must hold 2 to 10 ids, got 0"),
        ({"run_ids": [ta]}, "run_ids", "run_ids must hold 2 to 10 ids, got 1"),
        ({"run_ids": eleven}, "run_ids", "run_ids must hold 2 to 10 ids, got 11"),
        ({"run_ids": [ta, ta]}, "run_ids", f"run_ids must be distinct; repeated: {ta}"),
        (
            {"run_ids": [ta, tb, ta, tb]},
            "run_ids",
            f"run_ids must be distinct; repeated: {', '.join(sorted([ta, tb]))}",
        ),
        (
            {"run_ids": [ta, "../etc"]},
            "run_ids[1]",
            f"run_ids[1] {RUN_ID_RULE}, got '../etc'",
        ),
        (
            {"run_ids": ["x' OR 1=1", ta]},
            "run_ids[0]",
            f'run_ids[0] {RUN_ID_RULE}, got "x\' OR 1=1"',
        ),
        ({"run_ids": ta}, "run_ids", "run_ids must be a JSON array, got a string"),
        ({"run_ids": [ta, 7]}, "run_ids[1]", "run_ids[1] must be a string, got a number"),
        (
            {"run_ids": [ta, tb], "maximize": "rmse"},
            "maximize",
            "maximize must be a JSON array, got a string",
        ),
        (
            {"run_ids": [ta, tb], "runids": [ta, tb]},
            "runids",
            "runids is not a field of CompareRunsRequest (unknown field)",
        ),
    ]
    for body, field, message in cases:
        assert_error(await stack.http.post(COMPARE, json=body), 400, 3, message, field)
    assert_error(
        await stack.http.post(COMPARE, json=[ta, tb]),
        400,
        3,
        "the body must be a JSON object, got an array",
    )


async def test_compare_unknown_ids_are_404_listing_every_missing_id(stack: Stack) -> None:
    seeded = stack.seeded
    # The other experiment's run is found too: only the two unknown ids miss.
    ids = [seeded.training_a, UNKNOWN_RUN, seeded.other, UNKNOWN_RUN_2]
    body = assert_error(
        await stack.http.post(COMPARE, json={"run_ids": ids}),
        404,
        5,
        f"Run not found: {UNKNOWN_RUN}, {UNKNOWN_RUN_2}",
    )
    assert body["details"] == run_not_found([UNKNOWN_RUN, UNKNOWN_RUN_2])
    # Every id unknown.
    body = assert_error(
        await stack.http.post(COMPARE, json={"run_ids": [UNKNOWN_RUN_2, UNKNOWN_RUN]}),
        404,
        5,
        f"Run not found: {UNKNOWN_RUN_2}, {UNKNOWN_RUN}",
    )
    assert body["details"] == run_not_found([UNKNOWN_RUN_2, UNKNOWN_RUN])
    # A run of another experiment compares like any other.
    found = ok(await stack.http.post(COMPARE, json={"run_ids": [seeded.other, seeded.training_a]}))
    assert [row["run_id"] for row in found["runs"]] == [seeded.other, seeded.training_a]
    assert without_baseline(found["metric_diff"])["oos_sharpe"] == {
        "values": {seeded.other: 2.0, seeded.training_a: 1.42},
        "best_run_id": seeded.other,
        "direction": "maximize",
    }


# --- GET /api/v1/tracking/experiments --------------------------------------------


async def test_list_experiments(stack: Stack) -> None:
    seeded = stack.seeded
    body = ok(await stack.http.get(EXPERIMENTS))
    assert list(body) == ["experiments"]
    for experiment in body["experiments"]:
        assert list(experiment) == ["experiment_id", "name", "artifact_location", "lifecycle_stage"]
    by_name = {experiment["name"]: experiment for experiment in body["experiments"]}
    root = stack.mlflow.artifact_root
    for name, experiment_id in (
        (seeded.experiment_name, seeded.experiment_id),
        (seeded.other_experiment_name, seeded.other_experiment_id),
    ):
        assert by_name[name] == {
            "experiment_id": experiment_id,
            "name": name,
            "artifact_location": str(root / experiment_id),
            "lifecycle_stage": "active",
        }
    assert seeded.bulk_experiment_name in by_name
    # MLflow's own "Default" experiment, id "0", as in the document's example.
    assert by_name["Default"] == {
        "experiment_id": "0",
        "name": "Default",
        "artifact_location": str(root / "0"),
        "lifecycle_stage": "active",
    }


# --- MLflow unreachable ----------------------------------------------------------


async def _assert_unavailable(http: httpx.AsyncClient, within: float) -> None:
    """Every tracking route answers 503 (never 404, never 500, never an
    empty 200) within `within` seconds."""
    calls: list[tuple[str, str, Any]] = [
        ("GET", RUNS, None),
        ("GET", f"{RUNS}/{UNKNOWN_RUN}", None),
        ("GET", f"{RUNS}/{UNKNOWN_RUN}/metrics", None),
        ("GET", f"{RUNS}/{UNKNOWN_RUN}/params", None),
        ("GET", f"{RUNS}/{UNKNOWN_RUN}/metrics/oos_sharpe/history", None),
        ("POST", COMPARE, {"run_ids": [UNKNOWN_RUN, UNKNOWN_RUN_2]}),
        ("GET", EXPERIMENTS, None),
    ]

    async def timed(method: str, url: str, body: Any) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = await http.request(method, url, json=body)
        return response, time.monotonic() - started

    results = await asyncio.gather(*(timed(*call) for call in calls))
    for (method, url, _), (response, took) in zip(calls, results, strict=True):
        assert_error(response, 503, 14, MLFLOW_DOWN)
        assert took < within, (method, url, took)


async def test_mlflow_down_is_503_fast_and_readyz_names_tracking(stack: Stack) -> None:
    # Nothing listens on this port: connections are refused.
    closed = f"http://127.0.0.1:{free_port()}"
    async with serve(closed, "hedge-fund-research", f"127.0.0.1:{stack.experiments.port}") as http:
        started = time.monotonic()
        response = await http.get(RUNS)
        assert time.monotonic() - started < 5.0
        assert_error(response, 503, 14, MLFLOW_DOWN)
        await _assert_unavailable(http, 5.0)
        ready = await http.get("/readyz")
        assert ready.status_code == 503, ready.text
        body = strict_json(ready)
        tracking_address = body["message"].split("(", 1)[1].split(")", 1)[0]
        message = f"not ready: tracking ({tracking_address}) is NOT_SERVING"
        assert body == {
            "code": 14,
            "message": message,
            "detail": message,
            "details": [],
            "upstreams": {"experiments": "SERVING", "tracking": "NOT_SERVING"},
        }
    # The shared stack, in front of the real MLflow, is ready throughout.
    assert ok(await stack.http.get("/readyz"))["upstreams"] == {
        "experiments": "SERVING",
        "tracking": "SERVING",
    }


@pytest.fixture
def silent_mlflow() -> Iterator[str]:
    """An "MLflow" that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_mlflow_that_never_answers_is_503_within_the_deadline(silent_mlflow: str) -> None:
    # MLflow's client would retry for minutes; the caller waits at most the
    # request deadline (5 s) and gets 503, not 504. (tracking_svc's start-up
    # probe and its stop each wait out MLFLOW_TIMEOUT, 4 s, here.)
    async with serve(silent_mlflow, "hedge-fund-research") as http:
        started = time.monotonic()
        response = await http.get(RUNS)
        took = time.monotonic() - started
        assert_error(response, 503, 14, MLFLOW_SILENT)
        assert took < 5.0, took
