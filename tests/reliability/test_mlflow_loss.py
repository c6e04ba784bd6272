"""MLflow loss under tracking load: a real `mlflow server` (this test's own)
killed with SIGKILL and started again on its port while the gateway serves
tracking and experiments routes. Tracking routes are 503 within 5 s while
it is down, experiments routes never notice, tracking recovers without a
restart, and no MLflow worker thread is left stuck."""

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
from tests.reliability.backbone import Backbone, wait_for_serving
from tests.reliability.conftest import Record
from tests.reliability.load import Recorder, run_workers, status_names, wait_for
from tracking_svc.lineage import Lineage, start_run

pytestmark = pytest.mark.postgres

QUOTA = 1500
WORKERS = 4
TRACKING_WORKERS = 4  # the pool of MLflow's blocking client in tracking_svc
CONTRACT_BOUND = 5.0  # CONTRACT §6: 503 within the request deadline
RECOVERY_BOUND = 5.0


@pytest.fixture
async def setup(
    migrated_postgres: str, tmp_path: Path
) -> AsyncIterator[tuple[Backbone, MlflowServer]]:
    mlflow = MlflowServer(tmp_path / "mlflow")
    await asyncio.to_thread(mlflow.start)
    try:
        async with Backbone(
            tmp_path,
            migrated_postgres,
            mlflow.url,
            "reliability-mlflow",
            extra_env={"TRACKING_WORKERS": str(TRACKING_WORKERS)},
        ) as stack:
            yield stack, mlflow
    finally:
        await asyncio.to_thread(mlflow.stop)


async def test_mlflow_killed_and_restarted(
    setup: tuple[Backbone, MlflowServer], figures: Record
) -> None:
    backbone, mlflow = setup
    client = MlflowClient(tracking_uri=mlflow.url)
    experiment = client.get_experiment_by_name(backbone.experiment_name)
    assert experiment is not None
    run = start_run(client, experiment.experiment_id, Lineage(str(uuid.uuid4()), "training"))
    run_id = str(run.info.run_id)
    client.log_metric(run_id, "oos_sharpe", 1.25)
    strategy = str(uuid.uuid4())
    recorder = Recorder()
    stop = asyncio.Event()
    wrong: list[object] = []

    async def step(worker: int, n: int) -> None:
        if worker == 0:
            url = "/api/v1/experiments"
            await recorder.request(http, "experiments", "POST", url, json={"strategy_id": strategy})
        elif worker == 1:
            params = {"run_type": "training", "limit": 5}
            await recorder.request(http, "tracking", "GET", "/api/v1/tracking/runs", params=params)
        else:
            url = f"/api/v1/tracking/runs/{run_id}/metrics"
            response = await recorder.request(http, "tracking", "GET", url)
            if response is None:
                return
            expected = {
                200: {"run_id": run_id, "metrics": {"oos_sharpe": 1.25}},
                503: "UNAVAILABLE",
            }.get(response.status_code)
            body = response.json()
            seen = (
                body
                if response.status_code == 200
                else ("UNAVAILABLE" if body["code"] == 14 else body)
            )
            if seen != expected:
                wrong.append(body)

    tracking = backbone.processes["tracking_svc"]
    address = backbone.address("tracking_svc")
    async with httpx.AsyncClient(base_url=backbone.base_url) as http:
        load = asyncio.ensure_future(run_workers(step, WORKERS, stop, QUOTA))
        try:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(mlflow.kill)
            down_at = time.monotonic()
            await asyncio.sleep(3.0)
            restart_at = time.monotonic()
            await asyncio.to_thread(mlflow.start)
            up_at = time.monotonic()
            serving_after = await wait_for_serving(address, within=RECOVERY_BOUND)
            await wait_for(
                lambda: recorder.first_success_after(up_at, "tracking") is not None,
                within=RECOVERY_BOUND,
            )
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await load

        # More calls at once than the pool has threads, right after the
        # outage: each is answered at once, so no thread is still stuck on
        # the dead server.
        burst_started = time.monotonic()
        burst = await asyncio.gather(
            *(
                http.get(f"/api/v1/tracking/runs/{run_id}", timeout=CONTRACT_BOUND)
                for _ in range(TRACKING_WORKERS * 3)
            )
        )
        burst_took = time.monotonic() - burst_started

    recovered = recorder.first_success_after(up_at, "tracking")
    assert recovered is not None
    during = recorder.within(down_at, restart_at, "tracking")
    figures(
        requests=len(recorder.outcomes),
        statuses={k: status_names(recorder.statuses(k)) for k in ("tracking", "experiments")},
        while_down=len(during),
        slowest_503_s=round(max(o.took for o in recorder.of("tracking") if o.status == 503), 2),
        mlflow_start_s=round(up_at - restart_at, 2),
        serving_after_mlflow_up_s=round(serving_after, 2),
        first_2xx_after_mlflow_up_s=round(recovered, 2),
        burst=len(burst),
        burst_took_s=round(burst_took, 2),
    )
    assert not wrong
    assert during
    assert {o.status for o in during} == {503}
    assert set(recorder.statuses("tracking")) == {200, 503}
    assert all(o.took < CONTRACT_BOUND for o in recorder.of("tracking"))
    assert set(recorder.statuses("experiments")) == {201}
    assert serving_after < RECOVERY_BOUND
    assert recovered < RECOVERY_BOUND
    assert [r.status_code for r in burst] == [200] * len(burst)
    assert burst_took < CONTRACT_BOUND
    assert tracking.process.returncode is None
