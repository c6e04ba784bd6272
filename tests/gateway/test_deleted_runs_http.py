"""A run deleted in MLflow, over HTTP end to end (issue 11): MLflow still
serves it by id until its garbage collection, so GetRun and CompareRuns say
`"lifecycle_stage": "deleted"`, and ImportRun refuses it (400 /
FAILED_PRECONDITION naming the run) instead of recording it."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.mlflow import STRATEGY_A
from tests.fixtures.stack import Stack
from tracking_svc.lineage import Lineage, start_run

RUNS = "/api/v1/tracking/runs"
PRECONDITION_FAILURE = "type.googleapis.com/google.rpc.PreconditionFailure"


@pytest.fixture
def deleted_run(stack: Stack) -> str:
    """A fully tagged training run of the stack's default experiment, deleted
    in MLflow (run search leaves it out: the seeded listings are unchanged)."""
    client = MlflowClient(tracking_uri=stack.mlflow.url)
    lineage = Lineage(STRATEGY_A, "training", "3f9a1c2", "ds-2024-06", "v3", "v1")
    run_id = str(start_run(client, stack.seeded.experiment_id, lineage).info.run_id)
    client.log_metric(run_id, "oos_sharpe", 0.5)
    client.set_terminated(run_id)
    client.delete_run(run_id)
    return run_id


async def test_get_run_of_a_deleted_run_says_it_is_deleted(stack: Stack, deleted_run: str) -> None:
    run = MlflowClient(tracking_uri=stack.mlflow.url).get_run(deleted_run)
    response = await stack.http.get(f"{RUNS}/{deleted_run}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "run_id": deleted_run,
        "run_name": run.info.run_name,
        "status": "FINISHED",
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "artifact_uri": run.info.artifact_uri,
        "params": {},
        "metrics": {"oos_sharpe": 0.5},
        "tags": run.data.tags,
        "experiment_id": stack.seeded.experiment_id,
        "lifecycle_stage": "deleted",
    }


async def test_compare_says_which_runs_are_deleted(stack: Stack, deleted_run: str) -> None:
    ids = [deleted_run, stack.seeded.training_a]
    response = await stack.http.post(f"{RUNS}/compare", json={"run_ids": ids})
    assert response.status_code == 200, response.text
    rows = response.json()["runs"]
    assert [(row["run_id"], row["lifecycle_stage"]) for row in rows] == [
        (deleted_run, "deleted"),
        (stack.seeded.training_a, "active"),
    ]


async def test_import_of_a_deleted_run_is_400_naming_it(stack: Stack, deleted_run: str) -> None:
    response = await stack.http.post(
        "/api/v1/experiments/import", json={"mlflow_run_id": deleted_run}
    )
    message = f"MLflow run {deleted_run} is deleted; restore it in MLflow before importing it"
    assert response.status_code == 400, response.text
    assert response.json() == {
        "code": 9,
        "message": message,
        "detail": message,
        "details": [
            {
                "@type": PRECONDITION_FAILURE,
                "violations": [
                    {"type": "LIFECYCLE_STAGE", "subject": deleted_run, "description": message}
                ],
            }
        ],
    }
    # Nothing was recorded.
    assert (await stack.http.get("/api/v1/experiments")).json() == []
