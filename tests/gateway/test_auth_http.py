"""API_TOKENS over HTTP: the gateway answers 401 with a Bearer challenge and
the contract's body; with the token, the call goes through the gateway and
each service, which check the same tokens again (ImportRun crosses all
three). Probes and CORS preflights stay open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from research_common.auth import MISSING, WRONG, Tokens
from tests.fixtures.stack import guarded_stack
from tracking_svc.lineage import Lineage, start_run

TOKEN = "gw-token.1"
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
ORIGIN = "http://notebook.example:8888"


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """All three processes with API_TOKENS set; the client and the MLflow URI."""
    async with guarded_stack(tmp_path, Tokens((TOKEN,)), (ORIGIN,)) as (http, mlflow_uri):
        yield http, mlflow_uri


async def test_no_token_is_401_with_a_bearer_challenge(
    guarded: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = guarded
    for method, path in [
        ("GET", "/api/v1/experiments"),
        ("POST", "/api/v1/experiments"),
        ("GET", "/api/v1/tracking/runs"),
        ("GET", "/api/v1/no/such/route"),  # nothing is learnt without a token
    ]:
        response = await http.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="research"'
        assert response.json() == {"code": 16, "message": MISSING, "detail": MISSING, "details": []}


async def test_a_wrong_token_is_401_invalid_token(guarded: tuple[httpx.AsyncClient, str]) -> None:
    http, _ = guarded
    response = await http.get("/api/v1/experiments", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="research", error="invalid_token"'
    assert response.json()["message"] == WRONG


async def test_with_the_token_every_hop_accepts_it(guarded: tuple[httpx.AsyncClient, str]) -> None:
    http, mlflow_uri = guarded
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = await http.post("/api/v1/experiments", json={"strategy_id": STRATEGY}, headers=auth)
    assert created.status_code == 201, created.text
    runs = await http.get("/api/v1/tracking/runs", headers=auth)
    assert runs.status_code == 200, runs.text

    # gateway -> experiments_svc -> tracking_svc, the token checked at each.
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("hedge-fund-research")
    assert experiment is not None
    run = start_run(
        client, experiment.experiment_id, Lineage(strategy_id=STRATEGY, run_type="training")
    )
    imported = await http.post(
        "/api/v1/experiments/import", json={"mlflow_run_id": run.info.run_id}, headers=auth
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["mlflow_run_id"] == run.info.run_id


async def test_probes_and_preflights_stay_open(guarded: tuple[httpx.AsyncClient, str]) -> None:
    http, _ = guarded
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200
    preflight = await http.options(
        "/api/v1/experiments",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
