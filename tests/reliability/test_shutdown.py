"""Graceful shutdown under load: SIGTERM to each of the three processes
while requests are in flight through the gateway. The in-flight calls
complete (held open on purpose: a table lock, or MLflow answering slowly),
new ones are refused cleanly (503 from the gateway, or a refused connection
when the gateway itself stops), the process exits 0, and no answer is a 5xx
other than 503."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from mlflow.tracking import MlflowClient

from testbed.mlflow_server import MlflowServer
from tests.counting_proxy import CountingProxy
from tests.reliability.backbone import Backbone
from tests.reliability.conftest import Record
from tests.reliability.load import NO_ANSWER, Recorder, run_workers, status_names
from tracking_svc.lineage import Lineage, start_run

pytestmark = pytest.mark.postgres

HELD = 3  # calls held in flight at SIGTERM
HOLD = 1.0  # seconds they stay held after SIGTERM (SHUTDOWN_GRACE is 5)
QUOTA = 300
LONG_DEADLINE = {"Grpc-Timeout": "20S"}  # held calls must not time out first


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[CountingProxy]:
    with CountingProxy(mlflow_server.port) as counting:
        yield counting


@pytest.fixture
async def backbone(
    migrated_postgres: str, proxy: CountingProxy, tmp_path: Path
) -> AsyncIterator[Backbone]:
    name = f"reliability-shutdown-{uuid.uuid4().hex[:8]}"
    # The held creates wait on a table lock: DB_TIMEOUT must outlast it.
    async with Backbone(
        tmp_path, migrated_postgres, proxy.url, name, extra_env={"DB_TIMEOUT": "5"}
    ) as stack:
        yield stack


async def refusals(module: str, base_url: str) -> list[int | None]:
    """Statuses of new calls (None: connection refused) made one after
    another on fresh connections until one is refused; at most 5 s."""
    path = {
        "experiments_svc": "/api/v1/experiments/not-a-uuid",
        "tracking_svc": "/api/v1/tracking/runs/not..a..run",
        "gateway": "/healthz",
    }[module]
    seen: list[int | None] = []
    async with asyncio.timeout(5):
        while not seen or seen[-1] in (200, 400):
            try:
                async with httpx.AsyncClient(base_url=base_url, timeout=3) as fresh:
                    seen.append((await fresh.get(path)).status_code)
            except httpx.TransportError:
                seen.append(None)
            await asyncio.sleep(0.02)
    return seen


@pytest.mark.parametrize("module", ["experiments_svc", "tracking_svc", "gateway"])
async def test_sigterm_under_load_drains_and_exits_0(
    backbone: Backbone,
    proxy: CountingProxy,
    migrated_postgres: str,
    mlflow_server: MlflowServer,
    module: str,
    figures: Record,
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_experiment_by_name(backbone.experiment_name)
    assert experiment is not None
    run = start_run(client, experiment.experiment_id, Lineage(str(uuid.uuid4()), "training"))
    run_id = str(run.info.run_id)
    strategy = str(uuid.uuid4())
    create = {"strategy_id": strategy}
    tracking_route = module == "tracking_svc"
    recorder = Recorder()
    stop = asyncio.Event()
    created: list[str] = []

    async def call(kind: str) -> httpx.Response | None:
        if tracking_route:
            url = f"/api/v1/tracking/runs/{run_id}"
            return await recorder.request(http, kind, "GET", url, headers=LONG_DEADLINE)
        response = await recorder.request(
            http, kind, "POST", "/api/v1/experiments", json=create, headers=LONG_DEADLINE
        )
        if response is not None and response.status_code == 201:
            created.append(response.json()["id"])
        return response

    async def step(worker: int, n: int) -> None:
        await call("load")

    process = backbone.processes[module]
    blocker = await asyncpg.connect(migrated_postgres)
    lock = blocker.transaction()
    async with httpx.AsyncClient(base_url=backbone.base_url) as http:
        load = asyncio.ensure_future(run_workers(step, 2, stop, QUOTA))
        try:
            await asyncio.sleep(1.0)
            # Hold calls in flight: the table locked, or MLflow slowed down.
            with proxy.delayed(1.5 if tracking_route else 0.0):
                if not tracking_route:
                    await lock.start()
                    await blocker.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
                held = [asyncio.ensure_future(call("held")) for _ in range(HELD)]
                await asyncio.sleep(0.5)
                assert not any(task.done() for task in held)
                process.terminate()
                signalled_at = time.monotonic()
                await process.wait_for_log("stopping", within=5)
                assert not any(task.done() for task in held)
                # New calls, until they are refused: a call the service
                # answers without MLflow or the database (a malformed id, 400)
                # while it still accepts calls, then 503 from the gateway; the
                # gateway's own probe on a new connection, until refused.
                probes = await refusals(module, backbone.base_url)
                # (MLflow's slow answers may complete the held tracking calls
                # by now; the locked creates cannot.)
                assert tracking_route or not any(task.done() for task in held)
                if not tracking_route:
                    await asyncio.sleep(HOLD)
                    await lock.rollback()
                held_answers = await asyncio.gather(*held)
            code = await process.wait(within=15)
            exited_after = time.monotonic() - signalled_at
        finally:
            stop.set()
            await load
            await blocker.close()

    statuses = recorder.statuses()
    figures(
        requests=len(recorder.outcomes),
        statuses=status_names(statuses),
        held=len(held_answers),
        cancelled_by_shutdown=statuses.get(499, 0),
        new_calls=[NO_ANSWER if p is None else p for p in probes],
        exit_code=code,
        exit_after_sigterm_s=round(exited_after, 2),
    )
    assert code == 0
    ok = 200 if tracking_route else 201
    assert [answer.status_code if answer else None for answer in held_answers] == [ok] * HELD
    if module == "gateway":
        # Served until the listener closed; then the connection is refused.
        assert probes[-1] is None
        assert set(probes[:-1]) <= {200}
    else:
        assert probes[-1] == 503
        assert set(probes[:-1]) <= {400}
    assert not [status for status in statuses if status >= 500 and status != 503]
    answered_before = [o for o in recorder.of("load") if o.ended < signalled_at]
    assert answered_before
    assert {o.status for o in answered_before} == {ok}
    if module == "gateway":
        # Only refusals of new connections after SIGTERM, never an error status.
        assert set(statuses) <= {ok, NO_ANSWER}
    else:
        # A call that races the service's shutdown may be cancelled by
        # grpc-core instead of refused; the contract's table makes that 499.
        # Only calls begun after SIGTERM, never one that was in flight.
        assert set(statuses) <= {ok, 503, 499}
        raced = [o for o in recorder.outcomes if o.status == 499]
        assert all(o.started >= signalled_at for o in raced)
    if not tracking_route:
        # Every acknowledged create is stored (read from the database itself,
        # since the gateway may be the process that stopped).
        reader = await asyncpg.connect(migrated_postgres)
        try:
            rows = await reader.fetch(
                "SELECT id::text FROM experiments WHERE strategy_id = $1::uuid", strategy
            )
        finally:
            await reader.close()
        assert {row["id"] for row in rows} >= set(created)
        assert len(created) >= HELD
