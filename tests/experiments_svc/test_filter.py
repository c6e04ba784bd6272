"""ListExperiments' filter (CONTRACT §10): a differential test of random
expressions against a reference evaluation in Python over the same rows,
on PostgreSQL and SQLite; every literal bound, never pasted; and the 400s."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from experiments_svc.db import create_engine
from experiments_svc.filtering import FIELDS, FilterCompiler
from experiments_svc.models import ExperimentRow
from experiments_svc.store import ExperimentStore
from research.experiments.v1 import experiments_pb2 as pb
from research_common.filters import And, Comparison, Field, Node, Not, Or, parse
from tests.experiments_svc.conftest import OTHER_STRATEGY, STRATEGY
from tests.fixtures.grpc import assert_invalid, rpc_error

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub

TABLE: Table = ExperimentRow.__table__  # type: ignore[assignment]
START = datetime(2026, 1, 1, tzinfo=UTC)
TEXTS = ["ds1", "ds2", "Ds3", "a b", 'q"uote', "é"]
NUMBERS = [-1.0, 0.0, 0.5, 1.0, 2.5, 10.0]
METRIC_KEYS = ["a", "b", "c.d"]
PARAM_KEYS = ["x", "y"]
_MISSING = object()


def _entry(rng: random.Random) -> Any:
    """A stored free-form value, or _MISSING (the key is absent)."""
    return rng.choice(
        [_MISSING, _MISSING, None, True, False, rng.choice(NUMBERS), 3, rng.choice(TEXTS)]
    )


def random_rows(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        metrics = {k: v for k in METRIC_KEYS if (v := _entry(rng)) is not _MISSING}
        parameters = {k: v for k in PARAM_KEYS if (v := _entry(rng)) is not _MISSING}
        moment = START + timedelta(minutes=index)
        rows.append(
            {
                "id": uuid.uuid4(),
                "strategy_id": uuid.UUID(rng.choice([STRATEGY, OTHER_STRATEGY])),
                "dataset_version": rng.choice([None, *TEXTS]),
                "feature_version": None,
                "model_version": rng.choice([None, "m1"]),
                "git_commit_hash": None,
                "mlflow_run_id": None,
                "parameters": parameters,
                "metrics": metrics,
                "artifacts": {},
                "created_at": moment,
                "updated_at": moment,
            }
        )
    return rows


# --- the reference ---------------------------------------------------------------


def _holds(left: Any, op: str, right: Any) -> bool:
    return bool(
        {
            "=": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
    )


def reference(node: Node, row: dict[str, Any]) -> bool:
    """The contract's meaning of a filter, in plain Python."""
    if isinstance(node, Not):
        return not reference(node.item, row)
    if isinstance(node, And):
        return all(reference(item, row) for item in node.items)
    if isinstance(node, Or):
        return any(reference(item, row) for item in node.items)
    field, op, value = node.field, node.op, node.value
    if field.key is not None:
        stored = row[field.name].get(field.key, _MISSING)
        if value is None:
            is_null = stored is None or stored is _MISSING
            return is_null if op == "=" else not is_null
        if isinstance(value, bool):
            return isinstance(stored, bool) and _holds(stored, op, value)
        if isinstance(value, float):
            number = isinstance(stored, int | float) and not isinstance(stored, bool)
            return number and _holds(float(stored), op, value)
        return isinstance(stored, str) and _holds(stored, op, value)
    stored = row[field.name]
    if field.name == "strategy_id":
        if value is None:
            return op == "!="
        return _holds(stored, op, uuid.UUID(str(value)))
    if field.name in ("created_at", "updated_at"):
        if value is None:
            return op == "!="
        return _holds(stored, op, datetime.fromisoformat(str(value)))
    if value is None:
        return (stored is None) if op == "=" else (stored is not None)
    return stored is not None and _holds(stored, op, value)


# --- random expressions -------------------------------------------------------------

OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


def _comparisons() -> st.SearchStrategy[Comparison]:
    entry = st.builds(
        lambda field, op, value: _fix_op(Comparison(field, op, value, 1)),
        st.one_of(
            st.sampled_from(METRIC_KEYS).map(lambda k: Field("metrics", k)),
            st.sampled_from(PARAM_KEYS).map(lambda k: Field("parameters", k)),
        ),
        OPS,
        st.one_of(
            st.sampled_from([*NUMBERS, 3.0]),
            st.sampled_from(TEXTS),
            st.booleans(),
            st.none(),
        ),
    )
    text_column = st.builds(
        lambda name, op, value: _fix_op(Comparison(Field(name), op, value, 1)),
        st.sampled_from(["dataset_version", "model_version"]),
        OPS,
        st.one_of(st.sampled_from([*TEXTS, "m1", "d"]), st.none()),
    )
    strategy = st.builds(
        lambda op, value: Comparison(Field("strategy_id"), op, value, 1),
        st.sampled_from(["=", "!="]),
        st.sampled_from([STRATEGY, OTHER_STRATEGY]),
    )
    created = st.builds(
        lambda op, minutes: Comparison(
            Field("created_at"),
            op,
            (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
            1,
        ),
        OPS,
        st.integers(-1, 41),
    )
    return st.one_of(entry, text_column, strategy, created)


def _fix_op(comparison: Comparison) -> Comparison:
    """= or != for null and booleans, as the language requires."""
    if comparison.value is None or isinstance(comparison.value, bool):
        op = "!=" if comparison.op == "!=" else "="
        return Comparison(comparison.field, op, comparison.value, comparison.position)
    return comparison


EXPRESSIONS: st.SearchStrategy[Node] = st.recursive(
    _comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=6,
)


def render(node: Node) -> str:
    """The filter text of a tree (what a client would send)."""
    if isinstance(node, Not):
        return f"NOT ({render(node.item)})"
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return joiner.join(f"({render(item)})" for item in node.items)
    value = node.value
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{node.field} {node.op} {text}"


# --- the tests ------------------------------------------------------------------------


async def insert_rows(database_url: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write `rows` straight into the store of `database_url`."""
    engine = create_engine(database_url, timeout=5)
    try:
        store = ExperimentStore(engine)
        for row in rows:
            await store.insert(row)
    finally:
        await engine.dispose()
    return rows


@pytest.fixture
async def table(stub: ExperimentServiceAsyncStub, database_url: str) -> list[dict[str, Any]]:
    """40 random rows, written straight into the store."""
    return await insert_rows(database_url, random_rows(seed=11, count=40))


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(expression=EXPRESSIONS)
async def test_the_service_agrees_with_the_reference(
    stub: ExperimentServiceAsyncStub, table: list[dict[str, Any]], expression: Node
) -> None:
    text = render(expression)
    parsed = parse(text, FIELDS)
    assert parsed is not None
    expected = [str(row["id"]) for row in reversed(table) if reference(parsed, row)]
    response = await stub.ListExperiments(pb.ListExperimentsRequest(filter=text, page_size=1000))
    assert [e.id for e in response.experiments] == expected, text


async def test_a_filter_pages_with_its_token(
    stub: ExperimentServiceAsyncStub, table: list[dict[str, Any]]
) -> None:
    text = 'metrics.a >= 0 OR dataset_version != "ds1"'
    parsed = parse(text, FIELDS)
    assert parsed is not None
    expected = [str(row["id"]) for row in reversed(table) if reference(parsed, row)]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListExperiments(
            pb.ListExperimentsRequest(filter=text, page_size=3, page_token=token)
        )
        seen += [e.id for e in page.experiments]
        token = page.next_page_token
        if not token:
            break
    assert seen == expected
    # The token is bound to the filter.
    first = await stub.ListExperiments(pb.ListExperimentsRequest(filter=text, page_size=3))
    other = pb.ListExperimentsRequest(filter="metrics.a > 0", page_token=first.next_page_token)
    assert_invalid(await rpc_error(stub.ListExperiments(other)), "page_token", "another query")


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(expression=EXPRESSIONS)
def test_every_literal_is_a_bound_parameter(expression: Node) -> None:
    parsed = parse(render(expression), FIELDS)
    assert parsed is not None
    literals = [
        c.value
        for c in _all(parsed)
        if isinstance(c.value, str) and c.field.name not in ("strategy_id",)
    ]
    dialects: list[Dialect] = [postgresql.dialect(), sqlite.dialect()]  # type: ignore[no-untyped-call]
    for dialect in dialects:
        compiler = FilterCompiler(TABLE, dialect.name)
        sql = str(select(TABLE.c.id).where(compiler.compile(parsed)).compile(dialect=dialect))
        for literal in literals:
            assert f"'{literal}'" not in sql
            if len(literal) > 2:
                assert literal not in sql, (literal, sql)


def _all(node: Node) -> list[Comparison]:
    if isinstance(node, Comparison):
        return [node]
    if isinstance(node, Not):
        return _all(node.item)
    return [c for item in node.items for c in _all(item)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.a >", "filter expects a value"),
        ("metrics.a > 1 AND metrics.b < 2 OR metrics.c = 1", "filter mixes AND and OR at position"),
        ("sharpe > 1", "filter names an unknown field 'sharpe' at position 1; known fields: "),
        ('dataset_version = "abc', "filter has a string that never ends, from position 19"),
        ("metrics.a > null", "filter compares null with > at position 13"),
        ('strategy_id = "nope"', "filter strategy_id must be a UUID"),
        ('strategy_id < "' + STRATEGY + '"', "filter strategy_id takes = or != only"),
        ('created_at > "yesterday"', "filter created_at compares with a quoted RFC 3339 time"),
        ("dataset_version = 3", "filter dataset_version compares with a quoted string"),
        ("metrics.a < true", "filter metrics.a compares true or false with <"),
        ("metrics.a = 1 " + "AND metrics.a = 1 " * 50, "filter has more than 50 comparisons"),
        ("(" * 11 + "metrics.a = 1" + ")" * 11, "filter nests deeper than 10 levels"),
        ("metrics.a = " + '"' + "x" * 5000 + '"', "filter is 5014 characters; at most 4096"),
    ],
)
async def test_a_bad_filter_is_invalid_argument_naming_it(
    stub: ExperimentServiceAsyncStub, text: str, message: str
) -> None:
    error = await rpc_error(stub.ListExperiments(pb.ListExperimentsRequest(filter=text)))
    assert_invalid(error, "filter", message)
