"""The backbone as a deployment runs it, for the scenarios that go through
the whole stack: experiments_svc and the gateway as their own processes
(`python -m ...`), and tracking_svc when an MLflow server is given, each on
a free loopback port; this checkout's code, or another commit's
(`bench.source_tree`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.processes import BenchProcess, spawn, stopping
from bench.source_tree import SourceTree
from testbed.ports import free_port


@dataclass(frozen=True)
class Stack:
    experiments: BenchProcess
    gateway: BenchProcess
    tracking: BenchProcess | None
    experiments_address: str
    tracking_address: str
    gateway_url: str

    @property
    def processes(self) -> list[BenchProcess]:
        found = [self.experiments, self.gateway]
        return found if self.tracking is None else [*found, self.tracking]


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str,
    log_dir: Path,
    mlflow_url: str | None = None,
    mlflow_experiment: str = "bench",
    tree: SourceTree | None = None,
) -> AsyncIterator[Stack]:
    experiments_address = f"127.0.0.1:{free_port()}"
    tracking_address = f"127.0.0.1:{free_port()}"
    gateway_address = f"127.0.0.1:{free_port()}"
    common = {"EXPERIMENTS_ADDR": experiments_address, "TRACKING_ADDR": tracking_address}
    cwd = None
    if tree is not None:
        common.update(tree.env())
        cwd = tree.root
    async with stopping([]) as started:
        experiments = await spawn(
            "experiments_svc",
            ["-m", "experiments_svc"],
            {**common, "DATABASE_URL": database_url},
            log_dir,
            cwd,
        )
        started.append(experiments)
        tracking = None
        if mlflow_url is not None:
            tracking = await spawn(
                "tracking_svc",
                ["-m", "tracking_svc"],
                {
                    **common,
                    "MLFLOW_TRACKING_URI": mlflow_url,
                    "MLFLOW_EXPERIMENT_NAME": mlflow_experiment,
                },
                log_dir,
                cwd,
            )
            started.append(tracking)
        gateway = await spawn(
            "gateway", ["-m", "gateway"], {**common, "GATEWAY_ADDR": gateway_address}, log_dir, cwd
        )
        started.append(gateway)
        await experiments.wait_grpc(experiments_address)
        if tracking is not None:
            await tracking.wait_grpc(tracking_address)
        # /readyz wants every upstream; without tracking_svc, /healthz says
        # the gateway itself is up.
        probe = "/readyz" if tracking is not None else "/healthz"
        await gateway.wait_http(f"http://{gateway_address}{probe}")
        yield Stack(
            experiments,
            gateway,
            tracking,
            experiments_address,
            tracking_address,
            f"http://{gateway_address}",
        )
