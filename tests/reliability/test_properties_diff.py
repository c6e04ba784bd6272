"""Property-based tests of the shared diff rules (CONTRACT §7), over
generated rows of metrics and parameters."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from research_common.diff import (
    MAXIMIZE,
    MINIMIZE,
    Direction,
    builtin_direction,
    choose_direction,
    compare_metrics,
    compare_values,
    counts_for_best,
)

# The same examples on every run (CI must not turn red at random); 200 each.
PROPERTIES = settings(max_examples=200, deadline=None, database=None, derandomize=True)
KEYS = st.sampled_from(["sharpe", "rmse", "max_drawdown", "score", "Val_Loss", "std_ret", "x"])
METRIC_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
PARAM_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3), st.text(max_size=3)
)
DIRECTIONS: st.SearchStrategy[Direction] = st.sampled_from([MINIMIZE, MAXIMIZE])


def rows_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[tuple[str, dict[str, Any]]]]:
    ids = st.lists(st.uuids().map(str), min_size=2, max_size=10, unique=True)
    return ids.flatmap(
        lambda row_ids: st.tuples(
            *(st.dictionaries(KEYS, values, max_size=4) for _ in row_ids)
        ).map(lambda maps: list(zip(row_ids, maps, strict=True)))
    )


@PROPERTIES
@given(rows=rows_of(METRIC_VALUES), default=DIRECTIONS)
def test_best_is_the_first_extreme_counting_value(
    rows: list[tuple[str, dict[str, Any]]], default: Direction
) -> None:
    order = [row_id for row_id, _ in rows]
    for key, comparison in compare_metrics(rows, default=default).items():
        # Every compared id, in request order, None where missing.
        assert list(comparison.values) == order
        assert comparison.values == {row_id: m.get(key) for row_id, m in rows}
        counting = [(i, v) for i, v in comparison.values.items() if counts_for_best(v)]
        if not counting:
            assert comparison.best is None
            continue
        pick = min if comparison.direction == MINIMIZE else max
        extreme = pick(value for _, value in counting)
        # The earliest id holding the extreme value wins ties.
        assert comparison.best == next(i for i, v in counting if v == extreme)


@PROPERTIES
@given(rows=rows_of(METRIC_VALUES), overrides=st.sets(KEYS), maximize=st.booleans())
def test_request_overrides_win(
    rows: list[tuple[str, dict[str, Any]]], overrides: set[str], maximize: bool
) -> None:
    if maximize:
        result = compare_metrics(rows, default=MINIMIZE, maximize=overrides)
    else:
        result = compare_metrics(rows, default=MINIMIZE, minimize=overrides)
    for key, comparison in result.items():
        if key in overrides:
            assert comparison.direction == (MAXIMIZE if maximize else MINIMIZE)
        else:
            assert comparison.direction == (builtin_direction(key) or MINIMIZE)


@PROPERTIES
@given(name=st.text(max_size=30), default=DIRECTIONS)
def test_builtin_rules_ignore_case_and_fall_back_to_the_default(
    name: str, default: Direction
) -> None:
    assert (
        builtin_direction(name)
        == builtin_direction(name.upper())
        == builtin_direction(name.lower())
    )
    assert choose_direction(name, default=default) == (builtin_direction(name) or default)


@PROPERTIES
@given(value=METRIC_VALUES)
def test_only_finite_numbers_count(value: Any) -> None:
    expected = (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    )
    assert counts_for_best(value) is expected


def _kind(value: Any) -> tuple[str, Any]:
    """Equal values alike, kinds apart: True is not 1, "1" is not 1, and
    1 is 1.0 (JSON numbers have one kind)."""
    if value is None or isinstance(value, bool):
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", "nan" if math.isnan(value) else float(value))
    return ("string", value)


@PROPERTIES
@given(rows=rows_of(PARAM_VALUES), data=st.data())
def test_varies_is_whether_the_values_differ(
    rows: list[tuple[str, dict[str, Any]]], data: st.DataObject
) -> None:
    result = compare_values(rows)
    shuffled = data.draw(st.permutations(rows))
    again = compare_values(shuffled)
    for key, comparison in result.items():
        present = [m[key] for _, m in rows if key in m]
        # A key one row lacks varies; otherwise the values, told apart by
        # kind (True is not 1, "1" is not 1), vary when they differ.
        kinds = {_kind(value) for value in present}
        expected = len(present) < len(rows) or len(kinds) > 1
        assert comparison.varies is expected, (key, present)
        assert again[key].varies is comparison.varies  # the order of rows does not matter
        assert list(comparison.values) == [row_id for row_id, _ in rows]
