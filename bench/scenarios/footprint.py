"""6. Footprint: start-up time (spawn to SERVING, or to /readyz 200 for the
gateway) and resident memory after a warm-up of each process (GETs, a list
and a compare with its statistics), started one
after the other as `python -m <package>`; and whether experiments_svc or the
gateway ever imports mlflow, seen by Python itself (`-X importtime`, set
through PYTHONPROFILEIMPORTTIME, logs every import, lazy ones included) over
a run with the same warm-up.
Targets: experiments_svc and gateway <= 80 MB RSS each; neither imports mlflow."""

from __future__ import annotations

import json
import re
from typing import Any

from bench.context import Context
from bench.database import bench_database, fetch_ids, load_rows, strategy_id
from bench.http_timing import Timer
from bench.processes import BenchProcess, spawn, stopping
from bench.report import Row
from bench.stats import summarize
from testbed.ports import free_port

TARGET_MB = 80.0
WARMUP_REQUESTS = 100  # per route
_MLFLOW_IMPORT = re.compile(r"^import time:.*\|\s*mlflow(\.|\s*$)", re.MULTILINE)


async def _one_start(
    context: Context, url: str, mlflow_uri: str, env: dict[str, str], tag: str
) -> dict[str, BenchProcess]:
    """Start the three processes in turn, warm them up, and leave them running."""
    experiments_address = f"127.0.0.1:{free_port()}"
    tracking_address = f"127.0.0.1:{free_port()}"
    gateway_address = f"127.0.0.1:{free_port()}"
    common = {"EXPERIMENTS_ADDR": experiments_address, "TRACKING_ADDR": tracking_address, **env}
    experiments = await spawn(
        f"experiments_svc{tag}", ["-m", "experiments_svc"], {**common, "DATABASE_URL": url},
        context.work,
    )  # fmt: skip
    processes = {"experiments_svc": experiments}
    await experiments.wait_grpc(experiments_address)
    tracking = await spawn(
        f"tracking_svc{tag}", ["-m", "tracking_svc"], {**common, "MLFLOW_TRACKING_URI": mlflow_uri},
        context.work,
    )  # fmt: skip
    processes["tracking_svc"] = tracking
    await tracking.wait_grpc(tracking_address)
    gateway = await spawn(
        f"gateway{tag}", ["-m", "gateway"], {**common, "GATEWAY_ADDR": gateway_address},
        context.work,
    )  # fmt: skip
    processes["gateway"] = gateway
    await gateway.wait_http(f"http://{gateway_address}/readyz")
    ids = await fetch_ids(url, 10)
    timer = Timer(f"http://{gateway_address}")
    try:
        for path in (
            f"/api/v1/experiments/{ids[0]}",
            f"/api/v1/experiments?strategy_id={strategy_id(1)}&limit=100",
            "/api/v1/tracking/runs?limit=10",
        ):
            await timer.median_ms("GET", path, count=WARMUP_REQUESTS)
        # A compare of ten against a baseline, with the deflated Sharpe ratio
        # of `oos_sharpe` over the strategy's 10,000 trials (§11).
        compare = json.dumps(ids[:10]).encode()
        path = f"/api/v1/experiments/compare?baseline={ids[0]}"
        await timer.median_ms("POST", path, compare, count=WARMUP_REQUESTS)
    finally:
        timer.close()
    return processes


async def run(context: Context) -> None:
    starts = 2 if context.options.rounds < 5 else 3
    ready: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    imports: dict[str, bool] = {}
    no_migrate_rss = 0.0
    mlflow_uri = f"sqlite:///{context.work / 'footprint-mlflow.db'}"
    async with bench_database("bench_footprint") as url:
        await load_rows(url, 1, 10_000)
        # After the measured starts: one as a deployment that migrates in a
        # separate step runs it (AUTO_MIGRATE=false, the database is already
        # migrated), then one that only checks imports.
        no_migrate, profiling_start = starts, starts + 1
        for number in range(starts + 2):
            profiling = number == profiling_start
            env = {"PYTHONPROFILEIMPORTTIME": "1"} if profiling else {}
            if number == no_migrate:
                env = {"AUTO_MIGRATE": "false"}
            async with stopping([]) as started:
                processes = await _one_start(context, url, mlflow_uri, env, f"-{number}")
                started.extend(processes.values())
                if number == no_migrate:
                    no_migrate_rss = processes["experiments_svc"].rss_mb()
                for name, process in processes.items():
                    if profiling or number == no_migrate:
                        continue
                    assert process.ready_after is not None
                    # The first start of tracking_svc also creates MLflow's store.
                    if number > 0 or name != "tracking_svc":
                        ready.setdefault(name, []).append(process.ready_after)
                    rss.setdefault(name, []).append(process.rss_mb())
            if profiling:
                for name, process in processes.items():
                    imports[name] = bool(_MLFLOW_IMPORT.search(process.log_text()))
    figures: dict[str, Any] = {}
    for name in ("experiments_svc", "gateway", "tracking_svc"):
        start, memory = summarize(ready[name]), summarize(rss[name])
        figures[name] = {"ready_s": start, "rss_mb": memory, "imports_mlflow": imports[name]}
        checked = name != "tracking_svc"
        met = memory["median"] <= TARGET_MB and not imports[name] if checked else None
        context.report.add(
            Row(
                "6 footprint",
                f"{name}: start-up to ready, RSS after warm-up, imports mlflow",
                f"{start['median']:.2f} s; {memory['median']:.1f} MB "
                f"(max {max(rss[name]):.1f}); mlflow {'imported' if imports[name] else 'never'}",
                f"<= {TARGET_MB:.0f} MB, no mlflow" if checked else "",
                met,
            )
        )
    figures["experiments_svc_auto_migrate_false_rss_mb"] = no_migrate_rss
    context.report.add(
        Row(
            "6 footprint",
            "experiments_svc with AUTO_MIGRATE=false (as docker-compose.yml runs it): RSS",
            f"{no_migrate_rss:.1f} MB",
            f"<= {TARGET_MB:.0f} MB",
            no_migrate_rss <= TARGET_MB,
        )
    )
    context.report.figures["footprint"] = figures
