"""The filter language's parser (research_common.filters): the tree it
builds, and the position and field every refusal names."""

from __future__ import annotations

import pytest

from research_common.errors import InvalidArgument
from research_common.filters import And, Comparison, Field, Fields, Not, Or, comparisons, parse

FIELDS = Fields(columns=("run_type", "created_at"), maps=("metrics", "tags"))


def test_a_tree_of_every_construct() -> None:
    tree = parse(
        'NOT (metrics.oos.sharpe >= -1.5e0 OR tags.kind = "a \\"b\\" \\\\c") AND run_type != null',
        FIELDS,
    )
    assert tree == And(
        (
            Not(
                Or(
                    (
                        Comparison(Field("metrics", "oos.sharpe"), ">=", -1.5, 6),
                        Comparison(Field("tags", "kind"), "=", 'a "b" \\c', 38),
                    )
                )
            ),
            Comparison(Field("run_type"), "!=", None, 69),
        )
    )
    assert [str(c.field) for c in comparisons(tree)] == [
        "metrics.oos.sharpe",
        "tags.kind",
        "run_type",
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("run_type = true", True), ("run_type = false", False), ("run_type = 10", 10.0)],
)
def test_values(text: str, value: object) -> None:
    tree = parse(text, FIELDS)
    assert isinstance(tree, Comparison)
    assert tree.value == value


def test_an_empty_filter_is_none() -> None:
    assert parse("   ", FIELDS) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run_type", "filter expects an operator (= != < <= > >=) after run_type at position 9"),
        ("= 1", "filter expects a field name or '(' at position 1, found '='"),
        ("(run_type = 1", "filter expects ')' at position 14, found the end of the filter"),
        (
            "run_type = 1 run_type = 2",
            "filter expects AND, OR or the end of the filter at position 14",
        ),
        (
            "a = 1 AND b = 2 OR c = 3".replace("a", "run_type")
            .replace("b", "run_type")
            .replace("c", "run_type"),
            "filter mixes AND and OR at position",
        ),
        ("metrics = 1", "filter names 'metrics' at position 1 without a key"),
        ("metrics." + "k" * 129 + " = 1", "a key is 1 to 128 letters"),
        (
            "owner = 1",
            "unknown field 'owner' at position 1; known fields: run_type, created_at, "
            "metrics.<key>, tags.<key>",
        ),
        ('run_type = "a\\n"', "filter has an unknown escape \\n"),
        ("run_type = 1e999", "filter has a number out of range at position 12"),
        ("run_type < null", "filter compares null with < at position 12; use = or !="),
        ("run_type = 'x'", 'filter has an unexpected character "\'" at position 12'),
        ("NOT NOT run_type = 1", "filter expects a field name or '(' at position 5, found 'NOT'"),
    ],
)
def test_refusals_name_the_position(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse(text, FIELDS)
    assert message in raised.value.message, raised.value.message
    assert raised.value.message.startswith("filter ")


def test_the_bounds() -> None:
    fifty = " AND ".join(["run_type = 1"] * 50)
    assert isinstance(parse(fifty, FIELDS), And)
    with pytest.raises(InvalidArgument, match="more than 50 comparisons"):
        parse(fifty + " AND run_type = 1", FIELDS)
    ten = "(" * 9 + "run_type = 1" + ")" * 9
    assert isinstance(parse(ten, FIELDS), Comparison)
    with pytest.raises(InvalidArgument, match="nests deeper than 10 levels"):
        parse("(" + ten + ")", FIELDS)
    with pytest.raises(InvalidArgument, match="is 4097 characters; at most 4096"):
        parse(" " * 4097, FIELDS)
