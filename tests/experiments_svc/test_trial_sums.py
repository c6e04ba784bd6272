"""The parts each experiment adds to its strategy's trial sums
(experiments_svc.trial_sums), without a database."""

from __future__ import annotations

import decimal
import sys
import uuid
from typing import Any

from experiments_svc.trial_sums import Part, change, exact_add, parts, totals


def _record(metrics: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"strategy_id": uuid.UUID(int=1), "metrics": metrics, "parameters": parameters or {}}


def test_only_numbers_of_sharpe_named_metrics_count() -> None:
    found = parts(
        _record({"sharpe": 2, "oos_sharpe_ratio": 0.5, "mse": 1.0, "x_sharpe": True, "s": "1"})
    )
    assert sorted(found) == ["oos_sharpe_ratio", "sharpe"]
    assert found["sharpe"] == Part(1, 0, decimal.Decimal(2), decimal.Decimal(4))


def test_an_unusable_periods_per_year_counts_apart() -> None:
    assert parts(_record({"sharpe": 1.0}, {"periods_per_year": "weekly"})) == {
        "sharpe": Part(unusable=1)
    }


def test_a_value_with_no_finite_figure_per_observation_is_no_trial() -> None:
    assert parts(_record({"sharpe": sys.float_info.max}, {"periods_per_year": 1e-300})) == {}


def test_extreme_values_come_out_as_exactly_as_they_went_in() -> None:
    values = [5e-324, 1e-300, 0.1, 1 / 3, 1e150, -1e300, 2**53 - 1]
    before = [_record({"sharpe": v}) for v in values]
    after = [_record({"sharpe": 0.25}) for _ in values]
    running = Part()
    for old in before:
        running = running + change(None, old)["sharpe"]
    for old, new in zip(before, after, strict=True):
        running = running + change(old, new)["sharpe"]
    assert running == Part(len(values), 0, decimal.Decimal("1.75"), decimal.Decimal("0.4375"))


def test_a_write_that_leaves_a_metric_alone_changes_nothing_of_it() -> None:
    old = _record({"sharpe": 1.0, "mse": 2.0})
    new = _record({"sharpe": 1.0, "mse": 3.0})
    assert change(old, new) == {}


def test_totals_add_up_by_strategy_and_metric() -> None:
    one, two = uuid.UUID(int=1), uuid.UUID(int=2)
    records = [
        {"strategy_id": one, "metrics": {"sharpe": 1}, "parameters": {}},
        {"strategy_id": one, "metrics": {"sharpe": 3}, "parameters": {}},
        {"strategy_id": two, "metrics": {"sharpe": 5}, "parameters": {}},
    ]
    assert totals(records) == {
        (one, "sharpe"): Part(2, 0, decimal.Decimal(4), decimal.Decimal(10)),
        (two, "sharpe"): Part(1, 0, decimal.Decimal(5), decimal.Decimal(25)),
    }


def test_sqlites_exact_add() -> None:
    tiny = str(decimal.Decimal.from_float(5e-324))  # 751 significant digits
    twice = exact_add(tiny, tiny)
    assert twice is not None
    assert decimal.Decimal(twice) == decimal.Decimal.from_float(1e-323)
    assert exact_add(tiny, "-" + tiny) == "0E-1074"
    assert exact_add("0.1", "0.2") == "0.3"
    assert exact_add(None, "1") is None
