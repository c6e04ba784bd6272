"""Read-only tokens over HTTP, through the real gateway and both services:
every route of a writing method answers a `:read` token 403 with the
contract's error body naming the token and the method, every reading route
answers it as usual, and a full token writes. The gateway's access-log
line names the token and never shows its secret."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from research_common.auth import Tokens
from research_common.logging import JsonFormatter, TextFormatter
from tests.fixtures.stack import guarded_stack
from tracking_svc.lineage import Lineage, start_run

WRITER = "w-secret.9f2c"
READER = "r-secret.7ab1"
TOKENS = f"ci-writer:{WRITER},ci-reader:{READER}:read"
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
SERVICE = "research.experiments.v1.ExperimentService"
PERMISSION_DENIED = 7


@dataclass
class _Stack:
    http: httpx.AsyncClient
    mlflow: MlflowClient

    def run(self) -> str:
        """A new MLflow run in the default experiment, which ImportRun can record."""
        experiment = self.mlflow.get_experiment_by_name("hedge-fund-research")
        assert experiment is not None
        run = start_run(
            self.mlflow,
            experiment.experiment_id,
            Lineage(strategy_id=STRATEGY, run_type="training"),
        )
        return str(run.info.run_id)


WRITE = {"Authorization": f"Bearer {WRITER}"}
READ = {"Authorization": f"Bearer {READER}"}


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str | None:
    """experiments_svc's database: None for SQLite under the test's folder
    (unless a test is parametrized with "postgresql": then the session's
    PostgreSQL database, emptied). Resolved outside the event loop, as the
    PostgreSQL fixtures need."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url: str = request.getfixturevalue("experiments_database")
    return url


# Both databases, for a test that asks for them.
BOTH_DATABASES = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def stack(tmp_path: Path, database: str | None) -> AsyncIterator[_Stack]:
    """All three processes with TOKENS."""
    async with guarded_stack(tmp_path, Tokens(TOKENS), database_url=database) as (
        http,
        mlflow_uri,
    ):
        yield _Stack(http, MlflowClient(tracking_uri=mlflow_uri))


async def _create(stack: _Stack) -> str:
    created = await stack.http.post(
        "/api/v1/experiments", json={"strategy_id": STRATEGY}, headers=WRITE
    )
    assert created.status_code == 201, created.text
    experiment_id: str = created.json()["id"]
    return experiment_id


@BOTH_DATABASES
async def test_a_read_token_is_403_on_every_writing_route(stack: _Stack) -> None:
    experiment_id = await _create(stack)
    path = f"/api/v1/experiments/{experiment_id}"
    before = (await stack.http.get(path, headers=READ)).json()
    writes: list[tuple[str, str, object, str]] = [
        ("POST", "/api/v1/experiments", {"strategy_id": STRATEGY}, "CreateExperiment"),
        ("PATCH", path, {"metrics": {"sharpe": 1.5}}, "UpdateExperiment"),
        ("DELETE", path, None, "DeleteExperiment"),
        ("POST", f"{path}:undelete", {}, "UndeleteExperiment"),
        ("POST", "/api/v1/experiments/import", {"mlflow_run_id": stack.run()}, "ImportRun"),
    ]
    for method, url, body, rpc in writes:
        response = await stack.http.request(
            method, url, headers=READ, content=None if body is None else json.dumps(body)
        )
        message = f"token 'ci-reader' is read-only and cannot call {SERVICE}/{rpc}"
        assert response.status_code == 403, (method, url, response.text)
        assert response.json() == {
            "code": PERMISSION_DENIED,
            "message": message,
            "detail": message,
            "details": [],
        }
    # Nothing was written.
    listed = await stack.http.get("/api/v1/experiments", headers=READ)
    assert listed.status_code == 200, listed.text
    assert listed.json() == [before]


async def test_a_read_token_reads_every_reading_route(stack: _Stack) -> None:
    ids = [await _create(stack), await _create(stack)]
    run_ids = [stack.run(), stack.run()]
    reads: list[tuple[str, str, object]] = [
        ("GET", "/api/v1/experiments", None),
        ("GET", f"/api/v1/experiments/{ids[0]}", None),
        ("HEAD", f"/api/v1/experiments/{ids[0]}", None),
        ("POST", "/api/v1/experiments/compare", ids),
        ("GET", f"/api/v1/experiments/{ids[0]}/revisions", None),
        ("GET", f"/api/v1/experiments/{ids[0]}/revisions/1", None),
        ("GET", "/api/v1/tracking/runs", None),
        ("GET", f"/api/v1/tracking/runs/{run_ids[0]}", None),
        ("GET", f"/api/v1/tracking/runs/{run_ids[0]}/metrics", None),
        ("GET", f"/api/v1/tracking/runs/{run_ids[0]}/metrics/loss/history", None),
        ("GET", f"/api/v1/tracking/runs/{run_ids[0]}/params", None),
        ("POST", "/api/v1/tracking/runs/compare", {"run_ids": run_ids}),
        ("GET", "/api/v1/tracking/experiments", None),
    ]
    for method, url, body in reads:
        response = await stack.http.request(
            method, url, headers=READ, content=None if body is None else json.dumps(body)
        )
        assert response.status_code == 200, (method, url, response.text)
    revision = await stack.http.get(f"/api/v1/experiments/{ids[0]}/revisions/1", headers=READ)
    assert revision.json()["actor"] == "ci-writer"


async def test_a_full_token_writes_through_every_writing_route(stack: _Stack) -> None:
    experiment_id = await _create(stack)
    path = f"/api/v1/experiments/{experiment_id}"
    patched = await stack.http.patch(path, json={"metrics": {"sharpe": 1.5}}, headers=WRITE)
    assert patched.status_code == 200, patched.text
    deleted = await stack.http.delete(path, headers=WRITE)
    assert deleted.status_code == 204, deleted.text
    undeleted = await stack.http.post(f"{path}:undelete", json={}, headers=WRITE)
    assert undeleted.status_code == 200, undeleted.text
    imported = await stack.http.post(
        "/api/v1/experiments/import", json={"mlflow_run_id": stack.run()}, headers=WRITE
    )
    assert imported.status_code == 201, imported.text


async def test_the_access_log_names_the_token_and_never_shows_a_secret(
    stack: _Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await _create(stack)
    assert (await stack.http.get("/api/v1/experiments", headers=READ)).status_code == 200
    refused = await stack.http.post(
        "/api/v1/experiments", json={"strategy_id": STRATEGY}, headers=READ
    )
    assert refused.status_code == 403
    wrong = await stack.http.get("/api/v1/experiments", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    records = [r for r in caplog.records if r.name == "gateway.http"]
    lines = [(r.getMessage(), getattr(r, "actor", "absent")) for r in records]
    assert lines == [
        ("POST /api/v1/experiments 201", "ci-writer"),
        ("GET /api/v1/experiments 200", "ci-reader"),
        ("POST /api/v1/experiments 403", "ci-reader"),
        ("GET /api/v1/experiments 401", None),
    ]
    text, machine = TextFormatter("gateway"), JsonFormatter("gateway")
    for record, (_, actor) in zip(records, lines, strict=True):
        line, document = text.format(record), json.loads(machine.format(record))
        assert document["actor"] == actor
        assert (f"actor={actor}" in line.split()) is (actor is not None), line
    # The services log the same names for the calls that reached them.
    services = [getattr(r, "actor", "absent") for r in caplog.records if r.name == "research.rpc"]
    assert services == ["ci-writer", "ci-reader", "ci-reader"]
    for secret in (WRITER, READER):
        assert secret not in caplog.text
