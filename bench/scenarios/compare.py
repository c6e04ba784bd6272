"""3. Compare: one call for ten records against ten calls.

- CompareRuns of 10 runs against 10 sequential MlflowClient.get_run on the
  same real `mlflow server` (`bench.compare_runs`). Target: >= 4x faster.
- CompareRuns of 10 walk-forward runs with a baseline and fold statistics
  against the plain CompareRuns of 10, same server, same run. Target: <= 1.5x.
- CompareExperiments of 10 experiments against 10 sequential GetExperiment,
  both over one gRPC channel to experiments_svc on PostgreSQL.
"""

from __future__ import annotations

import time

from grpc import aio

from bench import compare_runs
from bench.context import Context
from bench.database import bench_database, fetch_ids, load_rows
from bench.report import Row, ratio_text
from bench.stats import ratios, summarize
from experiments_svc.config import Settings
from experiments_svc.server import create_server
from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc

TARGET = 4.0
# CompareRuns with fold statistics against the plain compare (CONTRACT §11).
STATISTICS_TARGET = 1.5
ROWS = 10_000


async def _compare_experiments(context: Context, rounds: int) -> None:
    async with bench_database("bench_compare") as url:
        await load_rows(url, 1, ROWS)
        ids = (await fetch_ids(url, 10))[:10]
        server, port = await create_server(Settings(database_url=url), "127.0.0.1:0")
        await server.start()
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
                compare = experiments_pb2.CompareExperimentsRequest(experiment_ids=ids)
                gets = [experiments_pb2.GetExperimentRequest(experiment_id=i) for i in ids]
                one_ms: list[float] = []
                ten_ms: list[float] = []
                for number in range(rounds + 3):  # 3 warm-up rounds
                    started = time.perf_counter()
                    reply = await stub.CompareExperiments(compare, timeout=10)
                    one = (time.perf_counter() - started) * 1000
                    if [e.id for e in reply.experiments] != ids:
                        raise RuntimeError("CompareExperiments answered other experiments")
                    started = time.perf_counter()
                    for request in gets:
                        await stub.GetExperiment(request, timeout=10)
                    ten = (time.perf_counter() - started) * 1000
                    if number >= 3:
                        one_ms.append(one)
                        ten_ms.append(ten)
        finally:
            await server.stop(0)
    speedup = summarize(ratios(ten_ms, one_ms))
    compare_ms, sequential_ms = summarize(one_ms), summarize(ten_ms)
    context.report.figures["compare_experiments"] = {
        "compare_experiments_ms": compare_ms,
        "sequential_get_experiment_ms": sequential_ms,
        "speedup": speedup,
    }
    context.report.add(
        Row(
            "3 compare",
            f"CompareExperiments(10) {compare_ms['median']:.1f} ms vs 10x GetExperiment "
            f"{sequential_ms['median']:.1f} ms",
            ratio_text(speedup) + " faster",
        )
    )


async def run(context: Context) -> None:
    rounds = 10 if context.options.rounds < 5 else 30
    result = await compare_runs.measure(rounds)
    context.report.figures["compare_runs"] = {
        "rounds": result.rounds,
        "compare_runs_ms": result.compare_runs_grpc,
        "sequential_get_run_ms": result.sequential_get_run,
        "speedup": result.speedup,
        "compare_with_statistics_ms": result.compare_with_statistics_grpc,
        "statistics_cost": result.statistics_cost,
    }
    context.report.add(
        Row(
            "3 compare",
            f"CompareRuns(10) {result.compare_runs_grpc['median']:.1f} ms vs 10x get_run "
            f"{result.sequential_get_run['median']:.1f} ms (real mlflow server)",
            ratio_text(result.speedup) + " faster",
            f">= {TARGET:.0f}x faster",
            result.speedup["median"] >= TARGET,
        )
    )
    cost = result.statistics_cost
    context.report.add(
        Row(
            "3 compare",
            f"CompareRuns(10) with a baseline and fold statistics "
            f"({compare_runs.FOLDS} folds of 2 metrics) "
            f"{result.compare_with_statistics_grpc['median']:.1f} ms vs plain CompareRuns(10) "
            f"{result.compare_runs_grpc['median']:.1f} ms (same mlflow server)",
            ratio_text(cost) + " the time",
            f"<= {STATISTICS_TARGET}x",
            cost["median"] <= STATISTICS_TARGET,
        )
    )
    await _compare_experiments(context, rounds)
