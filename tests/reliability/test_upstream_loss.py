"""Upstream loss under gateway load: each gRPC service process killed
(SIGKILL) and started again on its address while the gateway keeps
serving. Its routes are 503 while it is down (the other service's routes
stay 200), /readyz is 503 naming it, and its routes recover without a
gateway restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from testbed.mlflow_server import MlflowServer
from tests.reliability.backbone import Backbone, wait_until_ready
from tests.reliability.conftest import Record
from tests.reliability.load import Recorder, run_workers, status_names, wait_for
from tracking_svc.lineage import Lineage, start_run

pytestmark = pytest.mark.postgres

QUOTA = 600
DOWN = 2.0  # seconds between the kill and the restart
RECOVERY_BOUND = 5.0  # seconds from the restarted service listening
KIND = {"experiments_svc": "experiments", "tracking_svc": "tracking"}


@pytest.fixture
async def backbone(
    migrated_postgres: str, mlflow_server: MlflowServer, tmp_path: Path
) -> AsyncIterator[Backbone]:
    name = f"reliability-upstream-{uuid.uuid4().hex[:8]}"
    async with Backbone(tmp_path, migrated_postgres, mlflow_server.url, name) as stack:
        yield stack


@pytest.mark.parametrize("module", ["experiments_svc", "tracking_svc"])
async def test_an_upstream_killed_and_restarted(
    backbone: Backbone, mlflow_server: MlflowServer, module: str, figures: Record
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_experiment_by_name(backbone.experiment_name)
    assert experiment is not None  # tracking_svc created it at start-up
    run = start_run(client, experiment.experiment_id, Lineage(str(uuid.uuid4()), "training"))
    run_id = str(run.info.run_id)
    strategy = str(uuid.uuid4())
    recorder = Recorder()
    stop = asyncio.Event()
    created: list[str] = []

    async def step(worker: int, n: int) -> None:
        if worker == 0:
            body = {"strategy_id": strategy, "metrics": {"n": n}}
            response = await recorder.request(
                http, "experiments", "POST", "/api/v1/experiments", json=body
            )
            if response is not None and response.status_code == 201:
                created.append(response.json()["id"])
        else:
            url = f"/api/v1/tracking/runs/{run_id}"
            await recorder.request(http, "tracking", "GET", url)

    gateway = backbone.processes["gateway"]
    async with httpx.AsyncClient(base_url=backbone.base_url) as http:
        load = asyncio.ensure_future(run_workers(step, 2, stop, QUOTA))
        try:
            await asyncio.sleep(1.0)
            await backbone.kill(module)
            down_at = time.monotonic()
            await asyncio.sleep(DOWN / 2)
            ready = await http.get("/readyz")
            await asyncio.sleep(DOWN / 2)
            restarted_at = time.monotonic()
            await backbone.start(module)
            listening_at = time.monotonic()
            kind = KIND[module]
            await wait_for(
                lambda: recorder.first_success_after(listening_at, kind) is not None,
                within=RECOVERY_BOUND,
            )
            await wait_until_ready(http, within=RECOVERY_BOUND)
            ready_after = time.monotonic() - listening_at
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await load
        listed = await http.get(
            "/api/v1/experiments", params={"strategy_id": strategy, "limit": 1000}
        )

    other = next(k for k in KIND.values() if k != kind)
    recovered = recorder.first_success_after(listening_at, kind)
    assert recovered is not None
    during = recorder.within(down_at, restarted_at, kind)
    figures(
        requests=len(recorder.outcomes),
        statuses={k: status_names(recorder.statuses(k)) for k in KIND.values()},
        while_down=len(during),
        restart_to_listening_s=round(listening_at - restarted_at, 2),
        first_2xx_after_listening_s=round(recovered, 2),
        readyz_200_after_listening_s=round(ready_after, 2),
        slowest_s=round(recorder.slowest(), 2),
    )
    assert ready.status_code == 503
    body = ready.json()
    assert body["code"] == 14
    assert body["message"].startswith(f"not ready: {kind} ({backbone.address(module)}) is ")
    assert body["upstreams"][kind] != "SERVING"
    assert body["upstreams"][other] == "SERVING"
    assert during
    assert {o.status for o in during} == {503}
    assert set(recorder.statuses(kind)) <= {200, 201, 503}
    assert set(recorder.statuses(other)) == {201 if other == "experiments" else 200}
    assert recovered < RECOVERY_BOUND
    assert ready_after < RECOVERY_BOUND
    assert recorder.slowest() < RECOVERY_BOUND
    # Every acknowledged create is stored; the gateway was never restarted.
    assert {row["id"] for row in listed.json()} >= set(created)
    assert gateway.process.returncode is None
