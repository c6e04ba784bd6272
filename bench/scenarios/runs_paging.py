"""8. Paging through 1,000 MLflow runs: the façade against MLflow's own
REST paging, on the same `mlflow server`, over the same runs.

1,000 runs (distinct start times, lineage tags, params and metrics) are
logged into the experiment tracking_svc lists (its MLFLOW_EXPERIMENT_NAME).
A walk is every page of 100 from the first to the last:

- the façade over gRPC: TrackingService.ListRuns(page_size=100), following
  `next_page_token` (keyset paging: from the second page on it asks MLflow
  for the runs started at or before the last one seen);
- the façade over HTTP: GET /api/v1/tracking/runs?page_size=100 through the
  gateway, following the `Link` header;
- MLflow: POST /api/2.0/mlflow/runs/search {max_results: 100, order_by
  start_time DESC}, following its `next_page_token` (an offset).

Each façade walk is alternated with an MLflow walk, round after round, a
few walks per side and round; the ratio is taken per round (of the round's
medians). Every walk must give the same 1,000 run ids in the same order as
the others and as the start times say, or the scenario fails: a fast walk
that skips or repeats a run would be no result.
Target: a façade walk <= 1.2x MLflow's."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from grpc import aio
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from bench.alternate import Alternation, alternate
from bench.context import Context
from bench.database import bench_database
from bench.paging import HttpWalker, Walk, walk_grpc
from bench.report import Row, ratio_text
from bench.stack import running_stack
from bench.stats import summarize
from research.tracking.v1 import tracking_pb2_grpc
from testbed.mlflow_server import MlflowServer
from tracking_svc.lineage import RUN_TYPES, Lineage, start_run

TARGET = 1.2
EXPERIMENT = "bench-paging"
RUNS = 1_000
PAGE_SIZE = 100  # the façade's largest page (CONTRACT §10)
WALKS_PER_ROUND = 3
STRATEGIES = 10
# 2026-01-01T00:00:00Z in milliseconds; run i starts i seconds later, so no
# two runs share a start time and the expected order is known.
_EPOCH_MS = 1_767_225_600_000


def _log_run(client: MlflowClient, experiment_id: str, i: int) -> tuple[int, str]:
    """Run i, as training code logs one: created with its lineage, a few
    params and metrics in one batch, then finished."""
    start = _EPOCH_MS + i * 1000
    lineage = Lineage(
        strategy_id=str(uuid.UUID(int=i % STRATEGIES + 1)),
        run_type=RUN_TYPES[i % len(RUN_TYPES)],
        git_commit=f"c{i:06x}",
        dataset_version=f"ds-{i % 7:04d}",
    )
    run_id = start_run(client, experiment_id, lineage, start_time=start).info.run_id
    metrics = {"oos_sharpe": (i % 300) / 100, "is_sharpe": (i % 250) / 80, "mse": (i % 97) / 1000}
    params = {"max_depth": str(i % 12), "learning_rate": str(0.01 * (i % 9)), "seed": str(i)}
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, start + 500, 0) for key, value in metrics.items()],
        params=[Param(key, value) for key, value in params.items()],
    )
    client.set_terminated(run_id, end_time=start + 900)
    return start, run_id


def seed(server: MlflowServer, experiment: str, count: int) -> tuple[str, list[str]]:
    """`count` runs in a new experiment; its id and the run ids newest
    first (the order every walk must give). The experiment is created
    through the server (so that it has the server's artifact root); the runs
    are logged through MLflow's own SQL store, the file the server serves,
    one at a time (SQLite takes one writer): 22 ms a run here against 70 ms
    over REST, and the seeding is not what is measured."""
    experiment_id = str(MlflowClient(tracking_uri=server.url).create_experiment(experiment))
    store = MlflowClient(tracking_uri=server.store_uri)
    logged = [_log_run(store, experiment_id, i) for i in range(count)]
    return experiment_id, [run_id for _, run_id in sorted(logged, reverse=True)]


async def _walks(walk: Callable[[], Awaitable[Walk]], expected: list[str]) -> list[Walk]:
    """WALKS_PER_ROUND walks of one side, each checked against `expected`."""
    done = []
    for _ in range(WALKS_PER_ROUND):
        result = await walk()
        if result.run_ids != expected:
            same = len(set(result.run_ids) & set(expected))
            raise RuntimeError(
                f"a walk gave {len(result.run_ids)} runs ({same} of the {len(expected)} "
                "expected), or another order"
            )
        done.append(result)
    return done


def _round_median(walks: list[Walk]) -> float:
    return statistics.median(walk.milliseconds for walk in walks)


def _figures(result: Alternation[list[Walk]]) -> dict[str, Any]:
    ours = [walk.milliseconds for walks in result.ours for walk in walks]
    theirs = [walk.milliseconds for walks in result.theirs for walk in walks]
    return {
        "facade_walk_ms": summarize(ours),
        "mlflow_walk_ms": summarize(theirs),
        "ratio": result.ratio(_round_median),
        "facade_requests": result.ours[0][0].requests,
        "mlflow_requests": result.theirs[0][0].requests,
    }


async def run(context: Context) -> None:
    rounds = max(context.options.rounds * 2, 6)
    with tempfile.TemporaryDirectory() as folder, MlflowServer(Path(folder)) as mlflow:
        started = time.perf_counter()
        experiment_id, expected = await asyncio.to_thread(seed, mlflow, EXPERIMENT, RUNS)
        seed_seconds = time.perf_counter() - started
        print(f"  logged {RUNS:,} runs (+{seed_seconds:.0f} s)", flush=True)
        search = {
            "experiment_ids": [experiment_id],
            "max_results": PAGE_SIZE,
            "order_by": ["attributes.start_time DESC"],
        }
        async with (
            bench_database("bench_paging") as url,
            running_stack(url, context.work, mlflow.url, EXPERIMENT) as stack,
            aio.insecure_channel(stack.tracking_address) as channel,
        ):
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            gateway, direct = HttpWalker(stack.gateway_url), HttpWalker(mlflow.url)
            mlflow_walk = partial(
                asyncio.to_thread, direct.walk_search, "/api/2.0/mlflow/runs/search", search
            )
            sides: dict[str, Callable[[], Awaitable[Walk]]] = {
                "gRPC ListRuns": partial(walk_grpc, stub, PAGE_SIZE),
                "HTTP via the gateway": partial(
                    asyncio.to_thread,
                    gateway.walk_links,
                    f"/api/v1/tracking/runs?page_size={PAGE_SIZE}",
                ),
            }
            figures: dict[str, Any] = {"runs": RUNS, "page_size": PAGE_SIZE}
            figures["seed_seconds"] = seed_seconds
            try:
                for label, facade_walk in sides.items():
                    result = await alternate(
                        partial(_walks, facade_walk, expected),
                        partial(_walks, mlflow_walk, expected),
                        rounds,
                    )
                    figures[label] = _figures(result)
            finally:
                gateway.close()
                direct.close()
    context.report.figures["runs_paging"] = figures
    for label in sides:
        _report(context, label, figures[label])


def _report(context: Context, label: str, figures: dict[str, Any]) -> None:
    ours, theirs, cost = figures["facade_walk_ms"], figures["mlflow_walk_ms"], figures["ratio"]
    context.report.add(
        Row(
            "8 runs paging",
            f"walk of {RUNS:,} runs by {PAGE_SIZE}, same ids and order: façade {label} "
            f"p50 {ours['median']:.0f} ms (p90 {ours['p90']:.0f}, {figures['facade_requests']} "
            f"requests) vs MLflow runs/search p50 {theirs['median']:.0f} ms "
            f"(p90 {theirs['p90']:.0f}, {figures['mlflow_requests']} requests)",
            ratio_text(cost),
            f"<= {TARGET:.1f}x",
            cost["median"] <= TARGET,
        )
    )
