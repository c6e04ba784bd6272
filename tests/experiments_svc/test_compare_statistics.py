"""CompareExperiments' research statistics (CONTRACT §11): every metric
against a baseline, and the deflated Sharpe ratio of each Sharpe metric's
best experiment with the trial count and variance kept as experiments are
written (experiments_svc.trial_sums), deleted experiments included. On
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import statistics
from random import Random
from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf import field_mask_pb2

from experiments_svc import selection
from research.experiments.v1 import experiments_pb2 as pb
from research_common.stats import StatisticUndefined
from tests.experiments_svc.conftest import OTHER_STRATEGY
from tests.experiments_svc.test_compare import create
from tests.fixtures.grpc import assert_invalid, rpc_error

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub

GAMMA = 0.5772156649015329  # Euler-Mascheroni


async def compare(
    stub: ExperimentServiceAsyncStub, ids: list[str], **fields: Any
) -> pb.CompareExperimentsResponse:
    return await stub.CompareExperiments(pb.CompareExperimentsRequest(experiment_ids=ids, **fields))


def optional(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


# Baseline ---------------------------------------------------------------


async def test_each_metric_against_the_baseline(stub: ExperimentServiceAsyncStub) -> None:
    base = await create(stub, metrics={"mse": 0.20, "max_drawdown": -0.12, "pnl": 0, "x": 1})
    a = await create(stub, metrics={"mse": 0.10, "max_drawdown": -0.15, "pnl": 5, "x": 1})
    b = await create(stub, metrics={"mse": 0.30, "max_drawdown": -0.10, "x": "n/a"})
    response = await compare(stub, [a, base, b], baseline=base)
    mse = response.metric_diff["mse"]
    assert mse.direction == "minimize"
    assert mse.baseline == 0.20
    assert dict(mse.delta.values) == pytest.approx({a: -0.10, base: 0.0, b: 0.10})
    assert dict(mse.change_pct.values) == pytest.approx({a: -50.0, base: 0.0, b: 50.0})
    assert dict(mse.verdict.values) == {a: "better", base: "baseline", b: "worse"}
    # Drawdowns are negative fractions, maximised: -0.15 is worse than -0.12.
    drawdown = response.metric_diff["max_drawdown"]
    assert dict(drawdown.verdict.values) == {a: "worse", base: "baseline", b: "better"}
    assert dict(drawdown.change_pct.values) == pytest.approx(
        {a: -25.0, base: 0.0, b: 100 * 0.02 / 0.12}
    )
    # A baseline of 0: a delta, but no change in percent; b lacks the metric.
    pnl = response.metric_diff["pnl"]
    assert pnl.baseline == 0
    assert dict(pnl.delta.values) == {a: 5.0, base: 0.0}
    assert dict(pnl.change_pct.values) == {}
    assert pnl.HasField("change_pct")
    assert dict(pnl.verdict.values) == {a: "worse", base: "baseline", b: "missing"}
    # Equal values are "same"; a string is not a number.
    x = response.metric_diff["x"]
    assert dict(x.verdict.values) == {a: "same", base: "baseline", b: "missing"}


async def test_a_baseline_without_a_number_leaves_every_figure_null(
    stub: ExperimentServiceAsyncStub,
) -> None:
    base = await create(stub, metrics={"sharpe": "n/a"})
    other = await create(stub, metrics={"sharpe": 1.5, "sortino": 2.0})
    response = await compare(stub, [base, other], baseline=base)
    for name in ("sharpe", "sortino"):
        entry = response.metric_diff[name]
        assert not entry.HasField("baseline")
        assert dict(entry.delta.values) == {}
        assert dict(entry.change_pct.values) == {}
        assert dict(entry.verdict.values) == {base: "baseline", other: "missing"}


async def test_without_a_baseline_the_figures_are_unset(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(stub, metrics={"mse": 0.2})
    b = await create(stub, metrics={"mse": 0.1})
    entry = (await compare(stub, [a, b])).metric_diff["mse"]
    assert entry.best_id == b
    for name in ("baseline", "delta", "change_pct", "verdict"):
        assert not entry.HasField(name), name


async def test_the_baseline_must_be_one_of_the_compared_ids(
    stub: ExperimentServiceAsyncStub,
) -> None:
    a = await create(stub, metrics={"mse": 0.2})
    b = await create(stub, metrics={"mse": 0.1})
    outsider = await create(stub, metrics={"mse": 0.3})
    error = await rpc_error(compare(stub, [a, b], baseline=outsider))
    assert_invalid(error, "baseline", "must be one of the compared ids")
    error = await rpc_error(compare(stub, [a, b], baseline="not-a-uuid"))
    assert_invalid(error, "baseline", "UUID")
    # The same id in another spelling is the same experiment.
    response = await compare(stub, [a, b], baseline=a.upper())
    assert response.metric_diff["mse"].verdict.values[a] == "baseline"


# Deflated Sharpe ratio ----------------------------------------------------


def annual_sharpes(count: int, best: float, variance: float) -> list[float]:
    """`count` values whose largest is `best` and whose sample variance is
    `variance`: an uneven spread, scaled about the largest."""
    raw = [math.sin(i * 1.7) + i / count for i in range(count - 1)] + [2.0]
    spread = statistics.variance(raw)
    return [best + (value - 2.0) * math.sqrt(variance / spread) for value in raw]


def phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


async def test_the_papers_worked_example(stub: ExperimentServiceAsyncStub) -> None:
    """Bailey and López de Prado (2014): annualised Sharpe 2.5 over 1,250
    daily observations, skewness -3, kurtosis 10, best of 100 trials whose
    annualised Sharpe ratios have variance 0.5, 250 periods a year: SR0 ≈
    0.1132 per observation and a deflated Sharpe ratio ≈ 0.90."""
    values = annual_sharpes(100, 2.5, 0.5)
    assert max(values) == 2.5
    assert statistics.variance(values) == pytest.approx(0.5, rel=1e-12)
    ids = []
    for index, value in enumerate(values[:-1]):
        # An imported run's parameters are text: "250" counts as 250.
        periods: Any = "250" if index % 3 == 0 else 250
        ids.append(
            await create(stub, metrics={"sharpe": value}, parameters={"periods_per_year": periods})
        )
    best = await create(
        stub,
        metrics={"sharpe": 2.5, "n_obs": 1250, "returns_skew": -3, "returns_kurtosis": 10},
        parameters={"periods_per_year": 250},
    )
    # Deleted trials still count: the audit trail knows they were tried.
    for experiment_id in ids[:7]:
        await stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=experiment_id))
    # Neither another strategy's experiments nor values that are no number.
    await create(stub, strategy_id=OTHER_STRATEGY, metrics={"sharpe": 9.0})
    await create(stub, metrics={"sharpe": "n/a"}, parameters={"periods_per_year": 250})
    await create(stub, metrics={"mse": 1.0})

    response = await compare(stub, [ids[50], best])
    selection = response.selection["sharpe"]
    assert list(response.selection) == ["sharpe"]
    assert selection.experiment_id == best
    assert selection.trials == 100
    sr = 2.5 / math.sqrt(250)
    assert selection.sharpe == pytest.approx(sr, abs=1e-12)
    assert selection.sharpe_variance == pytest.approx(0.5 / 250, abs=1e-12)
    # The figures the paper prints.
    assert selection.expected_max_sharpe == pytest.approx(0.1132, abs=5e-5)
    assert selection.deflated_sharpe == pytest.approx(0.90, abs=5e-3)
    # And the formulas, with the normal quantiles from the standard library.
    normal = statistics.NormalDist()
    sr0 = math.sqrt(0.5 / 250) * (
        (1 - GAMMA) * normal.inv_cdf(1 - 1 / 100) + GAMMA * normal.inv_cdf(1 - 1 / (100 * math.e))
    )
    assert selection.expected_max_sharpe == pytest.approx(sr0, abs=1e-9)
    dsr = phi((sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + (10 - 1) / 4 * sr**2))
    assert selection.deflated_sharpe == pytest.approx(dsr, abs=1e-9)
    assert not selection.HasField("reason")


async def test_figures_that_cannot_be_computed_say_why(stub: ExperimentServiceAsyncStub) -> None:
    # Two trials of the strategy, the best without n_obs.
    a = await create(stub, metrics={"sharpe": 1.0, "sharpe_ratio": 2.0, "n_obs": -5})
    b = await create(stub, metrics={"sharpe": 2.0, "sharpe_ratio": 1.0})
    # The only trial of its strategy.
    lone = await create(stub, strategy_id=OTHER_STRATEGY, metrics={"daily_sharpe": 3.0})
    response = await compare(stub, [a, b, lone])
    sharpe = response.selection["sharpe"]
    assert (sharpe.experiment_id, sharpe.trials) == (b, 2)
    assert sharpe.sharpe_variance == pytest.approx(0.5)
    assert sharpe.HasField("expected_max_sharpe")
    assert not sharpe.HasField("deflated_sharpe")
    assert "n_obs" in sharpe.reason
    # n_obs that is not a positive number: bad data, a reason, never an error.
    ratio = response.selection["sharpe_ratio"]
    assert (ratio.experiment_id, ratio.trials) == (a, 2)
    assert not ratio.HasField("deflated_sharpe")
    assert "n_obs" in ratio.reason
    daily = response.selection["daily_sharpe"]
    assert (daily.experiment_id, daily.trials) == (lone, 1)
    for name in ("sharpe_variance", "expected_max_sharpe", "deflated_sharpe"):
        assert not daily.HasField(name), name
    assert "at least 2 trials" in daily.reason


async def test_an_unusable_periods_per_year_gives_a_reason(
    stub: ExperimentServiceAsyncStub,
) -> None:
    best = await create(
        stub, metrics={"sharpe": 2.0, "n_obs": 500}, parameters={"periods_per_year": 0}
    )
    other = await create(stub, metrics={"sharpe": 1.0, "n_obs": 500})
    response = await compare(stub, [best, other])
    selection = response.selection["sharpe"]
    assert selection.experiment_id == best
    assert not selection.HasField("sharpe")
    assert "periods_per_year" in selection.reason
    # Another trial's unusable value spoils the strategy's variance.
    await stub.UpdateExperiment(
        pb.UpdateExperimentRequest(
            experiment_id=best,
            experiment=pb.Experiment(),
            update_mask=field_mask_pb2.FieldMask(paths=["parameters"]),
        )
    )
    await create(stub, metrics={"sharpe": 0.5}, parameters={"periods_per_year": "weekly"})
    selection = (await compare(stub, [best, other])).selection["sharpe"]
    assert selection.sharpe == 2.0
    assert not selection.HasField("deflated_sharpe")
    assert "1 experiment(s)" in selection.reason
    assert "periods_per_year" in selection.reason


async def test_no_finite_value_no_figures(stub: ExperimentServiceAsyncStub) -> None:
    a = await create(stub, metrics={"sharpe": "n/a", "sortino": 1.0})
    b = await create(stub, metrics={"sharpe": None})
    response = await compare(stub, [a, b])
    assert list(response.selection) == ["sharpe"]
    selection = response.selection["sharpe"]
    assert not selection.HasField("experiment_id")
    assert "finite" in selection.reason


# Every form a row's values may take, against the rules in Python ---------

# periods_per_year as rows hold it: absent (None here), null, numbers,
# decimal strings (an imported run's parameters are text), and what is not
# a positive number (text, a dotted string, 0, a negative, a boolean, an
# object).
_USABLE_PERIODS: list[Any] = [None, "null", 252, 252.0, 12.5, "252", "12.5", "0252", 1]
_UNUSABLE_PERIODS: list[Any] = ["weekly", "1.5.", "12.", "", 0, -4, True, {"n": 252}, "-252"]
# Metric values: numbers (the only ones that count), and the other kinds.
_VALUES: list[Any] = [0.1234567890123456789, -0.75, 3, 2**53 - 1, "1.5", True, None, "missing"]


def _row(random: Random, periods_from: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One row's metrics (two Sharpe keys) and parameters, drawn at random."""
    metrics: dict[str, Any] = {}
    for key in ("sharpe", "daily_sharpe"):
        value = random.choice(_VALUES)
        if value != "missing":
            metrics[key] = value
    parameters: dict[str, Any] = {}
    periods = random.choice(periods_from)
    if periods is not None:
        parameters["periods_per_year"] = None if periods == "null" else periods
    return metrics, parameters


def _expected(rows: list[tuple[dict[str, Any], dict[str, Any]]], key: str) -> tuple[int, Any, int]:
    """(count, sample variance or None, unusable) by the module's rules."""
    values, unusable = [], 0
    for metrics, parameters in rows:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        try:
            values.append(selection.per_observation(value, parameters))
        except StatisticUndefined:
            unusable += 1
    variance = statistics.variance(values) if len(values) >= 2 else None
    return len(values), variance, unusable


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_trial_figures_agree_with_the_rules_for_every_form_of_value(
    stub: ExperimentServiceAsyncStub, seed: int
) -> None:
    random = Random(seed)
    # Usable periods only: the count and the variance.
    rows = [_row(random, _USABLE_PERIODS) for _ in range(30)]
    # The two compared: the best of them is the one of the 9.0s.
    rows.append(({"sharpe": -1.0, "daily_sharpe": -1.0}, {}))
    rows.append(({"sharpe": 9.0, "daily_sharpe": 9.0, "n_obs": 400}, {}))
    ids = [await create(stub, metrics=m, parameters=p) for m, p in rows]
    response = await compare(stub, [ids[-2], ids[-1]])
    for key in ("sharpe", "daily_sharpe"):
        count, variance, unusable = _expected(rows, key)
        assert unusable == 0
        figures = response.selection[key]
        assert figures.experiment_id == ids[-1]
        assert figures.trials == count
        assert figures.sharpe_variance == pytest.approx(variance, rel=1e-12)
    # Then unusable ones too: counted, named in the reason, no variance.
    more = [_row(random, _UNUSABLE_PERIODS) for _ in range(10)]
    more.append(({"sharpe": 1.0, "daily_sharpe": 1.0}, {"periods_per_year": "weekly"}))
    for metrics, parameters in more:
        await create(stub, metrics=metrics, parameters=parameters)
    response = await compare(stub, [ids[-2], ids[-1]])
    for key in ("sharpe", "daily_sharpe"):
        count, _, unusable = _expected(rows + more, key)
        figures = response.selection[key]
        assert figures.trials == count
        assert not figures.HasField("sharpe_variance")
        assert f"{unusable} experiment(s) of the strategy" in figures.reason


# The sums follow every write ----------------------------------------------


async def _patch(
    stub: ExperimentServiceAsyncStub,
    experiment_id: str,
    metrics: dict[str, Any],
    parameters: dict[str, Any],
) -> None:
    experiment = pb.Experiment()
    experiment.metrics.update(metrics)
    experiment.parameters.update(parameters)
    await stub.UpdateExperiment(
        pb.UpdateExperimentRequest(
            experiment_id=experiment_id,
            experiment=experiment,
            update_mask=field_mask_pb2.FieldMask(paths=["metrics", "parameters"]),
        )
    )


@pytest.mark.parametrize("seed", [4, 5])
async def test_figures_follow_every_patch_exactly(
    stub: ExperimentServiceAsyncStub, seed: int
) -> None:
    """Rows patched at random many times over (values changed, removed,
    made unusable and usable again, other metrics touched) give the very
    figures of the rows as they end up: the sums keep no trace of what was
    taken out of them."""
    random = Random(seed)
    rows = [_row(random, _USABLE_PERIODS) for _ in range(12)]
    ids = [await create(stub, metrics=m, parameters=p) for m, p in rows]
    for _ in range(60):
        index = random.randrange(len(rows))
        metrics, parameters = _row(random, _USABLE_PERIODS + _UNUSABLE_PERIODS[:3])
        metrics["n_obs"] = random.choice([250, 1000])
        rows[index] = (metrics, parameters)
        await _patch(stub, ids[index], metrics, parameters)
    # Every row usable at the end, then two best-of rows compared.
    for index, (metrics, _) in enumerate(rows):
        rows[index] = (metrics, {"periods_per_year": 252})
        await _patch(stub, ids[index], metrics, {"periods_per_year": 252})
    rows.append(({"sharpe": -9.0, "daily_sharpe": -9.0}, {}))
    rows.append(({"sharpe": 90.0, "daily_sharpe": 90.0, "n_obs": 400}, {}))
    ids += [await create(stub, metrics=m, parameters=p) for m, p in rows[-2:]]
    response = await compare(stub, ids[-2:])
    for key in ("sharpe", "daily_sharpe"):
        count, variance, unusable = _expected(rows, key)
        figures = response.selection[key]
        assert (figures.trials, unusable) == (count, 0)
        assert figures.sharpe_variance == variance  # exactly: one rounding, as statistics'


async def test_racing_creates_each_count_once(stub: ExperimentServiceAsyncStub) -> None:
    values = [0.5 * n for n in range(24)]
    ids = await asyncio.gather(
        *(create(stub, metrics={"sharpe": v}, parameters={"periods_per_year": 4}) for v in values)
    )
    response = await compare(stub, list(ids[:2]))
    figures = response.selection["sharpe"]
    assert figures.trials == len(values)
    assert figures.sharpe_variance == statistics.variance([v / 2 for v in values])
