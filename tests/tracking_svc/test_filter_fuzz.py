"""No filter text changes the structure of ListRuns' MLflow search
(CONTRACT §10): for any text that parses and compiles, MLflow's own parser
(`SearchUtils.parse_search_filter`) reads the clauses joined with ` and `
back as exactly the comparisons of the tree, in order: the same count, and
each with the same kind (tag, parameter, metric, attribute), key,
comparator and value, and nothing else. Every text that does not compile
is InvalidArgument naming `filter`. The texts: comparisons of any string,
number and time MLflow could be asked for, joined with AND and
parentheses, then edited, then text of any kind."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.utils.search_utils import SearchUtils

from research_common.errors import InvalidArgument
from research_common.filters import Comparison, Fields, comparisons, parse
from tests.research_common.filter_texts import (
    OPERATORS,
    TIMES,
    filter_texts,
    filters,
    mutated,
    names,
    quote,
    weighted,
)
from tests.research_common.test_filters_fuzz import assert_names
from tracking_svc.filtering import FIELDS, STATUSES, TAG_FIELDS, compile_filter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Strings of any character but NUL (which the parser refuses); those MLflow
# cannot take (quotes, backticks, backslashes, control characters) are
# refused by the compiler, and the rest must reach MLflow intact.
STRINGS = st.one_of(
    st.text(st.characters(exclude_categories=(), exclude_characters="\x00"), max_size=16),
    st.text(st.characters(codec="utf-8", exclude_characters="'\"`\\"), max_size=16),
    st.sampled_from(["", " ", "a and b", "x or 1=1", "%", "--", "; --", "(a)", "é☃📈", "\u2028"]),
).map(quote)
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["-0", "-0.0", "4.9e-324", "1.7976931348623157e308", "1e-999", "2.5E+3"]),
)
TIME_TEXTS = st.one_of(
    st.sampled_from(TIMES).map(quote),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ).map(lambda when: quote(when.isoformat())),
)


def _comparison() -> st.SearchStrategy[str]:
    """A comparison MLflow can be asked for, or one just off it."""
    keyed = Fields(columns=(), maps=("tags", "params"))
    equality = st.sampled_from(["=", "!="])
    return st.one_of(
        st.tuples(
            names(Fields((), ("metrics",)), well_formed=True), st.sampled_from(OPERATORS), NUMBERS
        ),
        st.tuples(names(keyed, well_formed=True), equality, STRINGS),
        st.tuples(st.sampled_from([*TAG_FIELDS, "run_name"]), equality, STRINGS),
        st.tuples(st.just("status"), equality, st.sampled_from([*STATUSES, "DONE"]).map(quote)),
        st.tuples(
            st.just("start_time"), st.sampled_from(OPERATORS), st.one_of(NUMBERS, TIME_TEXTS)
        ),
    ).map(" ".join)


def _joined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(inner, min_size=2, max_size=4).map(" AND ".join),
        inner.map(lambda text: f"({text})"),
    )


CONJUNCTIONS = st.recursive(_comparison(), _joined, max_leaves=8)
TEXTS = weighted(
    (5, CONJUNCTIONS),
    (1, mutated(CONJUNCTIONS, encodable=False)),
    (1, filters(FIELDS, encodable=False, well_formed=True)),
    (2, filter_texts(FIELDS)),
)


def _milliseconds(value: Any) -> float:
    """start_time's value in epoch milliseconds, exactly (a fraction for a
    time with microseconds)."""
    if isinstance(value, float):
        return value
    when = datetime.fromisoformat(value)
    return ((when - EPOCH) // timedelta(microseconds=1)) / 1000


def check_read_back(found: dict[str, Any], comparison: Comparison) -> None:
    """MLflow's reading of one clause is exactly `comparison`."""
    field, value = comparison.field, comparison.value
    kinds = {"tags": "tag", "params": "parameter", "metrics": "metric"}
    if field.key is not None:
        expected = {"type": kinds[field.name], "key": field.key}
    elif field.name in TAG_FIELDS:
        expected = {"type": "tag", "key": field.name}
    else:
        expected = {"type": "attribute", "key": field.name}
    expected["comparator"] = comparison.op
    read = found.pop("value")
    assert found == expected
    if field.name == "metrics":
        assert isinstance(value, float)
        assert isinstance(read, str)
        assert float(read) == value
        assert math.copysign(1, float(read)) == math.copysign(1, value)
    elif field.name == "start_time":
        # Exactly (a time with a fraction of a millisecond is refused).
        assert type(read) is int
        assert read == _milliseconds(value), (read, value)
    else:
        assert read == value


def check_filter(text: str) -> None:
    try:
        tree = parse(text, FIELDS)
        clauses = [] if tree is None else compile_filter(tree)
    except InvalidArgument as error:
        assert_names(error, {"filter"})
        return
    if tree is None:
        return
    written = list(comparisons(tree))
    read = SearchUtils.parse_search_filter(" and ".join(clauses))  # type: ignore[no-untyped-call]
    assert len(read) == len(written) == len(clauses), (text, clauses, read)
    for found, comparison in zip(read, written, strict=True):
        check_read_back(found, comparison)


@settings(max_examples=1000, deadline=None, database=None, derandomize=True)
@given(text=TEXTS)
def test_mlflow_reads_any_compiled_text_as_exactly_its_comparisons(text: str) -> None:
    check_filter(text)


def test_start_time_is_its_exact_millisecond() -> None:
    # int(when.timestamp() * 1000) gave 1079337347471: one millisecond early.
    tree = parse('start_time >= "2004-03-15T07:55:47.472Z"', FIELDS)
    assert tree is not None
    assert compile_filter(tree) == ["attributes.start_time >= 1079337347472"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('start_time >= "2004-03-15T07:55:47.4721Z"', "has whole milliseconds only for runs"),
        ("start_time > 1e19", "is out of range: at most ±9007199254740991 milliseconds"),
        ("start_time < -9007199254740992", "is out of range"),
    ],
)
def test_a_start_time_runs_cannot_hold_is_refused(text: str, message: str) -> None:
    tree = parse(text, FIELDS)
    assert tree is not None
    with pytest.raises(InvalidArgument, match=message):
        compile_filter(tree)
