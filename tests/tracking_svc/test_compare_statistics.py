"""CompareRuns' research statistics (CONTRACT §11) on both MLflow stores:
fold statistics from per-step histories, each run against a baseline, and
the probability of backtest overfitting; over a tracking server, one
history request per metric key for all compared runs together."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2 as pb
from research_common import stats
from tests.fixtures.grpc import assert_invalid, rpc_error
from tests.fixtures.mlflow import FOLD_SHARPE
from tests.tracking_svc.conftest import Backend

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

FOLDS = 16
RUNS = 10
BULK_PATH = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"


@dataclass(frozen=True, slots=True)
class FoldRuns:
    """RUNS walk-forward runs of FOLDS folds each, in their own experiment."""

    run_ids: list[str]
    sharpe: list[list[float]]  # run x fold: oos_sharpe (run 0 best on every fold)
    mse: list[list[float]]  # run x fold: oos_mse, independent noise


def _log_fold_runs(uri: str) -> FoldRuns:
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("fold-statistics")
    rng = random.Random(20261202)
    run_ids, sharpe, mse = [], [], []
    for run in range(RUNS):
        run_id = client.create_run(experiment_id).info.run_id
        # Run 0 is 1.0 above every other run on every fold.
        row = [rng.gauss(0.0, 0.3) + (5.0 if run == 0 else 0.0) for _ in range(FOLDS)]
        errors = [abs(rng.gauss(1.0, 0.2)) for _ in range(FOLDS)]
        metrics = [Metric("oos_sharpe", v, 1_000 + f, f) for f, v in enumerate(row)]
        metrics += [Metric("oos_mse", v, 1_000 + f, f) for f, v in enumerate(errors)]
        metrics.append(Metric("sharpe", statistics.fmean(row), 2_000, 0))
        client.log_batch(run_id, metrics=metrics)
        client.set_terminated(run_id)
        run_ids.append(run_id)
        sharpe.append(row)
        mse.append(errors)
    return FoldRuns(run_ids, sharpe, mse)


@pytest.fixture(scope="session")
def fold_runs_by_store(server_store: Backend, embedded_store: Backend) -> dict[str, FoldRuns]:
    # The same values in both stores: the same seed. Both transports to the
    # server read the same runs.
    served = _log_fold_runs(server_store.settings.tracking_uri)
    return {
        "server": served,
        "server-mlflow-http": served,
        "embedded": _log_fold_runs(embedded_store.settings.tracking_uri),
    }


@pytest.fixture
def fold_runs(backend: Backend, fold_runs_by_store: dict[str, FoldRuns]) -> FoldRuns:
    return fold_runs_by_store[backend.kind]


async def compare(
    stub: TrackingServiceAsyncStub, run_ids: list[str], **fields: Any
) -> pb.CompareRunsResponse:
    return await stub.CompareRuns(pb.CompareRunsRequest(run_ids=run_ids, **fields))


def test_fold_runs_are_what_the_tests_say(fold_runs: FoldRuns) -> None:
    for fold in range(FOLDS):
        column = [row[fold] for row in fold_runs.sharpe]
        assert column.index(max(column)) == 0


async def test_fold_statistics_of_every_run(
    stub: TrackingServiceAsyncStub, backend: Backend
) -> None:
    seeded = backend.seeded
    ids = [seeded.walk_forward_a, seeded.cpcv_b, seeded.training_a]
    response = await compare(stub, ids)
    assert list(response.fold_stats) == ["oos_sharpe"]
    folds = response.fold_stats["oos_sharpe"].runs
    values = [FOLD_SHARPE[step] for step in sorted(FOLD_SHARPE)]
    walk = folds[seeded.walk_forward_a]
    assert walk.folds == 5
    assert walk.mean == pytest.approx(statistics.fmean(values), abs=1e-12)
    assert walk.std == pytest.approx(statistics.stdev(values), abs=1e-12)
    assert (walk.min, walk.max, walk.worst) == (-0.2, 1.6, -0.2)
    assert walk.positive_share == pytest.approx(0.8)
    # Step 1 was logged twice: its latest value (0.7) counts, once.
    cpcv = folds[seeded.cpcv_b]
    assert (cpcv.folds, cpcv.min, cpcv.max) == (2, 0.3, 0.7)
    assert cpcv.std == pytest.approx(statistics.stdev([0.3, 0.7]), abs=1e-12)
    # A run without the metric has no statistics (null in JSON).
    assert seeded.training_a not in folds
    # Two shared steps are too few blocks to judge overfitting.
    overfitting = response.overfitting["oos_sharpe"]
    assert (overfitting.runs, overfitting.steps) == (2, 2)
    assert not overfitting.HasField("pbo")
    assert "4" in overfitting.reason
    # No baseline, no paired statistics.
    assert dict(response.paired) == {}


async def test_pbo_of_a_run_best_on_every_fold_is_zero(
    stub: TrackingServiceAsyncStub, fold_runs: FoldRuns
) -> None:
    response = await compare(stub, fold_runs.run_ids)
    overfitting = response.overfitting["oos_sharpe"]
    assert (overfitting.runs, overfitting.steps, overfitting.blocks) == (RUNS, FOLDS, FOLDS)
    assert overfitting.combinations == math.comb(FOLDS, FOLDS // 2) == 12_870
    assert overfitting.pbo == 0.0
    assert not overfitting.HasField("reason")
    # Noise: whatever the pure function gives for the same matrix, every
    # time; minimised, as its name says.
    noise = response.overfitting["oos_mse"]
    expected = stats.pbo(fold_runs.mse, "minimize")
    assert noise.pbo == expected.pbo
    assert 0.0 < noise.pbo < 1.0
    again = await compare(stub, fold_runs.run_ids)
    assert again.overfitting["oos_mse"].pbo == noise.pbo
    # A metric logged once per run has no folds.
    assert set(response.fold_stats) == {"oos_sharpe", "oos_mse"}
    assert "sharpe" not in response.overfitting


async def test_paired_against_the_baseline(
    stub: TrackingServiceAsyncStub, fold_runs: FoldRuns
) -> None:
    ids = fold_runs.run_ids[:4]
    baseline = ids[2]
    response = await compare(stub, ids, baseline_run_id=baseline)
    paired = response.paired["oos_mse"].runs
    assert set(paired) == {ids[0], ids[1], ids[3]}
    base = fold_runs.mse[2]
    for index in (0, 1, 3):
        other = fold_runs.mse[index]
        # Lower error is better.
        wins = sum(o < b for o, b in zip(other, base, strict=True))
        losses = sum(o > b for o, b in zip(other, base, strict=True))
        figures = paired[ids[index]]
        assert (figures.n, figures.wins, figures.losses, figures.ties) == (
            FOLDS,
            wins,
            losses,
            FOLDS - wins - losses,
        )
        assert figures.mean_diff == pytest.approx(
            statistics.fmean(o - b for o, b in zip(other, base, strict=True)), abs=1e-12
        )
        tail = sum(math.comb(wins + losses, k) for k in range(min(wins, losses) + 1))
        assert figures.sign_test_p == pytest.approx(
            min(1.0, 2 * tail / 2 ** (wins + losses)), abs=1e-12
        )
    # Run 0 wins every fold of oos_sharpe against the baseline.
    best = response.paired["oos_sharpe"].runs[ids[0]]
    assert (best.wins, best.losses) == (FOLDS, 0)
    assert best.sign_test_p == pytest.approx(2 / 2**FOLDS)
    # The baseline's figures are in the metric diff too.
    entry = response.metric_diff["sharpe"]
    assert entry.baseline == pytest.approx(statistics.fmean(fold_runs.sharpe[2]))
    assert entry.verdict.values[ids[0]] == "better"
    assert entry.verdict.values[baseline] == "baseline"


async def test_the_baseline_must_be_one_of_the_compared_runs(
    stub: TrackingServiceAsyncStub, fold_runs: FoldRuns
) -> None:
    error = await rpc_error(
        compare(stub, fold_runs.run_ids[:2], baseline_run_id=fold_runs.run_ids[5])
    )
    assert_invalid(error, "baseline_run_id", "must be one of the compared ids")


@pytest.mark.parametrize("backend", ["server"], indirect=True)
async def test_one_history_request_per_metric_key(
    stub: TrackingServiceAsyncStub, backend: Backend, fold_runs: FoldRuns
) -> None:
    assert backend.proxy is not None
    backend.proxy.reset()
    await compare(stub, fold_runs.run_ids, baseline_run_id=fold_runs.run_ids[0])
    history = [urlsplit(r.path) for r in backend.proxy.requests if BULK_PATH in r.path]
    # Two metrics with folds, two requests, each for all ten runs; none for
    # `sharpe`, logged at step 0 only, and none per run.
    assert sorted(parse_qs(url.query)["metric_key"][0] for url in history) == [
        "oos_mse",
        "oos_sharpe",
    ]
    for url in history:
        assert sorted(parse_qs(url.query)["run_id"]) == sorted(fold_runs.run_ids)
    assert backend.proxy.matching("/metrics/get-history?") == []
    assert backend.proxy.matching("/runs/get") == []
