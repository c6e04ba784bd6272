"""Replicas behind one gateway (CONTRACT §13): two experiments_svc and two
tracking_svc processes, the gateway dialling each pair as a list of
addresses (round_robin), a steady mixed load through the gateway, and one
replica of each killed with SIGKILL mid-run.

What must hold: no read fails (a read that was on the killed replica is
retried on the other one, inside its deadline); every create either was
acknowledged and is stored exactly once, or was refused with a clear 503 (or
lost its answer) and then completes, without a duplicate, when the client
retries it with the same request_id; the restarted replicas receive calls
again, as their own request log shows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from testbed.mlflow_server import MlflowServer
from testbed.ports import free_port
from tests.processes import ServiceProcess, start
from tests.reliability.backbone import COMMON_ENV, wait_until_ready
from tests.reliability.conftest import Record
from tests.reliability.load import NO_ANSWER, Recorder, run_workers, status_names
from tracking_svc.lineage import Lineage, start_run

pytestmark = pytest.mark.postgres

REPLICAS = ("a", "b")
READS = ("get", "list", "compare", "run", "runs")
UNAVAILABLE = 14  # the gRPC code in a 503's body
WORKERS = 6
QUOTA = 400
DOWN = 2.0  # seconds between the kill and the restart
AFTER = 3.0  # seconds of load after the restart
BURST = 48  # calls sent together just before the kill
BURST_LEAD = 0.03  # seconds between the burst and the kill


@dataclass
class Replicated:
    """Two replicas of each service and the gateway in front of them."""

    workdir: Path
    database_url: str
    mlflow_uri: str
    experiment_name: str
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for module in ("experiments_svc", "tracking_svc"):
            for replica in REPLICAS:
                self.ports[f"{module}-{replica}"] = free_port()
        self.ports["gateway"] = free_port()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def targets(self, module: str) -> str:
        return ",".join(f"127.0.0.1:{self.ports[f'{module}-{r}']}" for r in REPLICAS)

    def env(self, name: str) -> dict[str, str]:
        env = {
            **COMMON_ENV,
            "DATABASE_URL": self.database_url,
            "AUTO_MIGRATE": "false",
            "DB_TIMEOUT": "2",
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLFLOW_EXPERIMENT_NAME": self.experiment_name,
            "MLFLOW_TIMEOUT": "2",
            # Where each dials the others: every replica, as a list.
            "EXPERIMENTS_ADDR": self.targets("experiments_svc"),
            "TRACKING_ADDR": self.targets("tracking_svc"),
            "GATEWAY_ADDR": f"127.0.0.1:{self.ports['gateway']}",
        }
        # Where this one listens.
        if name.startswith("experiments_svc"):
            env["EXPERIMENTS_ADDR"] = f"127.0.0.1:{self.ports[name]}"
        elif name.startswith("tracking_svc"):
            env["TRACKING_ADDR"] = f"127.0.0.1:{self.ports[name]}"
        return env

    async def start(self, name: str) -> ServiceProcess:
        module = name.split("-")[0]
        process = await start(module, self.env(name), self.workdir)
        self.processes[name] = process
        assert await process.listening_port() == self.ports[name]
        return process

    async def kill(self, name: str) -> None:
        await self.processes[name].kill()

    async def __aenter__(self) -> Replicated:
        try:
            await asyncio.gather(*(self.start(name) for name in self.ports if name != "gateway"))
            await self.start("gateway")
            async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as http:
                await wait_until_ready(http, within=20)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for process in self.processes.values():
            await process.kill()


@pytest.fixture
async def replicated(
    migrated_postgres: str, mlflow_server: MlflowServer, tmp_path: Path
) -> AsyncIterator[Replicated]:
    name = f"reliability-replicas-{uuid.uuid4().hex[:8]}"
    async with Replicated(tmp_path, migrated_postgres, mlflow_server.url, name) as stack:
        yield stack


def calls_logged(process: ServiceProcess, since: int) -> Counter[str]:
    """The RPCs `process` logged (one line per call) from its line `since`
    on, by method, leaving out health checks."""
    return Counter(
        str(line["rpc"])
        for line in process.lines[since:]
        if "rpc" in line and "grpc.health" not in str(line["rpc"])
    )


async def test_one_replica_of_each_killed_mid_run(
    replicated: Replicated, mlflow_server: MlflowServer, figures: Record
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_experiment_by_name(replicated.experiment_name)
    assert experiment is not None
    strategy = str(uuid.uuid4())
    run_ids = [
        str(start_run(client, experiment.experiment_id, Lineage(strategy, "training")).info.run_id)
        for _ in range(3)
    ]
    recorder = Recorder()
    stop = asyncio.Event()
    # request_id -> the body sent and the first id acknowledged for it (None: not yet).
    creates: dict[str, dict[str, Any]] = {}
    acknowledged: dict[str, str] = {}
    unanswered: list[tuple[str, int]] = []

    async with httpx.AsyncClient(base_url=replicated.base_url) as http:
        seeded = [
            (await http.post("/api/v1/experiments", json={"strategy_id": strategy})).json()["id"]
            for _ in range(3)
        ]

        async def create(worker: int, n: int) -> None:
            request_id = str(uuid.uuid4())
            body = {"strategy_id": strategy, "request_id": request_id, "metrics": {"n": n}}
            creates[request_id] = body
            response = await recorder.request(
                http, "create", "POST", "/api/v1/experiments", json=body
            )
            if response is not None and response.status_code == 201:
                acknowledged[request_id] = response.json()["id"]
            else:
                status = NO_ANSWER if response is None else response.status_code
                if response is not None:
                    # A refusal is the contract's error body, saying why.
                    assert response.json()["code"] == UNAVAILABLE, response.text
                    assert response.json()["message"], response.text
                unanswered.append((request_id, status))

        async def step(worker: int, n: int) -> None:
            kind = READS[(worker + n) % len(READS)] if worker else "create"
            if kind == "create":
                await create(worker, n)
            elif kind == "get":
                url = f"/api/v1/experiments/{seeded[n % len(seeded)]}"
                await recorder.request(http, kind, "GET", url)
            elif kind == "list":
                url = f"/api/v1/experiments?strategy_id={strategy}&limit=20"
                await recorder.request(http, kind, "GET", url)
            elif kind == "compare":
                url = "/api/v1/experiments/compare"
                await recorder.request(http, kind, "POST", url, json=seeded)
            elif kind == "run":
                url = f"/api/v1/tracking/runs/{run_ids[n % len(run_ids)]}"
                await recorder.request(http, kind, "GET", url)
            else:
                url = "/api/v1/tracking/runs/compare"
                await recorder.request(http, kind, "POST", url, json={"run_ids": run_ids})

        load = asyncio.ensure_future(run_workers(step, WORKERS, stop, QUOTA))
        try:
            await asyncio.sleep(1.5)
            # A burst of calls of every kind, so that some are in flight on
            # the replicas when they die (the steady load may have none there).
            burst = asyncio.gather(*(step(n % WORKERS, QUOTA + n) for n in range(BURST)))
            await asyncio.sleep(BURST_LEAD)
            killed_at = time.monotonic()
            await asyncio.gather(
                replicated.kill("experiments_svc-a"), replicated.kill("tracking_svc-a")
            )
            await burst
            await asyncio.sleep(DOWN)
            await asyncio.gather(
                replicated.start("experiments_svc-a"), replicated.start("tracking_svc-a")
            )
            restarted_at = time.monotonic()
            marks = {name: len(replicated.processes[name].lines) for name in replicated.processes}
            await asyncio.sleep(AFTER)
        finally:
            stop.set()
            await load

        # The client's own retry of what was refused or lost its answer,
        # with the same request_id and body.
        retried: Counter[int] = Counter()
        for request_id, _status in unanswered:
            response = await http.post("/api/v1/experiments", json=creates[request_id])
            retried[response.status_code] += 1
            assert response.status_code == 201, response.text
            acknowledged[request_id] = response.json()["id"]

        # Every experiment of the strategy, read to the end through Link.
        stored: list[dict[str, Any]] = []
        url: str | None = f"/api/v1/experiments?strategy_id={strategy}&page_size=100"
        while url is not None:
            page = await http.get(url)
            assert page.status_code == 200, page.text
            stored.extend(page.json())
            url = page.links.get("next", {}).get("url")

    reads = recorder.of(*READS)
    writes = recorder.of("create")
    during = [o for o in recorder.outcomes if killed_at <= o.started <= restarted_at]
    figures(
        reads=len(reads),
        read_statuses=status_names(recorder.statuses(*READS)),
        reads_while_down=len([o for o in during if o.kind in READS]),
        creates=len(writes),
        create_statuses=status_names(recorder.statuses("create")),
        creates_retried=sum(retried.values()),
        stored=len(stored) - len(seeded),
        slowest_read_s=round(recorder.slowest(*READS), 3),
        restarted_calls={
            name: sum(calls_logged(replicated.processes[name], marks[name]).values())
            for name in ("experiments_svc-a", "tracking_svc-a")
        },
    )

    # Zero failed reads, through the kill and the restart.
    assert recorder.statuses(*READS) == {200: len(reads)}
    assert len([o for o in during if o.kind in READS]) > 0
    # Writes: acknowledged, or refused with 503 / unanswered and then completed.
    assert set(recorder.statuses("create")) <= {201, 503, NO_ANSWER}
    assert len(creates) == len(writes) == len(acknowledged)
    # Exactly once: as many rows as creates, each the one its request_id named.
    assert len(stored) - len(seeded) == len(creates)
    assert len(set(acknowledged.values())) == len(creates)
    assert {row["id"] for row in stored} - set(seeded) == set(acknowledged.values())
    # The restarted replicas receive calls again (their own request log).
    assert calls_logged(replicated.processes["experiments_svc-a"], marks["experiments_svc-a"])
    assert calls_logged(replicated.processes["tracking_svc-a"], marks["tracking_svc-a"])
