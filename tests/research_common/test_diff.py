"""The shared compare rules (CONTRACT §7), as plain unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from research_common import diff
from research_common.errors import InvalidArgument


@pytest.mark.parametrize(
    "name",
    [
        "std_oos_sharpe", "STD_returns", "std", "oos_std", "mse", "val_mse", "rmse", "mae",
        "cv_mape", "smape", "loss", "val_loss", "error", "tracking_error", "logloss",
        "val_logloss", "brier", "cv_brier", "ann_volatility", "turnover", "daily_turnover",
    ],
)  # fmt: skip
def test_minimize_rules(name: str) -> None:
    assert diff.builtin_direction(name) == "minimize"


@pytest.mark.parametrize(
    "name",
    [
        "sharpe", "oos_sharpe", "sharpe_ratio", "oos_sharpe_ratio", "sortino", "oos_sortino",
        "sortino_ratio", "calmar", "calmar_ratio", "omega", "omega_ratio", "accuracy",
        "directional_accuracy", "acc", "val_acc", "auc", "roc_auc", "f1", "macro_f1",
        "precision", "recall", "r2", "oos_r2", "return", "total_return", "returns",
        "excess_returns", "cagr", "alpha", "win_rate", "hit_rate", "profit_factor",
        "information_ratio", "drawdown", "max_drawdown", "Mean_OOS_Sharpe",
    ],
)  # fmt: skip
def test_maximize_rules(name: str) -> None:
    assert diff.builtin_direction(name) == "maximize"


@pytest.mark.parametrize(
    "name",
    # "ends with W" means W or _W: a bare suffix inside a word does not match.
    ["custom", "mse2", "sharpeish", "nonloss", "prefix", "mystd", "beta", "f1score", ""],
)
def test_names_without_a_rule(name: str) -> None:
    assert diff.builtin_direction(name) is None


def test_minimize_is_checked_first() -> None:
    # Both lists could match; the first rule wins.
    assert diff.builtin_direction("std_sharpe") == "minimize"
    assert diff.builtin_direction("sharpe_std") == "minimize"


def test_direction_prefers_request_then_rules_then_default() -> None:
    choose = diff.choose_direction
    assert choose("mse", maximize=["mse"], default="minimize") == "maximize"
    assert choose("sharpe", minimize=["sharpe"], default="maximize") == "minimize"
    assert choose("sharpe", default="minimize") == "maximize"
    assert choose("custom", default="minimize") == "minimize"
    assert choose("custom", default="maximize") == "maximize"
    # Overrides match the metric name exactly.
    assert choose("MSE", maximize=["mse"], default="maximize") == "minimize"


def test_overlapping_overrides() -> None:
    assert diff.overlapping_overrides(["a", "b", "c"], ["c", "a"]) == ["a", "c"]
    assert diff.overlapping_overrides(["a"], ["b"]) == []


def metric(rows: Any, key: str, **kw: Any) -> diff.MetricComparison:
    kw.setdefault("default", "minimize")
    return diff.compare_metrics(rows, **kw)[key]


def test_best_minimises_and_maximises() -> None:
    rows = [("a", {"mse": 0.3, "sharpe": 1.0}), ("b", {"mse": 0.1, "sharpe": 2.0})]
    assert metric(rows, "mse").best == "b"
    assert metric(rows, "sharpe").best == "b"
    assert metric([("a", {"loss": 1}), ("b", {"loss": 2})], "loss").best == "a"


def test_ties_go_to_the_earliest_row() -> None:
    rows = [("a", {"mse": 0.2}), ("b", {"mse": 0.1}), ("c", {"mse": 0.1})]
    assert metric(rows, "mse").best == "b"
    rows = [("a", {"sharpe": 1}), ("b", {"sharpe": 1.0})]
    assert metric(rows, "sharpe").best == "a"


def test_missing_keys_are_null_and_do_not_count() -> None:
    rows: diff.Rows = [("a", {}), ("b", {"mse": 5.0}), ("c", {"other": 1})]
    result = metric(rows, "mse")
    assert result.values == {"a": None, "b": 5.0, "c": None}
    assert result.best == "b"
    assert list(diff.compare_metrics(rows, default="minimize")) == ["mse", "other"]


NOT_COUNTING = [True, False, "1.0", None, float("nan"), float("inf"), float("-inf"), [1], {"x": 1}]


@pytest.mark.parametrize("value", NOT_COUNTING)
def test_only_finite_numbers_count(value: object) -> None:
    rows: diff.Rows = [("a", {"mse": value}), ("b", {"mse": 7})]
    assert metric(rows, "mse").best == "b"
    lone: diff.Rows = [("a", {"mse": value}), ("b", {})]
    assert metric(lone, "mse").best is None


def test_negative_infinity_never_wins_a_maximise() -> None:
    rows = [
        ("a", {"sharpe": float("-inf")}),
        ("b", {"sharpe": -3.0}),
        ("c", {"sharpe": float("nan")}),
    ]
    assert metric(rows, "sharpe").best == "b"


def test_integers_and_floats_compare_as_numbers() -> None:
    rows = [("a", {"auc": 1}), ("b", {"auc": 0.5})]
    assert metric(rows, "auc").best == "a"


def test_overrides_and_default_reach_the_comparison() -> None:
    rows = [("a", {"custom": 1, "mse": 1}), ("b", {"custom": 2, "mse": 2})]
    assert metric(rows, "custom", default="maximize").best == "b"
    assert metric(rows, "custom", default="minimize").best == "a"
    result = metric(rows, "mse", maximize=["mse"])
    assert (result.best, result.direction) == ("b", "maximize")


def values(rows: Any, key: str) -> diff.ValueComparison:
    return diff.compare_values(rows)[key]


def test_equal_values_do_not_vary() -> None:
    rows = [("a", {"p": "x"}), ("b", {"p": "x"})]
    assert values(rows, "p") == diff.ValueComparison(values={"a": "x", "b": "x"}, varies=False)


def test_a_key_one_row_lacks_varies_even_against_null() -> None:
    rows = [("a", {"p": None}), ("b", {})]
    assert values(rows, "p") == diff.ValueComparison(values={"a": None, "b": None}, varies=True)
    assert values([("a", {"p": 1}), ("b", {})], "p").varies


def test_numeric_looking_strings_compare_as_text() -> None:
    assert values([("a", {"lr": "0.05"}), ("b", {"lr": "0.050"})], "lr").varies
    assert values([("a", {"lr": "1"}), ("b", {"lr": 1})], "lr").varies


def test_booleans_are_not_numbers() -> None:
    assert values([("a", {"p": True}), ("b", {"p": 1})], "p").varies
    assert values([("a", {"p": False}), ("b", {"p": 0})], "p").varies
    assert not values([("a", {"p": True}), ("b", {"p": True})], "p").varies


def test_numbers_compare_by_value_and_nan_equals_nan() -> None:
    assert not values([("a", {"p": 6}), ("b", {"p": 6.0})], "p").varies
    assert not values([("a", {"p": float("nan")}), ("b", {"p": float("nan")})], "p").varies
    assert values([("a", {"p": float("inf")}), ("b", {"p": float("-inf")})], "p").varies


def test_nested_values_compare_structurally() -> None:
    same = [("a", {"p": {"x": [1, 2], "y": 1}}), ("b", {"p": {"y": 1, "x": [1, 2]}})]
    assert not values(same, "p").varies
    assert values([("a", {"p": [1, 2]}), ("b", {"p": [2, 1]})], "p").varies


def test_fixed_keys_cover_keys_no_row_has() -> None:
    rows = [("a", {"strategy_id": "s"}), ("b", {"strategy_id": "s"})]
    result = diff.compare_values(rows, ["strategy_id", "signal_version"])
    assert list(result) == ["strategy_id", "signal_version"]
    assert result["signal_version"] == diff.ValueComparison(
        values={"a": None, "b": None}, varies=False
    )


def test_values_keep_request_order() -> None:
    rows = [("z", {"p": 1}), ("a", {"p": 2}), ("m", {"p": 3})]
    assert list(values(rows, "p").values) == ["z", "a", "m"]
    assert list(metric(rows, "p").values) == ["z", "a", "m"]


# Against a baseline (CONTRACT §11) ----------------------------------------


def test_against_a_baseline_by_direction() -> None:
    values = {"a": -0.15, "base": -0.12, "c": -0.10, "d": None, "e": -0.12}
    figures = diff.against_baseline(values, "base", diff.MAXIMIZE)
    assert figures.baseline == -0.12
    assert figures.delta == pytest.approx({"a": -0.03, "base": 0.0, "c": 0.02, "e": 0.0})
    # Percent of the baseline's magnitude: a drawdown from -0.12 to -0.15 is
    # 25 % worse, not 25 % "better" for a negative base.
    assert figures.change_pct == pytest.approx({"a": -25.0, "base": 0.0, "c": 100 / 6, "e": 0.0})
    assert figures.verdict == {
        "a": "worse",
        "base": "baseline",
        "c": "better",
        "d": "missing",
        "e": "same",
    }
    minimized = diff.against_baseline({"a": 1.0, "base": 2.0}, "base", diff.MINIMIZE)
    assert minimized.verdict == {"a": "better", "base": "baseline"}
    assert minimized.change_pct == {"a": -50.0, "base": 0.0}


@pytest.mark.parametrize("baseline", [0, 0.0, None, float("nan"), float("inf"), "1.0", True])
def test_change_pct_is_null_without_a_usable_nonzero_baseline(baseline: Any) -> None:
    figures = diff.against_baseline({"base": baseline, "a": 2.0}, "base", diff.MAXIMIZE)
    assert figures.change_pct == {}
    if baseline == 0 and not isinstance(baseline, bool):
        assert figures.delta == {"base": 0.0, "a": 2.0}
        assert figures.verdict == {"base": "baseline", "a": "better"}
    else:
        assert figures.baseline is None
        assert figures.delta == {}
        assert figures.verdict == {"base": "baseline", "a": "missing"}


@pytest.mark.parametrize("value", [None, float("nan"), float("-inf"), "3", False])
def test_a_value_that_is_no_finite_number_is_missing(value: Any) -> None:
    figures = diff.against_baseline({"base": 1.0, "a": value}, "base", diff.MAXIMIZE)
    assert "a" not in figures.delta
    assert "a" not in figures.change_pct
    assert figures.verdict["a"] == "missing"


def test_compare_metrics_measures_against_the_baseline_only_when_asked() -> None:
    rows = [("a", {"mse": 0.2}), ("b", {"mse": 0.1})]
    plain = diff.compare_metrics(rows, default=diff.MAXIMIZE)
    assert plain["mse"].against is None
    against = diff.compare_metrics(rows, default=diff.MAXIMIZE, baseline="a")["mse"].against
    assert against is not None
    assert against.verdict == {"a": "baseline", "b": "better"}  # mse is minimised by name


def test_the_baseline_must_be_compared() -> None:
    diff.check_baseline("baseline", "a", ["a", "b"])
    with pytest.raises(InvalidArgument, match="must be one of the compared ids, got 'c'"):
        diff.check_baseline("baseline", "c", ["a", "b"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sharpe", True),
        ("oos_sharpe", True),
        ("OOS_Sharpe_Ratio", True),
        ("sharpe_ratio", True),
        ("deflated_sharpe_x", False),
        ("mysharpe", False),
        ("sortino", False),
    ],
)
def test_sharpe_ratios_by_name(name: str, expected: bool) -> None:
    assert diff.is_sharpe_ratio(name) is expected
