"""The compare rules shared by both services (CONTRACT §7).

Pure functions over plain Python values, so that the experiments compare
(JSON metrics from the database) and the tracking compare (MLflow floats) are
one implementation. Ids are the row keys in request order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from research_common.errors import InvalidArgument

# Both compares take 2 to 10 distinct ids.
MIN_COMPARED, MAX_COMPARED = 2, 10

Direction = Literal["minimize", "maximize"]
MINIMIZE: Direction = "minimize"
MAXIMIZE: Direction = "maximize"

Rows = Sequence[tuple[str, Mapping[str, Any]]]

_MINIMIZE_SUFFIXES = (
    "std", "mse", "rmse", "mae", "mape", "smape", "loss", "error", "logloss", "brier",
    "volatility", "turnover",
)  # fmt: skip
_RATIOS = ("sharpe", "sortino", "calmar", "omega")
_MAXIMIZE_SUFFIXES = (
    *_RATIOS,
    *(f"{name}_ratio" for name in _RATIOS),
    "accuracy", "acc", "auc", "f1", "precision", "recall", "r2", "return", "returns", "cagr",
    "alpha", "win_rate", "hit_rate", "profit_factor", "information_ratio",
    # Drawdowns are stored as negative fractions: -0.12 beats -0.15.
    "drawdown",
)  # fmt: skip


def _ends_with(name: str, word: str) -> bool:
    """The contract's "ends with W": the name is W, or ends with `_W`."""
    return name == word or name.endswith("_" + word)


def builtin_direction(metric: str) -> Direction | None:
    """The built-in rule for a metric name, or None when no rule matches."""
    name = metric.lower()
    if name.startswith("std_") or any(_ends_with(name, w) for w in _MINIMIZE_SUFFIXES):
        return MINIMIZE
    if any(_ends_with(name, w) for w in _MAXIMIZE_SUFFIXES):
        return MAXIMIZE
    return None


def is_sharpe_ratio(metric: str) -> bool:
    """Whether a metric is named as a Sharpe ratio: it ends with `sharpe` or
    `sharpe_ratio` (the built-in rule's "ends with")."""
    name = metric.lower()
    return _ends_with(name, "sharpe") or _ends_with(name, "sharpe_ratio")


def overlapping_overrides(maximize: Iterable[str], minimize: Iterable[str]) -> list[str]:
    """Metric names a request asks to both maximise and minimise (an error)."""
    return sorted(set(maximize) & set(minimize))


def check_overrides(maximize: Iterable[str], minimize: Iterable[str]) -> None:
    """InvalidArgument naming `maximize` when a request asks to both
    maximise and minimise a metric (both compares, both lists' `best`)."""
    overlap = overlapping_overrides(maximize, minimize)
    if overlap:
        raise InvalidArgument.field(
            "maximize", f"and minimize both name {', '.join(map(repr, overlap))}"
        )


def choose_direction(
    metric: str,
    *,
    maximize: Collection[str] = (),
    minimize: Collection[str] = (),
    default: Direction,
) -> Direction:
    """The request's override, else the built-in rule, else the default."""
    if metric in maximize:
        return MAXIMIZE
    if metric in minimize:
        return MINIMIZE
    return builtin_direction(metric) or default


def counts_for_best(value: object) -> TypeGuard[int | float]:
    """Only a finite number counts for "best"; a boolean is not a number here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


Verdict = Literal["better", "worse", "same", "missing", "baseline"]


def better(value: float, other: float, direction: Direction) -> bool:
    """Whether `value` is strictly better than `other` in `direction`."""
    return value < other if direction == MINIMIZE else value > other


@dataclass(frozen=True, slots=True)
class BaselineComparison:
    """One metric against the baseline row (CONTRACT §11). The maps hold
    only the ids that have a figure; every id has a verdict."""

    baseline: float | None  # the baseline's value when it counts (finite)
    delta: dict[str, float]
    change_pct: dict[str, float]
    verdict: dict[str, Verdict]


def against_baseline(
    values: Mapping[str, Any], baseline_id: str, direction: Direction
) -> BaselineComparison:
    """Each row's value against the baseline row's: value - baseline, that
    in percent of |baseline| (none for a baseline of 0), and better, worse
    or same by `direction`; "missing" where either value is not a finite
    number, "baseline" for the baseline itself."""
    reference = values.get(baseline_id)
    base = float(reference) if counts_for_best(reference) else None
    delta: dict[str, float] = {}
    change_pct: dict[str, float] = {}
    verdict: dict[str, Verdict] = {}
    for row_id, value in values.items():
        if row_id == baseline_id:
            verdict[row_id] = "baseline"
        if base is None or not counts_for_best(value):
            verdict.setdefault(row_id, "missing")
            continue
        delta[row_id] = value - base
        if base != 0:
            change_pct[row_id] = 100.0 * delta[row_id] / abs(base)
        if better(value, base, direction):
            verdict.setdefault(row_id, "better")
        elif better(base, value, direction):
            verdict.setdefault(row_id, "worse")
        else:
            verdict.setdefault(row_id, "same")
    return BaselineComparison(base, delta, change_pct, verdict)


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric across the compared rows."""

    values: dict[str, Any]  # every id, None where the row lacks the metric
    best: str | None
    direction: Direction
    # Against the request's baseline; None without one.
    against: BaselineComparison | None = None


@dataclass(frozen=True, slots=True)
class ValueComparison:
    """One parameter or lineage field across the compared rows."""

    values: dict[str, Any]  # every id, None where the row lacks the key
    varies: bool


def _keys_in_order(rows: Rows) -> list[str]:
    """Every key of any row, in order of first appearance."""
    return list(dict.fromkeys(key for _, mapping in rows for key in mapping))


def compare_metrics(
    rows: Rows,
    *,
    maximize: Collection[str] = (),
    minimize: Collection[str] = (),
    default: Direction,
    baseline: str | None = None,
) -> dict[str, MetricComparison]:
    """`metric_diff`: per metric key, every row's value and the best row,
    and each row against the `baseline` row when there is one."""
    result: dict[str, MetricComparison] = {}
    for key in _keys_in_order(rows):
        direction = choose_direction(key, maximize=maximize, minimize=minimize, default=default)
        values = {row_id: mapping.get(key) for row_id, mapping in rows}
        best_id: str | None = None
        best_value = 0.0
        for row_id, value in values.items():
            if not counts_for_best(value):
                continue
            # Strict comparison: on a tie the earlier row keeps "best".
            if best_id is None or better(value, best_value, direction):
                best_id, best_value = row_id, value
        against = None if baseline is None else against_baseline(values, baseline, direction)
        result[key] = MetricComparison(values, best_id, direction, against)
    return result


_MISSING = object()


def _identity(value: object) -> object:
    """A hashable form in which equal values are equal and distinct kinds differ:
    `True` is not `1`, `"1.0"` is not `"1"` nor `1.0`, and NaN equals NaN."""
    if value is _MISSING:
        return ("missing",)
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", "nan" if math.isnan(value) else float(value))
    if isinstance(value, str):
        return ("string", value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


def compare_values(rows: Rows, keys: Iterable[str] | None = None) -> dict[str, ValueComparison]:
    """`param_diff` / `lineage_diff`: per key, every row's value and whether they vary.

    `keys` fixes the keys (lineage fields); by default every key of any row.
    A key that one row has and another lacks varies.
    """
    result: dict[str, ValueComparison] = {}
    for key in _keys_in_order(rows) if keys is None else keys:
        raw = [mapping.get(key, _MISSING) for _, mapping in rows]
        varies = len({_identity(value) for value in raw}) > 1
        values = {
            row_id: None if value is _MISSING else value
            for (row_id, _), value in zip(rows, raw, strict=True)
        }
        result[key] = ValueComparison(values=values, varies=varies)
    return result


def check_compare_count(field: str, count: int) -> None:
    """2 to 10 ids, or INVALID_ARGUMENT naming `field`."""
    if not MIN_COMPARED <= count <= MAX_COMPARED:
        raise InvalidArgument.field(
            field, f"must hold {MIN_COMPARED} to {MAX_COMPARED} ids, got {count}"
        )


def check_baseline(field: str, baseline: str, ids: Sequence[str]) -> None:
    """The baseline is one of the compared ids, or INVALID_ARGUMENT naming
    `field`."""
    if baseline not in ids:
        raise InvalidArgument.field(field, f"must be one of the compared ids, got {baseline!r}")


def check_distinct(field: str, ids: Sequence[object]) -> None:
    """No id twice, or INVALID_ARGUMENT listing the repeated ones."""
    repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidArgument.field(field, f"must be distinct; repeated: {', '.join(repeated)}")
