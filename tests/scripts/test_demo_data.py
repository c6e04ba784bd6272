"""scripts/demo_data.py against both services run as processes, each on a free
port over its own embedded store in tmp_path: what `make demo` loads, checked
value for value through MLflow and through the services' own RPCs, and a
second load (from the environment, as `make demo` runs it) that adds nothing."""

from __future__ import annotations

import asyncio
import io
import math
import sqlite3
import statistics
import sys
from collections import Counter
from pathlib import Path

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlflow.tracking import MlflowClient

from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from research_common import stats
from testbed.ports import free_port
from tests.processes import running
from tracking_svc.lineage import LINEAGE_TAGS, Lineage, start_run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from demo_data import (
    DEMO_STRATEGY,
    SECOND_STRATEGY,
    DemoSummary,
    load_demo,
    load_demo_from_env,
)

A, B = DEMO_STRATEGY, SECOND_STRATEGY
EXPERIMENT = "demo-data-test"
# The tracking document's CompareRuns example, in its order, each with the
# daily annualisation every demo run carries beside the example's params.
COMPARE_PARAMS = [
    {"learning_rate": "0.05", "max_depth": "6", "n_estimators": "200", "periods_per_year": "252"},
    {"learning_rate": "0.01", "max_depth": "6", "n_estimators": "200", "periods_per_year": "252"},
    {"learning_rate": "0.10", "max_depth": "8", "n_estimators": "300", "periods_per_year": "252"},
]
RUNS_PER_KIND = {
    (A, "training"): 3,
    (A, "walk_forward"): 1,
    (A, "cpcv"): 1,
    (A, "backtest"): 1,
    (B, "training"): 1,
    (B, "walk_forward"): 1,
    (B, "cpcv"): 1,
    (B, "backtest"): 1,
}
# Folds (walk_forward) and paths (cpcv) logged as oos_sharpe steps.
STEPS_PER_KIND = {(A, "walk_forward"): 5, (A, "cpcv"): 5, (B, "walk_forward"): 4, (B, "cpcv"): 4}
# What the deflated Sharpe ratio reads (CONTRACT §11) on the backtest and
# walk_forward runs: n_obs, returns_skew, returns_kurtosis. The daily
# annualisation (periods_per_year 252) is on every run: each logs oos_sharpe.
RETURNS_KEYS = ("n_obs", "returns_skew", "returns_kurtosis")
RETURNS_PER_KIND = {
    (A, "walk_forward"): (750, -0.35, 4.1),
    (A, "backtest"): (1250, -0.42, 4.8),
    (B, "walk_forward"): (600, -0.51, 5.2),
    (B, "backtest"): (1250, -0.61, 5.6),
}


async def _wait_serving(address: str) -> None:
    """Until tracking_svc reports SERVING: it has made the default experiment."""
    async with aio.insecure_channel(address) as channel, asyncio.timeout(20):
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)


def _row_count(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM experiments").fetchone()
    return int(count)


async def test_demo_data_is_loaded_and_imported_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    database = tmp_path / "experiments.db"
    tracking_addr = f"127.0.0.1:{free_port()}"
    tracking_env = {
        "TRACKING_ADDR": tracking_addr,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_ARTIFACT_LOCATION": (tmp_path / "artifacts").as_uri(),
        "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
        "HEALTH_CHECK_INTERVAL": "0.2",
    }
    experiments_env = {
        "EXPERIMENTS_ADDR": "127.0.0.1:0",
        "DATABASE_URL": f"sqlite:///{database}",
        "TRACKING_ADDR": tracking_addr,
    }
    async with (
        running("tracking_svc", tracking_env, tmp_path) as tracking,
        running("experiments_svc", experiments_env, tmp_path) as experiments,
    ):
        experiments_addr = f"127.0.0.1:{await experiments.listening_port()}"
        await tracking.listening_port()
        await _wait_serving(tracking_addr)
        client = MlflowClient(tracking_uri=uri)
        default = client.get_experiment_by_name(EXPERIMENT)
        assert default is not None
        experiment_id = default.experiment_id
        # What a load cut short leaves behind: the next load deletes it.
        leftover = start_run(
            client, experiment_id, Lineage(A, "training"), tags={"demo": "loading"}
        ).info.run_id

        first = await asyncio.to_thread(load_demo, uri, EXPERIMENT, experiments_addr)

        assert first.created
        assert {kind: len(ids) for kind, ids in first.run_ids.items()} == {
            "training": 4,
            "walk_forward": 2,
            "cpcv": 2,
            "backtest": 2,
        }
        all_ids = [run_id for ids in first.run_ids.values() for run_id in ids]
        runs = {run.info.run_id: run for run in client.search_runs([experiment_id])}
        assert sorted(runs) == sorted(all_ids)
        assert client.get_run(leftover).info.lifecycle_stage == "deleted"
        kinds = {
            run_id: (run.data.tags["strategy_id"], run.data.tags["run_type"])
            for run_id, run in runs.items()
        }
        assert Counter(kinds.values()) == RUNS_PER_KIND
        for run in runs.values():
            assert run.data.tags["demo"] == "true"
            assert set(LINEAGE_TAGS) <= run.data.tags.keys()
            assert run.info.status == "FINISHED"
            assert run.info.start_time < run.info.end_time
            assert run.data.params
            assert run.data.metrics
            kind = (run.data.tags["strategy_id"], run.data.tags["run_type"])
            returns = {key: run.data.metrics.get(key) for key in RETURNS_KEYS}
            assert run.data.params["periods_per_year"] == "252"
            if kind in RETURNS_PER_KIND:
                assert returns == dict(zip(RETURNS_KEYS, RETURNS_PER_KIND[kind], strict=True))
            else:
                assert returns == dict.fromkeys(RETURNS_KEYS)

        async with aio.insecure_channel(tracking_addr) as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            # Per-fold metrics, as steps 0, 1, ... of oos_sharpe.
            steps: dict[tuple[str, str], list[int]] = {}
            for run_id, kind in kinds.items():
                if kind in STEPS_PER_KIND:
                    request = tracking_pb2.GetMetricHistoryRequest(
                        run_id=run_id, metric_key="oos_sharpe"
                    )
                    history = (await stub.GetMetricHistory(request)).history
                    steps[kind] = [point.step for point in history]
                    if kind == (A, "walk_forward"):
                        assert [p.value for p in history] == [1.20, 1.78, 1.02, 1.64, 1.46]
            assert steps == {kind: list(range(n)) for kind, n in STEPS_PER_KIND.items()}

            # The tracking document's ListRuns example.
            listed = await stub.ListRuns(
                tracking_pb2.ListRunsRequest(run_type="walk_forward", strategy_id=A, limit=20)
            )
            assert listed.total == 1
            (walk_forward,) = listed.runs
            # The example's params, and the annualisation the deflated Sharpe
            # ratio divides by.
            assert dict(walk_forward.params) == {
                "n_splits": "5",
                "method": "rolling",
                "periods_per_year": "252",
            }
            assert walk_forward.metrics["mean_oos_sharpe"] == 1.42
            assert walk_forward.metrics["std_oos_sharpe"] == 0.31
            assert walk_forward.tags["git_commit"] == "3f9a1c2"

            # Its CompareRuns example: ListRuns, newest first, gives it in order.
            training = await stub.ListRuns(
                tracking_pb2.ListRunsRequest(run_type="training", strategy_id=A, limit=3)
            )
            assert [run.run_id for run in training.runs] == first.compare_run_ids
            compared = await stub.CompareRuns(
                tracking_pb2.CompareRunsRequest(run_ids=first.compare_run_ids)
            )
        one = first.compare_run_ids[0]
        assert [dict(run.params) for run in compared.runs] == COMPARE_PARAMS
        assert [dict(run.metrics) for run in compared.runs] == [
            {"oos_sharpe": 1.42, "max_drawdown": -0.1231},
            {"oos_sharpe": 1.18, "max_drawdown": -0.1544},
            {"oos_sharpe": 1.35, "max_drawdown": -0.1389},
        ]
        assert {key: diff.best_run_id for key, diff in compared.metric_diff.items()} == {
            "oos_sharpe": one,
            "max_drawdown": one,
        }
        assert {key: diff.varies for key, diff in compared.param_diff.items()} == {
            "learning_rate": True,
            "max_depth": True,
            "n_estimators": True,
            "periods_per_year": False,
        }

        # One experiment per run (imported oldest run first), with its lineage.
        oldest_first = sorted(runs, key=lambda run_id: runs[run_id].info.start_time)
        assert len(set(first.experiment_ids)) == len(all_ids) == 10
        assert _row_count(database) == 10
        async with aio.insecure_channel(experiments_addr) as channel:
            experiments_stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            recorded = (
                await experiments_stub.ListExperiments(
                    experiments_pb2.ListExperimentsRequest(limit=100)
                )
            ).experiments
        assert {e.id: e.mlflow_run_id for e in recorded} == dict(
            zip(first.experiment_ids, oldest_first, strict=True)
        )
        for experiment in recorded:
            strategy, _ = kinds[experiment.mlflow_run_id]
            assert experiment.strategy_id == strategy
            assert experiment.git_commit_hash == ("3f9a1c2" if strategy == A else "9c8b7a6")
            assert experiment.dataset_version == "ds-2024-06"

        # An experiments compare of strategy A's backtest and walk_forward
        # experiments judges the best oos_sharpe (the walk-forward run's last
        # fold, 1.46) by its deflated Sharpe ratio.
        by_kind = {kinds[e.mlflow_run_id]: e.id for e in recorded}
        pair = [by_kind[(A, "backtest")], by_kind[(A, "walk_forward")]]
        async with aio.insecure_channel(experiments_addr) as channel:
            experiments_stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            compare = await experiments_stub.CompareExperiments(
                experiments_pb2.CompareExperimentsRequest(experiment_ids=pair, baseline=pair[0])
            )
        selection = compare.selection["oos_sharpe"]
        # Six experiments of strategy A hold an oos_sharpe: three training
        # runs, the walk-forward and CPCV runs' last fold and the backtest.
        # Every one says it is annualised (periods_per_year 252), so every
        # value counts per day, on one scale (see the note in demo_data):
        # variance 3.7725e-05, expected maximum 0.0079855, and the
        # walk-forward run's 0.091971 over 750 days gives z about 2.255 and
        # a deflated Sharpe ratio of 0.98794.
        annual = [1.42, 1.18, 1.35, 1.46, 1.36, 1.31]
        per_day = [sharpe / math.sqrt(252) for sharpe in annual]
        variance = statistics.variance(per_day)
        assert variance == pytest.approx(3.7724867724867735e-05, rel=1e-12)
        assert selection.experiment_id == pair[1]
        assert selection.trials == 6
        assert selection.sharpe == pytest.approx(1.46 / math.sqrt(252), rel=1e-12)
        assert selection.sharpe_variance == pytest.approx(variance, rel=1e-9)
        expected_max = stats.expected_max_sharpe(6, variance)
        assert expected_max == pytest.approx(0.00798553920096785, rel=1e-12)
        assert selection.expected_max_sharpe == pytest.approx(expected_max, rel=1e-9)
        assert selection.HasField("deflated_sharpe")
        deflated = stats.deflated_sharpe(1.46 / math.sqrt(252), expected_max, 750, -0.35, 4.1)
        assert deflated == pytest.approx(0.9879407864598484, rel=1e-12)
        assert selection.deflated_sharpe == pytest.approx(deflated, abs=1e-12)
        assert not selection.HasField("reason")

        # Again, as `make demo` runs it: nothing new, the same ids.
        out = io.StringIO()
        env = {
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            "EXPERIMENTS_ADDR": experiments_addr,
        }
        second = await asyncio.to_thread(load_demo_from_env, env, out=out)
        assert second == DemoSummary(
            first.run_ids, first.compare_run_ids, first.experiment_ids, created=False
        )
        assert _row_count(database) == 10
        assert len(client.search_runs([experiment_id])) == 10
        printed = out.getvalue()
        assert "already there" in printed
        assert A in printed
        assert B in printed
        assert all(run_id in printed for run_id in first.compare_run_ids)
        console = "http://127.0.0.1:8080/console"
        older, newer = first.run_ids["walk_forward"]
        assert f"  open {console}  # the research console, in a browser\n" in printed
        assert f"  open '{console}/compare?kind=runs&ids={older},{newer}&baseline={older}'\n" in (
            printed
        )
