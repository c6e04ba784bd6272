"""The filter and order_by parsers (research_common.filters, .ordering) over
arbitrary text, with both lists' fields: whatever the text, the only error
either ever raises is InvalidArgument whose message starts with, and whose
one BadRequest violation names, the request field (`filter`; `order_by` or
`maximize`): never an IndexError, RecursionError or any other exception,
which would reach the caller as a 500. What parses is a tree within the
bounds, and an order parses back from its canonical text to the same keys."""

from __future__ import annotations

import pytest
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments_svc.filtering import FIELDS as EXPERIMENT_FILTER_FIELDS
from experiments_svc.ordering import BEST_OF
from experiments_svc.ordering import FIELDS as EXPERIMENT_ORDER_FIELDS
from research_common import diff, filters, ordering
from research_common.errors import InvalidArgument
from research_common.filters import Fields, Node, Not, comparisons
from tests.research_common.filter_texts import filter_texts, order_texts
from tracking_svc.filtering import FIELDS as RUN_FILTER_FIELDS

# ListRuns' order fields (CONTRACT §10), as the contract lists them.
RUN_ORDER_FIELDS = Fields(columns=("start_time", "end_time"), maps=("metrics", "params"))
FILTER_FIELDS = {"experiments": EXPERIMENT_FILTER_FIELDS, "runs": RUN_FILTER_FIELDS}
ORDER_FIELDS = {"experiments": EXPERIMENT_ORDER_FIELDS, "runs": RUN_ORDER_FIELDS}
EXAMPLES = 1000


def assert_names(error: InvalidArgument, allowed: set[str]) -> None:
    """The error's message starts with the request field its one
    BadRequest violation names, one of `allowed`."""
    (detail,) = error.details
    assert isinstance(detail, error_details_pb2.BadRequest)
    (violation,) = detail.field_violations
    assert violation.field in allowed, error.message
    assert violation.description == error.message
    assert error.message.startswith(f"{violation.field} "), error.message


def _depth(node: Node) -> int:
    if isinstance(node, filters.Comparison):
        return 0
    if isinstance(node, Not):
        return 1 + _depth(node.item)
    return max(_depth(item) for item in node.items)


def check_filter(text: str, fields: Fields) -> None:
    try:
        tree = filters.parse(text, fields)
    except InvalidArgument as error:
        assert_names(error, {"filter"})
        return
    if tree is None:
        assert not text.strip()
        return
    assert len(text) <= filters.MAX_CHARS
    found = list(comparisons(tree))
    assert 1 <= len(found) <= filters.MAX_COMPARISONS
    assert _depth(tree) <= filters.MAX_DEPTH
    for comparison in found:
        assert comparison.op in filters.OPERATORS
        assert 1 <= comparison.position <= len(text)
        name = comparison.field.name
        assert name in fields.maps if comparison.field.key is not None else name in fields.columns
        assert text[comparison.position - 1 :].startswith(name)


@pytest.mark.parametrize("fields", list(FILTER_FIELDS.values()), ids=list(FILTER_FIELDS))
def test_any_filter_text_parses_or_is_invalid_argument_naming_filter(fields: Fields) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
    @given(text=filter_texts(fields))
    def check(text: str) -> None:
        check_filter(text, fields)

    check()


@pytest.mark.parametrize(
    "text",
    [
        "(" * 100_000,
        "NOT (" * 5000 + "run_type = 1" + ")" * 5000,
        "metrics.a = " + "9" * 4000,
        '"' + "\\" * 4000,
        "run_type = \x00",
        'run_type = "\\\x00"',
        'run_type = "\x00"',
        "\ud800",
        "run_type = 1e999 AND",
        "metrics." + "k" * 4000 + " = 1",
    ],
)
def test_edge_filters_are_invalid_argument_naming_filter(text: str) -> None:
    for fields in FILTER_FIELDS.values():
        with pytest.raises(InvalidArgument) as raised:
            filters.parse(text, fields)
        assert_names(raised.value, {"filter"})


NAMES = st.lists(st.sampled_from(["a", "b", "oos.sharpe", "", "x" * 200]), max_size=3)


def check_order(text: str, fields: Fields, maximize: list[str], minimize: list[str]) -> None:
    directions = ordering.Directions(diff.MINIMIZE, maximize, minimize)
    try:
        keys = ordering.parse(text, fields, BEST_OF, directions)
    except InvalidArgument as error:
        assert_names(error, {"order_by", "maximize"})
        return
    if not keys:
        assert not text.strip()
        return
    assert len(keys) <= ordering.MAX_KEYS
    assert len({str(key.field) for key in keys}) == len(keys)
    again = ordering.parse(ordering.canonical(keys), fields, BEST_OF, directions)
    assert again == keys


@pytest.mark.parametrize("fields", list(ORDER_FIELDS.values()), ids=list(ORDER_FIELDS))
def test_any_order_text_parses_or_is_invalid_argument_naming_its_field(fields: Fields) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
    @given(text=order_texts(fields), maximize=NAMES, minimize=NAMES)
    def check(text: str, maximize: list[str], minimize: list[str]) -> None:
        check_order(text, fields, maximize, minimize)

    check()
