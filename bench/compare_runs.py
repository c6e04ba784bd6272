"""CompareRuns of 10 runs against the seed design's 10 sequential `get_run`
calls, and against CompareRuns of 10 walk-forward runs with a baseline and
fold statistics, on the same real `mlflow server`, measured side by side.

    .venv/bin/python -m bench.compare_runs [--rounds 30] [--json out.json]

Starts an `mlflow server` on a free loopback port (temporary store), seeds
10 runs with lineage tags, 12 params and 12 metrics each, serves tracking_svc
in-process on port 0, then alternates the two ways of fetching the 10 runs,
round after round, so both see the same machine load. Prints medians, the
spread (p10-p90) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import tempfile
import time
import uuid
from pathlib import Path

from grpc import aio
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from bench.stats import summarize
from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from testbed.mlflow_server import MlflowServer
from tracking_svc.config import Settings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.process import configure_process
from tracking_svc.server import create_server

EXPERIMENT = "bench-compare"
RUNS = 10
# Folds of the runs the statistics are measured on: 16 folds is the most
# PBO splits (C(16, 8) = 12,870).
FOLDS = 16


def seed_runs(client: MlflowClient, experiment: str = EXPERIMENT, folds: int = 0) -> list[str]:
    """10 finished runs of one strategy in MLflow experiment `experiment`
    (made when absent); with `folds`, each also logs two metrics once per
    fold (walk-forward)."""
    existing = client.get_experiment_by_name(experiment)
    experiment_id = (
        existing.experiment_id if existing is not None else client.create_experiment(experiment)
    )
    strategy = str(uuid.uuid4())
    run_ids = []
    for i in range(RUNS):
        run = start_run(
            client,
            experiment_id,
            Lineage(strategy_id=strategy, run_type="training", git_commit=f"c{i:06x}"),
        )
        run_id = run.info.run_id
        for k in range(12):
            client.log_param(run_id, f"param_{k}", str(i * k))
            client.log_metric(run_id, f"metric_{k}_sharpe", i + k / 10)
        if folds:
            rng = random.Random(i)
            client.log_batch(
                run_id,
                metrics=[
                    Metric(name, rng.gauss(mean, 0.3), 1_000 + fold, fold)
                    for fold in range(folds)
                    for name, mean in (("oos_sharpe", 1.0), ("oos_mse", 2.0))
                ],
            )
        client.set_terminated(run_id)
        run_ids.append(run_id)
    return run_ids


@dataclasses.dataclass(frozen=True)
class Result:
    rounds: int
    compare_runs_grpc: dict[str, float]  # milliseconds
    sequential_get_run: dict[str, float]  # milliseconds
    speedup: dict[str, float]  # sequential / compare, per round
    # CompareRuns(10) of runs with FOLDS folds of two metrics, with a
    # baseline: fold statistics, paired statistics and PBO (milliseconds),
    # and its cost per round against the plain compare above.
    compare_with_statistics_grpc: dict[str, float]
    statistics_cost: dict[str, float]


async def measure(rounds: int) -> Result:
    with tempfile.TemporaryDirectory() as folder, MlflowServer(Path(folder)) as mlflow_server:
        client = MlflowClient(tracking_uri=mlflow_server.url)
        run_ids = seed_runs(client)
        # In the same experiment: both compares find their runs in one search.
        fold_run_ids = seed_runs(client, folds=FOLDS)
        settings = Settings(tracking_uri=mlflow_server.url, experiment_name=EXPERIMENT)
        # What `python -m tracking_svc` sets up for the process: MLflow's
        # client without retries, bounded by each call's deadline.
        configure_process(settings)
        server, port = await create_server(settings, "127.0.0.1:0")
        await server.start()
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = tracking_pb2_grpc.TrackingServiceStub(channel)
                request = tracking_pb2.CompareRunsRequest(run_ids=run_ids)
                with_statistics = tracking_pb2.CompareRunsRequest(
                    run_ids=fold_run_ids, baseline_run_id=fold_run_ids[0]
                )
                compare_ms: list[float] = []
                statistics_ms: list[float] = []
                sequential_ms: list[float] = []
                for round_number in range(rounds + 3):  # 3 warm-up rounds
                    started = time.perf_counter()
                    response = await stub.CompareRuns(request, timeout=10)
                    compare = (time.perf_counter() - started) * 1000
                    assert [row.run_id for row in response.runs] == run_ids
                    assert not response.fold_stats

                    started = time.perf_counter()
                    response = await stub.CompareRuns(with_statistics, timeout=10)
                    statistics = (time.perf_counter() - started) * 1000
                    assert response.overfitting["oos_sharpe"].combinations == 12_870

                    started = time.perf_counter()
                    fetched = [client.get_run(run_id) for run_id in run_ids]
                    sequential = (time.perf_counter() - started) * 1000
                    assert len(fetched) == RUNS
                    if round_number >= 3:
                        compare_ms.append(compare)
                        statistics_ms.append(statistics)
                        sequential_ms.append(sequential)
        finally:
            await server.stop(0)
    ratios = [s / c for s, c in zip(sequential_ms, compare_ms, strict=True)]
    return Result(
        rounds=rounds,
        compare_runs_grpc=summarize(compare_ms),
        sequential_get_run=summarize(sequential_ms),
        speedup=summarize(ratios),
        compare_with_statistics_grpc=summarize(statistics_ms),
        statistics_cost=summarize([s / c for s, c in zip(statistics_ms, compare_ms, strict=True)]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.rounds))
    print(f"{'10 runs fetched by':40} {'median ms':>10} {'p10':>8} {'p90':>8}")
    for label, row in (
        ("CompareRuns (gRPC, one MLflow search)", result.compare_runs_grpc),
        ("10 sequential MlflowClient.get_run", result.sequential_get_run),
        (f"CompareRuns + statistics ({FOLDS} folds)", result.compare_with_statistics_grpc),
    ):
        print(f"{label:40} {row['median']:10.1f} {row['p10']:8.1f} {row['p90']:8.1f}")
    speedup = result.speedup
    print(
        f"speed-up (sequential / compare, per round): median {speedup['median']:.2f}x, "
        f"p10 {speedup['p10']:.2f}x, p90 {speedup['p90']:.2f}x"
    )
    cost = result.statistics_cost
    print(
        f"statistics cost (with / plain, per round): median {cost['median']:.2f}x, "
        f"p10 {cost['p10']:.2f}x, p90 {cost['p90']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(result), indent=2))


if __name__ == "__main__":
    main()
