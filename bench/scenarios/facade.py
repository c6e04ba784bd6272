"""4. The façade's cost: ListRuns and GetRun through the whole stack
(HTTP -> gateway -> tracking_svc -> MLflow's REST API) against the same
question asked of MLflow's own REST endpoints on the same `mlflow server`,
one caller, sequential requests, alternating rounds.
Target: <= 1.2x MLflow's latency."""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path

from mlflow.tracking import MlflowClient

from bench.alternate import alternate
from bench.compare_runs import seed_runs
from bench.context import Context
from bench.database import bench_database
from bench.http_timing import Timer
from bench.report import Row, ratio_text
from bench.stack import running_stack
from testbed.mlflow_server import MlflowServer

TARGET = 1.2
EXPERIMENT = "bench-facade"


async def run(context: Context) -> None:
    rounds = max(context.options.rounds * 2, 6)
    with tempfile.TemporaryDirectory() as folder, MlflowServer(Path(folder)) as mlflow:
        client = MlflowClient(tracking_uri=mlflow.url)
        run_ids = seed_runs(client, EXPERIMENT)
        first = client.get_run(run_ids[0])
        strategy = first.data.tags["strategy_id"]
        experiment_id = first.info.experiment_id
        search = json.dumps(
            {
                "experiment_ids": [experiment_id],
                "filter": f"tags.strategy_id = '{strategy}'",
                "max_results": 10,
                "order_by": ["attributes.start_time DESC"],
            }
        ).encode()
        questions = {
            "ListRuns (10 runs)": (
                ("GET", f"/api/v1/tracking/runs?strategy_id={strategy}&limit=10", None),
                ("POST", "/api/2.0/mlflow/runs/search", search),
            ),
            "GetRun": (
                ("GET", f"/api/v1/tracking/runs/{run_ids[0]}", None),
                ("GET", f"/api/2.0/mlflow/runs/get?run_id={run_ids[0]}", None),
            ),
        }
        async with (
            bench_database("bench_facade") as url,
            running_stack(url, context.work, mlflow.url, EXPERIMENT) as stack,
        ):
            ours, theirs = Timer(stack.gateway_url), Timer(mlflow.url)
            figures: dict[str, object] = {}
            try:
                for label, (mine, direct) in questions.items():
                    result = await alternate(
                        partial(ours.median_ms, *mine),
                        partial(theirs.median_ms, *direct),
                        rounds,
                    )
                    cost = result.ratio(float)
                    ours_ms, mlflow_ms = result.summaries(float)
                    figures[label] = {"ours_ms": ours_ms, "mlflow_ms": mlflow_ms, "ratio": cost}
                    context.report.add(
                        Row(
                            "4 facade",
                            f"{label}: stack {ours_ms['median']:.1f} ms vs MLflow REST "
                            f"{mlflow_ms['median']:.1f} ms",
                            ratio_text(cost),
                            f"<= {TARGET:.1f}x",
                            cost["median"] <= TARGET,
                        )
                    )
            finally:
                ours.close()
                theirs.close()
            context.report.figures["facade"] = figures
