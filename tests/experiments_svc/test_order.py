"""ListExperiments' order (CONTRACT §10): any order, with any filter and any
page size, pages to exactly the rows of a reference sort in Python, on
PostgreSQL and SQLite; rows created while a client pages are never seen
twice and never hide a row that existed; the 400s name `order_by`."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments_svc.filtering import FIELDS
from research.experiments.v1 import experiments_pb2 as pb
from research_common.filters import Node, parse
from research_common.ordering import MAX_KEYS
from tests.experiments_svc.test_filter import (
    EXPRESSIONS,
    METRIC_KEYS,
    PARAM_KEYS,
    START,
    insert_rows,
    random_rows,
    reference,
    render,
)
from tests.experiments_svc.test_paging import create, pages
from tests.fixtures.grpc import assert_invalid, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub

Row = dict[str, Any]
_MISSING = object()


def tied_rows(seed: int, count: int) -> list[Row]:
    """random_rows with `updated_at` drawn from three moments, so that an
    order by it has ties for the id to break."""
    rng = random.Random(seed)
    rows = random_rows(seed, count)
    for row in rows:
        row["updated_at"] = START + timedelta(hours=rng.choice([1, 2, 3]))
    return rows


@pytest.fixture
async def table(stub: ExperimentServiceAsyncStub, database_url: str) -> list[Row]:
    return await insert_rows(database_url, tied_rows(seed=7, count=45))


# --- the reference ---------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _entry_parts(value: object) -> tuple[int, float, str]:
    """(rank, number, text) of a map entry: numbers, strings, the rest."""
    if _is_number(value):
        return 0, float(value), ""  # type: ignore[arg-type]
    if isinstance(value, str):
        return 1, 0.0, value
    return 2, 0.0, ""


def reference_order(rows: list[Row], keys: list[tuple[str, bool]]) -> list[str]:
    """The contract's order in plain Python: stable sorts from the last
    part to the first (the id, in the last key's direction, then each key's
    parts). Python compares str by code point, as both databases do here,
    and uuid.UUID as PostgreSQL's uuid and SQLite's 32 hex digits sort."""
    result = sorted(rows, key=lambda row: row["id"], reverse=keys[-1][1])
    for name, descending in reversed(keys):
        head, _, key = name.partition(".")
        if not key:
            result.sort(key=lambda row: row[head], reverse=descending)
            continue
        parts = {id(row): _entry_parts(row[head].get(key, _MISSING)) for row in result}
        result.sort(key=lambda row: parts[id(row)][2], reverse=descending)
        result.sort(key=lambda row: parts[id(row)][1], reverse=descending)
        result.sort(key=lambda row: parts[id(row)][0])
    return [str(row["id"]) for row in result]


# --- random orders ------------------------------------------------------------------

ORDER_FIELDS = [
    "created_at",
    "updated_at",
    *(f"metrics.{k}" for k in METRIC_KEYS),
    *(f"parameters.{k}" for k in PARAM_KEYS),
]
ORDERS = st.lists(
    st.tuples(st.sampled_from(ORDER_FIELDS), st.sampled_from(["", "asc", "desc", "best"])),
    min_size=1,
    max_size=3,
    unique_by=lambda key: key[0],
).map(
    lambda keys: [
        (name, "asc" if word == "best" and not name.startswith("metrics.") else word)
        for name, word in keys
    ]
)


def _resolved(keys: list[tuple[str, str]]) -> list[tuple[str, bool]]:
    """Each key's direction: `best` minimizes the test's metric names (no
    built-in rule matches a, b or c.d, and the service default minimizes)."""
    return [(name, word == "desc") for name, word in keys]


def _text(keys: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {word}".strip() for name, word in keys)


async def read_all(stub: ExperimentServiceAsyncStub, **query: Any) -> list[str]:
    found, _ = await pages(stub, **query)
    return [experiment_id for page in found for experiment_id in page]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    keys=ORDERS,
    expression=st.one_of(st.none(), EXPRESSIONS),
    page_size=st.integers(1, 7),
)
async def test_paging_any_order_and_filter_gives_the_reference_rows(
    stub: ExperimentServiceAsyncStub,
    table: list[Row],
    keys: list[tuple[str, str]],
    expression: Node | None,
    page_size: int,
) -> None:
    text = render(expression) if expression is not None else ""
    tree = parse(text, FIELDS)
    rows = [row for row in table if tree is None or reference(tree, row)]
    expected = reference_order(rows, _resolved(keys))
    query: dict[str, Any] = {"order_by": _text(keys), "filter": text}
    unpaged = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=1000, **query))
    assert [e.id for e in unpaged.experiments] == expected, query
    assert await read_all(stub, page_size=page_size, **query) == expected, query


async def test_best_follows_the_metrics_direction(
    stub: ExperimentServiceAsyncStub, table: list[Row]
) -> None:
    by_a = _resolved([("metrics.a", "asc")])
    ascending = reference_order(table, by_a)
    request = pb.ListExperimentsRequest(order_by="metrics.a best", page_size=1000)
    assert [e.id for e in (await stub.ListExperiments(request)).experiments] == ascending
    request.maximize.append("a")
    descending = reference_order(table, [("metrics.a", True)])
    assert [e.id for e in (await stub.ListExperiments(request)).experiments] == descending
    assert descending != ascending


async def test_a_sharpe_is_best_highest_and_missing_values_come_last(
    stub: ExperimentServiceAsyncStub,
) -> None:
    values: list[object] = [1.5, None, 2.5, "n/a", -0.5, 2.5]
    ids = [await create(stub, metrics=struct({"oos_sharpe": v})) for v in values]
    no_metric = await create(stub)
    found = await read_all(stub, order_by="metrics.oos_sharpe best", page_size=2)
    # Numbers highest first (the tie by id, descending), then the string,
    # then a null and a missing metric (the tie by id again).
    tied = sorted([ids[2], ids[5]], reverse=True)
    rest = sorted([ids[1], no_metric], reverse=True)
    assert found == [*tied, ids[0], ids[4], ids[3], *rest]


async def test_mixed_directions_page_exactly(
    stub: ExperimentServiceAsyncStub, table: list[Row]
) -> None:
    order = [("updated_at", "desc"), ("parameters.x", "asc"), ("created_at", "asc")]
    expected = reference_order(table, _resolved(order))
    assert await read_all(stub, order_by=_text(order), page_size=4) == expected


async def test_rows_created_while_paging_any_order_are_never_seen_twice(
    stub: ExperimentServiceAsyncStub,
) -> None:
    rng = random.Random(5)
    for _ in range(30):
        await create(stub, metrics=struct({"m": rng.choice([0, 1, 2, 3])}))
    order = "metrics.m desc"
    before = await read_all(stub, order_by=order, page_size=1000)
    stop = asyncio.Event()
    wrote = asyncio.Event()

    async def insert_meanwhile() -> None:
        while not stop.is_set():
            await create(stub, metrics=struct({"m": rng.choice([0, 1, 2, 3])}))
            wrote.set()
            await asyncio.sleep(0)

    writer = asyncio.create_task(insert_meanwhile())
    seen: list[str] = []
    token = ""
    try:
        while True:
            # At least one row lands between any two pages, however slow
            # the writer is on a busy machine.
            wrote.clear()
            request = pb.ListExperimentsRequest(order_by=order, page_size=3, page_token=token)
            page = await stub.ListExperiments(request)
            seen.extend(experiment.id for experiment in page.experiments)
            token = page.next_page_token
            if not token:
                break
            await asyncio.wait_for(wrote.wait(), 10)
    finally:
        stop.set()
        await writer
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in set(before)] == before  # every row, in order
    assert len(seen) > len(before) or not seen  # the writer did land rows


async def test_a_token_is_bound_to_its_order(
    stub: ExperimentServiceAsyncStub, table: list[Row]
) -> None:
    first = await stub.ListExperiments(
        pb.ListExperimentsRequest(order_by="metrics.a desc", page_size=2)
    )
    other = pb.ListExperimentsRequest(order_by="metrics.a asc", page_token=first.next_page_token)
    assert_invalid(await rpc_error(stub.ListExperiments(other)), "page_token", "another query")
    # The same order written another way is the same query.
    same = pb.ListExperimentsRequest(order_by="metrics.a  DESC", page_token=first.next_page_token)
    rest = [e.id for e in (await stub.ListExperiments(same)).experiments]
    assert rest == reference_order(table, [("metrics.a", True)])[2:]
    # The default order, written out, reads the default order's tokens.
    default = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=2))
    spelled = pb.ListExperimentsRequest(
        order_by="created_at desc", page_size=2, page_token=default.next_page_token
    )
    ids = [e.id for e in (await stub.ListExperiments(spelled)).experiments]
    assert ids == [str(row["id"]) for row in table[::-1][2:4]]


async def test_skip_pages_by_offset_in_any_order(
    stub: ExperimentServiceAsyncStub, table: list[Row]
) -> None:
    expected = reference_order(table, [("parameters.y", True)])
    page = await stub.ListExperiments(
        pb.ListExperimentsRequest(order_by="parameters.y desc", skip=5, limit=4)
    )
    assert [e.id for e in page.experiments] == expected[5:9]
    rest = await read_all(stub, order_by="parameters.y desc", page_size=1000, skip=9)
    assert rest == expected[9:]


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ("sharpe", "order_by names an unknown field 'sharpe' at position 1; known fields: "),
        ("created_at up", "order_by has an unknown word 'up' at position 12 after created_at"),
        ("created_at desc nulls", "order_by expects ',' or the end at position 17"),
        ("created_at,", "order_by has an empty key at position 12"),
        ("parameters.x best", "order_by orders parameters.x by best at position 14"),
        ("updated_at, updated_at desc", "order_by names 'updated_at' more than once"),
        ("metrics", "order_by names 'metrics' at position 1 without a key"),
        ("metrics.a b", "order_by has an unknown word 'b' at position 11"),
        (",".join(["created_at"] * (MAX_KEYS + 1)), f"at most {MAX_KEYS}"),
        ("metrics." + "k" * 1100, "order_by is 1108 characters; at most 1024"),
    ],
)
async def test_a_bad_order_is_invalid_argument_naming_it(
    stub: ExperimentServiceAsyncStub, order_by: str, message: str
) -> None:
    error = await rpc_error(stub.ListExperiments(pb.ListExperimentsRequest(order_by=order_by)))
    assert_invalid(error, "order_by", message)


async def test_maximize_and_minimize_of_one_metric_is_refused(
    stub: ExperimentServiceAsyncStub,
) -> None:
    request = pb.ListExperimentsRequest(order_by="metrics.a best", maximize=["a"], minimize=["a"])
    assert_invalid(await rpc_error(stub.ListExperiments(request)), "maximize", "both name 'a'")
