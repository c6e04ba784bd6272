"""Demo data for `make demo` and `python scripts/demo_data.py`, so that every
curl example of the README answers with real data on a newcomer's first try.

MLflow runs as the research code logs them (through `tracking_svc.lineage`),
for two strategies: DEMO_STRATEGY (the API documents' own id, which the README
uses) and SECOND_STRATEGY. Each has runs of every type (training, walk_forward,
cpcv, backtest) with every lineage tag, realistic params and metrics, start and
end times over the last three days, and for walk_forward and cpcv `oos_sharpe`
per fold (per path) as steps beside the summary computed from them. What
the deflated Sharpe ratio of an experiments compare reads (CONTRACT §11):
every run carries the parameter `periods_per_year` its Sharpe ratios are
annualised by, and the backtest and walk_forward runs the metrics `n_obs`,
`returns_skew` and `returns_kurtosis` of their daily returns. Three training
runs are the tracking document's CompareRuns example value for value
(ListRuns, newest first, lists them in its order), one walk_forward run its
ListRuns example, each with periods_per_year beside the example's params. Every
run is then imported into experiments_svc with ImportRun over gRPC
(experiments_svc asks tracking_svc: both must be up).

Idempotent: when runs tagged `demo=true` are in the experiment, nothing new is
logged and ImportRun returns what it recorded before. Runs are tagged
`demo=loading` until all are logged; a load cut short leaves only those, which
the next load deletes before starting over.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import grpc
from mlflow.entities import Metric, Param, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research_common.auth import parse_tokens
from research_common.config import ConfigError
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.lineage import Lineage, start_run

DEMO_STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
SECOND_STRATEGY = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
DEMO_TAG = "demo"
HOUR_MS = 3_600_000
# The tracking document's CompareRuns example, in its order: params, oos_sharpe, max_drawdown.
COMPARE_EXAMPLE = (
    ({"learning_rate": "0.05", "max_depth": "6", "n_estimators": "200"}, 1.42, -0.1231),
    ({"learning_rate": "0.01", "max_depth": "6", "n_estimators": "200"}, 1.18, -0.1544),
    ({"learning_rate": "0.10", "max_depth": "8", "n_estimators": "300"}, 1.35, -0.1389),
)
# What the deflated Sharpe ratio reads (CONTRACT §11): daily returns, so
# every run that logs an oos_sharpe (all of them: training, walk_forward and
# CPCV folds, backtest) carries periods_per_year=252 and the strategy's trials
# are per-day values on one scale (the training runs: the compare example's
# params plus this one). Without it on the training and CPCV runs, their
# annualised values counted as per-day ones, the trials' variance mixed two
# scales and the figure was 0 (z near -20). Now strategy A's backtest and
# walk_forward compare gives 0.988: six trials, variance 3.77e-5, expected
# maximum 0.0080 per day against the walk-forward run's 1.46 / sqrt(252) =
# 0.0920 over 750 days (z about 2.26). The backtest and walk_forward runs
# also carry their returns: 1250 days for a backtest (five years), 150 a fold
# for a walk-forward run; skew and kurtosis (not excess) as equity
# strategies show them.
DAILY = {"periods_per_year": "252"}


def _returns(days: int, skew: float, kurtosis: float) -> dict[str, float]:
    return {"n_obs": days, "returns_skew": skew, "returns_kurtosis": kurtosis}


# Lineage of each strategy's runs: git commit, feature, model and signal versions.
_VERSIONS = {
    DEMO_STRATEGY: ("3f9a1c2", "v3", "v1", "s2"),
    SECOND_STRATEGY: ("9c8b7a6", "v4", "v2", "s1"),
}


@dataclass(frozen=True)
class DemoRun:
    """One run to log: where it came from, what it logged, when it ran."""

    lineage: Lineage
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    hours_ago: int
    minutes: int = 12  # how long it ran
    folds: tuple[float, ...] = ()  # oos_sharpe per fold (CPCV: per path), as steps

    def summary(self) -> dict[str, float]:
        """The final metrics: with folds, their mean and std first."""
        if not self.folds:
            return dict(self.metrics)
        mean, std = statistics.mean(self.folds), statistics.stdev(self.folds)
        return {"mean_oos_sharpe": round(mean, 2), "std_oos_sharpe": round(std, 2), **self.metrics}


@dataclass(frozen=True)
class DemoSummary:
    run_ids: dict[str, list[str]]  # run_type -> run ids, oldest first
    compare_run_ids: list[str]  # the compare example's three runs, in its order
    experiment_ids: list[str]  # imported: one per run, oldest run first
    created: bool  # False when the demo runs were already there


def _lineage(strategy: str, run_type: str) -> Lineage:
    commit, features, model, signal = _VERSIONS[strategy]
    return Lineage(strategy, run_type, commit, "ds-2024-06", features, model, signal)


def _backtest(strategy: str, plugin: str, hours_ago: int, **metrics: float) -> DemoRun:
    params = {"plugin_key": plugin, "initial_capital": "1000000", "fee_bps": "2", **DAILY}
    return DemoRun(_lineage(strategy, "backtest"), params, metrics, hours_ago, minutes=6)


def demo_runs() -> list[DemoRun]:
    """Every demo run, oldest first."""
    a, b = DEMO_STRATEGY, SECOND_STRATEGY
    xgb, lgbm = {"plugin_key": "ml.xgboost"}, {"plugin_key": "ml.lightgbm"}
    cpcv = {"method": "combinatorial_purged", "n_test_splits": "2"}  # paths: 5 of 6, 4 of 5
    # The compare example: its first run is the newest, as ListRuns lists them.
    runs = [
        DemoRun(_lineage(a, "training"), {**params, **DAILY},
                {"oos_sharpe": sharpe, "max_drawdown": mdd}, hours_ago=70 + 2 * i)
        for i, (params, sharpe, mdd) in enumerate(COMPARE_EXAMPLE)
    ]  # fmt: skip
    runs += [
        # The ListRuns example: five folds whose mean is 1.42 and std 0.31.
        DemoRun(_lineage(a, "walk_forward"), {"n_splits": "5", "method": "rolling", **DAILY},
                _returns(750, -0.35, 4.1), 60, 41, (1.20, 1.78, 1.02, 1.64, 1.46)),
        DemoRun(_lineage(a, "cpcv"),
                {**xgb, **cpcv, "n_splits": "6", "embargo_pct": "0.01", **DAILY},
                {"pbo": 0.12}, 48, 95, (1.31, 0.94, 1.52, 1.12, 1.36)),
        _backtest(a, "ml.xgboost", 24, oos_sharpe=1.31, oos_sortino=1.87, max_drawdown=-0.1231,
                  calmar_ratio=1.15, cagr=0.1416, total_return=0.2041, volatility=0.108,
                  turnover=3.2, **_returns(1250, -0.42, 4.8)),
        DemoRun(_lineage(b, "training"),
                {**lgbm, "learning_rate": "0.03", "max_depth": "5", "n_estimators": "500",
                 "num_leaves": "31", **DAILY},
                {"oos_sharpe": 0.97, "oos_sortino": 1.31, "max_drawdown": -0.182,
                 "calmar_ratio": 0.61}, hours_ago=40, minutes=18),
        DemoRun(_lineage(b, "walk_forward"),
                {**lgbm, "n_splits": "4", "method": "expanding", **DAILY},
                _returns(600, -0.51, 5.2), 30, 33, (0.62, 1.14, 0.88, 1.03)),
        DemoRun(_lineage(b, "cpcv"),
                {**lgbm, **cpcv, "n_splits": "5", "embargo_pct": "0.02", **DAILY},
                {"pbo": 0.27}, 20, 80, (0.91, 0.55, 1.18, 0.73)),
        _backtest(b, "ml.lightgbm", 10, oos_sharpe=0.94, oos_sortino=1.26, max_drawdown=-0.182,
                  calmar_ratio=0.59, cagr=0.1074, total_return=0.1523, volatility=0.121,
                  turnover=4.1, **_returns(1250, -0.61, 5.6)),
    ]  # fmt: skip
    return sorted(runs, key=lambda run: -run.hours_ago)


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name))
        except MlflowException:  # tracking_svc created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    return str(experiment.experiment_id)


def _log(client: MlflowClient, experiment_id: str, run: DemoRun, now_ms: int) -> str:
    started = now_ms - run.hours_ago * HOUR_MS
    ended = started + run.minutes * 60_000
    tags = {DEMO_TAG: "loading"}
    run_id = str(
        start_run(client, experiment_id, run.lineage, start_time=started, tags=tags).info.run_id
    )
    fold_ms = (ended - started) // (len(run.folds) + 1)
    metrics = [Metric(key, value, ended, 0) for key, value in run.summary().items()]
    metrics += [
        Metric("oos_sharpe", value, started + (step + 1) * fold_ms, step)
        for step, value in enumerate(run.folds)
    ]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in run.params.items()])
    client.set_terminated(run_id, "FINISHED", end_time=ended)
    return run_id


def _search(client: MlflowClient, experiment_id: str, state: str) -> list[Run]:
    """The runs tagged `demo=<state>`, oldest first."""
    query = f"tags.{DEMO_TAG} = '{state}'"
    order = ["attributes.start_time ASC"]
    return list(client.search_runs([experiment_id], query, order_by=order, max_results=1000))


def load_demo(
    tracking_uri: str,
    experiment_name: str,
    experiments_addr: str,
    *,
    timeout: float = 30.0,
    token: str | None = None,
) -> DemoSummary:
    """Log the demo runs into `experiment_name` unless they are there, and
    import every one into experiments_svc at `experiments_addr` (`token`:
    a bearer token, when the services ask for one)."""
    with grpc.insecure_channel(experiments_addr) as channel:
        try:  # before anything is written: nothing half-done if it is down
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"experiments_svc at {experiments_addr} is not up") from None
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_id(client, experiment_name)
        runs = _search(client, experiment_id, "true")
        created = not runs
        if created:
            for leftover in _search(client, experiment_id, "loading"):
                client.delete_run(leftover.info.run_id)
            now_ms = int(time.time()) // 60 * 60_000
            logged = [_log(client, experiment_id, run, now_ms) for run in demo_runs()]
            for run_id in logged:
                client.set_tag(run_id, DEMO_TAG, "true")
            runs = _search(client, experiment_id, "true")
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        experiment_ids = [
            stub.ImportRun(
                experiments_pb2.ImportRunRequest(mlflow_run_id=run.info.run_id),
                timeout=timeout,
                metadata=metadata,
            ).experiment.id
            for run in runs
        ]
    run_ids: dict[str, list[str]] = {}
    training: dict[float | None, str] = {}
    for run in runs:
        tags = run.data.tags
        run_ids.setdefault(tags.get("run_type", "unknown"), []).append(run.info.run_id)
        if tags.get("strategy_id") == DEMO_STRATEGY and tags.get("run_type") == "training":
            training[run.data.metrics.get("oos_sharpe")] = run.info.run_id
    compare = [training[sharpe] for _, sharpe, _ in COMPARE_EXAMPLE if sharpe in training]
    return DemoSummary(run_ids, compare, experiment_ids, created)


def print_summary(summary: DemoSummary, gateway: str, out: TextIO) -> None:
    """What was loaded, and commands to paste that use it."""
    state = "loaded" if summary.created else "already there (nothing new logged)"
    counts = ", ".join(f"{len(ids)} {run_type}" for run_type, ids in summary.run_ids.items())
    print(f"demo data {state}: MLflow runs: {counts};", file=out)
    print(f"  {len(summary.experiment_ids)} experiments imported into experiments_svc", file=out)
    print(f"  strategies: {DEMO_STRATEGY} (the README's $STRATEGY), {SECOND_STRATEGY}", file=out)
    api = f"http://{gateway}/api/v1"
    if summary.run_ids.get("walk_forward"):
        walk_forward = summary.run_ids["walk_forward"][0]
        print(f"  curl -s {api}/tracking/runs/{walk_forward}/metrics/oos_sharpe/history", file=out)
    if summary.compare_run_ids:
        body = '{"run_ids": [' + ", ".join(f'"{i}"' for i in summary.compare_run_ids) + "]}"
        print(f"  curl -s -X POST {api}/tracking/runs/compare \\", file=out)
        print(f"    -H 'Content-Type: application/json' -d '{body}'", file=out)
    console = f"http://{gateway}/console"
    print(f"  open {console}  # the research console, in a browser", file=out)
    walk_forward_ids = summary.run_ids.get("walk_forward", [])
    if len(walk_forward_ids) >= 2:
        # Both walk-forward runs fold by fold against the older one, as the
        # README's walkthrough compares them: folds, paired test and PBO.
        ids = ",".join(walk_forward_ids)
        compare = f"{console}/compare?kind=runs&ids={ids}&baseline={walk_forward_ids[0]}"
        print(f"  open '{compare}'", file=out)


def load_demo_from_env(
    env: Mapping[str, str] | None = None, *, out: TextIO | None = None
) -> DemoSummary:
    """`load_demo` where the processes of `make run` are (their environment
    variables and defaults), with a summary on `out` (stderr by default)."""
    env = os.environ if env is None else env
    settings = TrackingSettings.from_env(env)
    summary = load_demo(
        settings.tracking_uri,
        settings.experiment_name,
        env.get("EXPERIMENTS_ADDR") or "127.0.0.1:50051",
        token=writing_secret(env),
    )
    gateway = env.get("GATEWAY_ADDR") or "127.0.0.1:8080"
    print_summary(summary, gateway, sys.stderr if out is None else out)
    return summary


def writing_secret(env: Mapping[str, str]) -> str | None:
    """The secret of the first API_TOKENS entry that may write (ImportRun
    changes something, so a `:read` token would be refused); None when no
    token is configured."""
    tokens = parse_tokens(env.get("API_TOKENS", "").split(","))
    if not tokens:
        return None
    for token in tokens:
        if not token.read_only:
            return token.secret
    raise ConfigError("API_TOKENS: every token is read-only; the demo needs one that may write")


def main() -> int:
    """`python scripts/demo_data.py`, with both services running."""
    try:
        load_demo_from_env(out=sys.stdout)
    except (ConfigError, ConnectionError, grpc.RpcError) as error:
        reason = str(error)
        if isinstance(error, grpc.Call):  # an RPC's failure: its status, not its repr
            reason = f"ImportRun: {error.code().name}: {error.details()}"
        print(f"demo data not loaded: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
