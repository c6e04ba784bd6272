"""No filter text changes the structure of ListExperiments' query
(CONTRACT §10): for any text that parses and compiles, the statement's SQL,
on PostgreSQL and on SQLite, is the SQL of the same tree with every literal
replaced by a fixed one of its kind (every string "s", every number 0.0,
every map key "k", a fixed UUID and time; true, false and null kept, as they
choose the comparison's form), so the statement depends on the tree's shape
alone, and every literal and key is among its bound parameters. Every text
that does not compile is InvalidArgument naming `filter`, on both dialects
alike. The same holds for the order: any order_by text that parses sorts
by SQL that depends on its shape alone."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from experiments_svc.filtering import FIELDS, TIME_COLUMNS, FilterCompiler
from experiments_svc.models import OPTIONAL_TEXT_FIELDS, ExperimentRow
from experiments_svc.ordering import BEST_OF, SortOrder
from experiments_svc.ordering import FIELDS as ORDER_FIELDS
from research_common import diff, ordering
from research_common.errors import InvalidArgument
from research_common.filters import (
    And,
    Comparison,
    Field,
    Fields,
    Node,
    Not,
    Or,
    parse,
)
from research_common.ordering import OrderKey
from tests.experiments_svc.test_filter import EXPRESSIONS, render
from tests.research_common.filter_texts import (
    OPERATORS,
    filter_texts,
    filters,
    mutated,
    names,
    order_texts,
    quote,
    weighted,
)
from tests.research_common.test_filters_fuzz import assert_names

TABLE: Table = ExperimentRow.__table__  # type: ignore[assignment]
DIALECTS: list[Dialect] = [postgresql.dialect(), sqlite.dialect()]  # type: ignore[no-untyped-call]
FIXED_KEY = "k"
FIXED_STRATEGY = "00000000-0000-4000-8000-000000000000"
FIXED_TIME = "2000-01-01T00:00:00+00:00"
MAPS = Fields(columns=(), maps=FIELDS.maps)


def _compilable_comparison() -> st.SearchStrategy[str]:
    """A comparison the service compiles: a value of the field's kind, any
    string, any finite number."""
    strings = st.text(st.characters(exclude_categories=(), exclude_characters="\x00")).map(quote)
    ordering_ops = st.sampled_from(OPERATORS)
    equality = st.sampled_from(["=", "!="])
    entry = st.tuples(
        names(MAPS, well_formed=True),
        ordering_ops,
        st.one_of(strings, st.floats(allow_nan=False, allow_infinity=False).map(repr)),
    )
    entry_word = st.tuples(
        names(MAPS, well_formed=True), equality, st.sampled_from(["true", "false", "null"])
    )
    text = st.tuples(st.sampled_from(OPTIONAL_TEXT_FIELDS), ordering_ops, strings)
    text_null = st.tuples(st.sampled_from(OPTIONAL_TEXT_FIELDS), equality, st.just("null"))
    strategy = st.tuples(
        st.just("strategy_id"),
        equality,
        st.one_of(st.uuids().map(str).map(quote), st.sampled_from(["null", quote(FIXED_STRATEGY)])),
    )
    moment = st.tuples(
        st.sampled_from(TIME_COLUMNS),
        ordering_ops,
        st.datetimes(timezones=st.timezones()).map(lambda when: quote(when.isoformat())),
    )
    return st.one_of(entry, entry_word, text, text_null, strategy, moment).map(" ".join)


def _joined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.sampled_from([" AND ", " OR "]), st.lists(inner, min_size=2, max_size=4)).map(
            lambda pair: pair[0].join(f"({text})" for text in pair[1])
        ),
        inner.map(lambda text: f"NOT ({text})"),
    )


COMPILABLE = st.recursive(_compilable_comparison(), _joined, max_leaves=8)
# Mostly texts the service compiles (above, and the differential test's
# expressions), then well-formed texts of any values, edited ones and texts
# of any kind.
TEXTS = weighted(
    (4, COMPILABLE),
    (2, EXPRESSIONS.map(render)),
    (1, filters(FIELDS, encodable=False, well_formed=True)),
    (1, mutated(COMPILABLE, encodable=False)),
    (2, filter_texts(FIELDS)),
)


def _fixed(comparison: Comparison) -> Comparison:
    """The comparison with its key and value replaced by fixed ones of the
    same kind."""
    field = comparison.field
    value = comparison.value
    if isinstance(value, float) and not isinstance(value, bool):
        value = 0.0
    elif isinstance(value, str):
        value = {"strategy_id": FIXED_STRATEGY, **dict.fromkeys(TIME_COLUMNS, FIXED_TIME)}.get(
            field.name, "s"
        )
    key = None if field.key is None else FIXED_KEY
    return Comparison(Field(field.name, key), comparison.op, value, comparison.position)


def shape(node: Node) -> Node:
    """The tree with every literal replaced (see _fixed)."""
    if isinstance(node, Comparison):
        return _fixed(node)
    if isinstance(node, Not):
        return Not(shape(node.item), node.position)
    items = tuple(shape(item) for item in node.items)
    return And(items) if isinstance(node, And) else Or(items, node.position)


def _compiled(dialect: Dialect, tree: Node) -> SQLCompiler:
    condition = FilterCompiler(TABLE, dialect.name).compile(tree)
    compiled = select(TABLE.c.id).where(condition).compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return compiled


def _structure(compiled: SQLCompiler) -> tuple[str, list[str], list[str] | None]:
    """The SQL text and the names (and, for positional dialects, the order)
    of its parameters."""
    return str(compiled), list(compiled.params), compiled.positiontup


def _bound(compiled: SQLCompiler) -> list[Any]:
    values: list[Any] = []
    for value in compiled.params.values():
        values += list(value) if isinstance(value, list | tuple) else [value]
    return values


def _literals(dialect: Dialect, comparison: Comparison) -> list[Any]:
    """What must be bound for `comparison`: its key and its value as the
    query binds them."""
    field, value = comparison.field, comparison.value
    bound: list[Any] = []
    if field.key is not None:
        bound.append(field.key if dialect.name == "postgresql" else f'$."{field.key}"')
    if isinstance(value, bool):
        bound.append("true" if value else "false")
    elif field.name == "strategy_id" and isinstance(value, str):
        bound.append(uuid.UUID(value))
    elif field.name in TIME_COLUMNS and isinstance(value, str):
        bound.append(datetime.fromisoformat(value))
    elif value is not None:
        bound.append(value)
    return bound


def _constant(node: Node) -> bool | None:
    """What a subtree always is, when the compiler makes it a constant
    (strategy_id and the times are never null), else None."""
    if isinstance(node, Comparison):
        constant = node.field.name in ("strategy_id", *TIME_COLUMNS) and node.value is None
        return node.op == "!=" if constant else None
    if isinstance(node, Not):
        inner = _constant(node.item)
        return None if inner is None else not inner
    found = [_constant(item) for item in node.items]
    absorbing = isinstance(node, Or)  # true absorbs an OR, false an AND
    if absorbing in found:
        return absorbing
    return (not absorbing) if all(value is not None for value in found) else None


def reaching(node: Node) -> list[Comparison]:
    """The comparisons that reach the statement: SQLAlchemy drops those a
    constant decides (`x OR true` is true)."""
    if _constant(node) is not None:
        return []
    if isinstance(node, Comparison):
        return [node]
    if isinstance(node, Not):
        return reaching(node.item)
    return [c for item in node.items for c in reaching(item)]


def check_filter(text: str) -> None:
    try:
        tree = parse(text, FIELDS)
    except InvalidArgument as error:
        assert_names(error, {"filter"})
        return
    if tree is None:
        return
    refusals = []
    for dialect in DIALECTS:
        try:
            compiled = _compiled(dialect, tree)
        except InvalidArgument as error:
            assert_names(error, {"filter"})
            refusals.append(error.message)
            continue
        assert _structure(compiled) == _structure(_compiled(dialect, shape(tree))), text
        bound = _bound(compiled)
        for comparison in reaching(tree):
            for literal in _literals(dialect, comparison):
                assert literal in bound, (text, literal, compiled.params)
    # A refusal is the language's, not a dialect's.
    assert len(refusals) in (0, len(DIALECTS)), refusals
    assert len(set(refusals)) <= 1, refusals


@settings(max_examples=1000, deadline=None, database=None, derandomize=True)
@given(text=TEXTS)
def test_no_filter_text_changes_the_statement(text: str) -> None:
    check_filter(text)


def test_the_shape_check_sees_a_pasted_literal() -> None:
    # What the property would catch: the same shape with a literal written
    # into the SQL instead of bound is another statement.
    tree = parse('dataset_version = "ds1" AND metrics.a > 1', FIELDS)
    assert tree is not None
    dialect = DIALECTS[0]
    compiled = _compiled(dialect, tree)
    pasted = str(
        select(TABLE.c.id)
        .where(FilterCompiler(TABLE, dialect.name).compile(tree))
        .compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    )
    assert "'ds1'" in pasted
    assert str(compiled) != pasted
    assert str(compiled) == str(_compiled(dialect, shape(tree)))
    bound = _bound(compiled)
    assert "ds1" in bound
    assert "a" in bound
    assert 1.0 in bound


def _order_shape(keys: tuple[OrderKey, ...]) -> tuple[OrderKey, ...]:
    return tuple(
        OrderKey(
            Field(key.field.name, None if key.field.key is None else FIXED_KEY), key.descending
        )
        for key in keys
    )


def _order_compiled(dialect: Dialect, keys: tuple[OrderKey, ...]) -> SQLCompiler:
    order = SortOrder(TABLE, dialect.name, keys)
    statement = select(TABLE.c.id, *order.columns()).order_by(*order.clauses())
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return compiled


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(text=order_texts(ORDER_FIELDS))
def test_no_order_text_changes_the_statement(text: str) -> None:
    directions = ordering.Directions(diff.MINIMIZE)
    try:
        keys = ordering.parse(text, ORDER_FIELDS, BEST_OF, directions)
    except InvalidArgument as error:
        assert_names(error, {"order_by"})
        return
    for dialect in DIALECTS:
        compiled = _order_compiled(dialect, keys)
        fixed = _order_compiled(dialect, _order_shape(keys))
        assert _structure(compiled) == _structure(fixed), text
        bound = _bound(compiled)
        for key in keys:
            if key.field.key is not None:
                literal = key.field.key if dialect.name == "postgresql" else f'$."{key.field.key}"'
                assert literal in bound, (text, literal, compiled.params)
