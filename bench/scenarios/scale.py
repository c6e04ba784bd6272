"""5. Scale: ListExperiments filtered by strategy and by a lineage field
(dataset_version) as the table grows to 1,000,000 rows, bulk-loaded
server-side (generate_series) into a database of the harness's own.

At each size: the in-service time of each call (the service's own
`duration_ms`, from the interceptor's log record: handler, query and
conversion, without the network) and the client's round trip, p50 and p99;
EXPLAIN ANALYZE of the query the store sends, checked for an index scan and
no sort. At the largest size, the cost of a deep `skip`, of pages by token,
and of an order by a metric (`order_by="metrics.oos_sharpe desc"`): the
first page, the first page of one strategy, and a page 1,000 rows deep by
token, each with the EXPLAIN ANALYZE of the very statement the service sent;
then the same again with an index on the order's sort expressions, built on
this throwaway copy only (the schema has none) to say what one would buy and
cost, and dropped again.
Target: p50 in-service <= 5 ms at 1M rows, index used."""

from __future__ import annotations

import logging
import time
from typing import Any

from grpc import aio
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from bench import plans
from bench.context import Context
from bench.database import (
    DATASETS,
    STRATEGIES,
    Sent,
    bench_database,
    dataset_version,
    execute,
    explain,
    load_rows,
    position_at,
    relation_mb,
    statements_sent,
    strategy_id,
)
from bench.report import Row
from bench.stats import percentile
from experiments_svc.config import Settings
from experiments_svc.models import ExperimentRow
from experiments_svc.ordering import BEST_OF, SortOrder
from experiments_svc.ordering import FIELDS as ORDER_FIELDS
from experiments_svc.server import create_server
from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research_common import diff, ordering
from research_common.page_tokens import PageTokens

TARGET_MS = 5.0
CALLS = 200
LIMIT = 100
_ORDER = "ORDER BY created_at DESC, id DESC"
QUERIES = {
    "strategy_id": f"SELECT * FROM experiments WHERE strategy_id = $1 {_ORDER} LIMIT 100",
    "dataset_version": f"SELECT * FROM experiments WHERE dataset_version = $1 {_ORDER} LIMIT 100",
}
# The metric order: no index can serve it (the key is any JSON key), so each
# call reads every row it may return; fewer calls than the indexed rows.
METRIC_ORDER = "metrics.oos_sharpe desc"
ORDER_CALLS = 15
ORDER_WARMUP = 3
ORDER_DEPTH = 1_000
# What-if indexes, created on the bench's own database only.
CAST_INDEX = "ix_bench_what_if_cast"
ORDER_INDEX = "ix_bench_what_if_order"


class _Durations(logging.Handler):
    """Collects the interceptor's per-call `duration_ms` (research.rpc)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.values: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        value = getattr(record, "duration_ms", None)
        if isinstance(value, float | int):
            self.values.append(float(value))


def _request(kind: str, k: int, skip: int = 0) -> experiments_pb2.ListExperimentsRequest:
    if kind == "strategy_id":
        return experiments_pb2.ListExperimentsRequest(
            strategy_id=str(strategy_id(k % STRATEGIES)), limit=LIMIT, skip=skip
        )
    return experiments_pb2.ListExperimentsRequest(
        dataset_version=dataset_version(k % DATASETS), limit=LIMIT, skip=skip
    )


async def _timed(
    stub: experiments_pb2_grpc.ExperimentServiceAsyncStub,
    durations: _Durations,
    requests: list[experiments_pb2.ListExperimentsRequest],
    warmup: int = 10,
) -> dict[str, float]:
    for request in requests[:warmup]:  # warm-up: plans cached, pages in memory
        await stub.ListExperiments(request, timeout=30)
    durations.values.clear()
    round_trips: list[float] = []
    for request in requests:
        started = time.perf_counter()
        reply = await stub.ListExperiments(request, timeout=30)
        round_trips.append((time.perf_counter() - started) * 1000)
        if not reply.experiments:
            raise RuntimeError("a filtered page came back empty")
    service = list(durations.values)
    return {
        "in_service_p50_ms": percentile(service, 0.5),
        "in_service_p90_ms": percentile(service, 0.9),
        "in_service_p99_ms": percentile(service, 0.99),
        "round_trip_p50_ms": percentile(round_trips, 0.5),
        "round_trip_p99_ms": percentile(round_trips, 0.99),
    }


def _plan_summary(plan: str) -> dict[str, Any]:
    # The node that reads the table: "Index Scan Backward using ...", or, when
    # few rows match, "Bitmap Index Scan on ..." under a sort of those rows.
    scans = [line.strip().removeprefix("->  ") for line in plan.splitlines() if "Scan" in line]
    return {
        "index_scan": "Index Scan" in plan,
        "sort": "Sort" in plan,
        "node": scans[-1].split("  (")[0] if scans else plan.splitlines()[0],
        "plan": plan,
    }


async def run(context: Context) -> None:
    sizes = context.options.scale_rows
    durations = _Durations()
    rpc_log = logging.getLogger("research.rpc")
    rpc_log.addHandler(durations)
    rpc_log.setLevel(logging.INFO)
    rpc_log.propagate = False  # the figures are collected, not printed
    figures: dict[str, Any] = {}
    try:
        async with bench_database("bench_scale") as url:
            loaded = 0
            for size in sizes:
                started = time.perf_counter()
                await load_rows(url, loaded + 1, size)
                load_seconds = time.perf_counter() - started
                loaded = size
                print(f"  loaded {size:,} rows (+{load_seconds:.0f} s)", flush=True)
                at_size: dict[str, Any] = {"load_seconds": load_seconds}
                server, port = await create_server(Settings(database_url=url), "127.0.0.1:0")
                await server.start()
                try:
                    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
                        for kind in QUERIES:
                            requests = [_request(kind, k) for k in range(CALLS)]
                            at_size[kind] = await _timed(stub, durations, requests)
                        if size == sizes[-1]:
                            at_size["deep_skip"] = await _deep_skip(stub, durations, size)
                            at_size["deep_token"] = await _deep_token(stub, durations, url, size)
                            at_size["filter"] = await _timed(
                                stub, durations, [_filtered(k) for k in range(CALLS)]
                            )
                            at_size["metric_order"] = await _metric_order(stub, durations, url)
                finally:
                    await server.stop(0)
                for kind, sql in QUERIES.items():
                    value: object = strategy_id(7) if kind == "strategy_id" else dataset_version(7)
                    at_size[kind]["explain"] = _plan_summary(await explain(url, sql, value))
                figures[str(size)] = at_size
    finally:
        rpc_log.removeHandler(durations)
        rpc_log.propagate = True
    context.report.figures["scale"] = figures
    _report(context, figures, sizes)


async def _deep_skip(
    stub: experiments_pb2_grpc.ExperimentServiceAsyncStub, durations: _Durations, size: int
) -> dict[str, Any]:
    """In-service p50 of a strategy page (1 % of the rows) at growing skips."""
    per_strategy = size // STRATEGIES
    result: dict[str, Any] = {}
    for skip in (0, per_strategy // 100, per_strategy // 10, per_strategy // 2, per_strategy - 100):
        requests = [_request("strategy_id", k, skip) for k in range(40)]
        result[str(skip)] = await _timed(stub, durations, requests)
    return result


def _filtered(k: int) -> experiments_pb2.ListExperimentsRequest:
    """A page of one strategy's experiments with a metric filter (2/3 match)."""
    text = f'strategy_id = "{strategy_id(k % STRATEGIES)}" AND metrics.oos_sharpe > 1'
    return experiments_pb2.ListExperimentsRequest(filter=text, page_size=LIMIT)


async def _deep_token(
    stub: experiments_pb2_grpc.ExperimentServiceAsyncStub,
    durations: _Durations,
    url: str,
    size: int,
) -> dict[str, Any]:
    """In-service p50 of a page of the whole table, newest first, at growing
    depths, reached by page token: the token a client following `Link` from
    the first page would hold there (made here with the service's own key,
    rather than by walking a thousand pages to it)."""
    tokens = PageTokens(Settings().page_token_key.encode())
    result: dict[str, Any] = {}
    for depth in (0, 1_000, 10_000, 100_000):
        if depth >= size:
            continue
        token = tokens.encode({}, list(await position_at(url, depth))) if depth else ""
        request = experiments_pb2.ListExperimentsRequest(page_size=LIMIT, page_token=token)
        result[str(depth)] = await _timed(stub, durations, [request] * 40)
    return result


def _ordered(k: int | None = None, token: str = "") -> experiments_pb2.ListExperimentsRequest:
    """A page by the metric order; of strategy k when k is given."""
    text = "" if k is None else f'strategy_id = "{strategy_id(k % STRATEGIES)}"'
    return experiments_pb2.ListExperimentsRequest(
        order_by=METRIC_ORDER, filter=text, page_size=LIMIT, page_token=token
    )


async def _token_at(stub: experiments_pb2_grpc.ExperimentServiceAsyncStub, depth: int) -> str:
    """The page token `depth` rows into the metric order, got as a client
    gets it: by following next_page_token from the first page."""
    token = ""
    for _ in range(depth // LIMIT):
        reply = await stub.ListExperiments(_ordered(token=token), timeout=60)
        token = reply.next_page_token
        if not token:
            raise RuntimeError(f"the metric order ended before {depth} rows")
    return token


def _list_statement(sent: Sent) -> tuple[str, tuple[Any, ...]]:
    """The last page query among the statements a service sent."""
    for statement, parameters in reversed(sent):
        if "FROM experiments" in statement and "ORDER BY" in statement:
            return statement, parameters
    raise RuntimeError("no ListExperiments query was seen")


def _order_plan(plan: str) -> dict[str, Any]:
    read = plans.reading(plan)
    return {
        "node": read.node if read else plan.splitlines()[0],
        "rows_read": read.rows if read else 0,
        "sort": plans.sort_method(plan),
        "execution_ms": plans.execution_ms(plan),
        "jit_ms": plans.jit_ms(plan),
        "plan": plan,
    }


async def _order_rows(
    stub: experiments_pb2_grpc.ExperimentServiceAsyncStub,
    durations: _Durations,
    url: str,
    questions: dict[str, list[experiments_pb2.ListExperimentsRequest]],
    statements: dict[str, tuple[str, tuple[Any, ...]]],
) -> dict[str, Any]:
    """In-service times of each question, and the EXPLAIN ANALYZE of the
    statement the service sent for it (recorded into `statements` the first
    time, and explained again as it was after that, so that a what-if index
    is judged on the very same statement)."""
    result: dict[str, Any] = {}
    for label, requests in questions.items():
        with statements_sent() as sent:
            result[label] = await _timed(stub, durations, requests, warmup=ORDER_WARMUP)
        statement, parameters = statements.setdefault(label, _list_statement(sent))
        result[label]["explain"] = _order_plan(await explain(url, statement, *parameters))
    return result


async def _metric_order(
    stub: experiments_pb2_grpc.ExperimentServiceAsyncStub, durations: _Durations, url: str
) -> dict[str, Any]:
    """The first page by the metric order, the same for one strategy, and a
    page ORDER_DEPTH rows deep by token; then the same with each what-if
    index (see `_what_if`)."""
    deep = _ordered(token=await _token_at(stub, ORDER_DEPTH))
    questions = {
        "first": [_ordered()] * ORDER_CALLS,
        "strategy": [_ordered(k) for k in range(ORDER_CALLS)],
        "deep": [deep] * ORDER_CALLS,
    }
    statements: dict[str, tuple[str, tuple[Any, ...]]] = {}
    result = await _order_rows(stub, durations, url, questions, statements)
    result["what_if"] = await _what_if(stub, durations, url, questions, statements)
    return result


def _order_index_columns() -> str:
    """The column list of an index whose entries are in the metric order:
    the ORDER BY the service compiles for it (rank, number and text of the
    key, then the id), with its values inlined, so that the index matches
    the statement's sort expressions once PostgreSQL has bound the
    parameters into a custom plan."""
    keys = ordering.parse(METRIC_ORDER, ORDER_FIELDS, BEST_OF, ordering.Directions(diff.MINIMIZE))
    table: Table = ExperimentRow.__table__  # type: ignore[assignment]
    order = SortOrder(table, "postgresql", keys)
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    clauses = [
        str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for clause in order.clauses()
    ]
    return plans.index_columns(clauses)


async def _what_if(
    stub: experiments_pb2_grpc.ExperimentServiceAsyncStub,
    durations: _Durations,
    url: str,
    questions: dict[str, list[experiments_pb2.ListExperimentsRequest]],
    statements: dict[str, tuple[str, tuple[Any, ...]]],
) -> dict[str, Any]:
    """Two indexes the schema does not have, each built here, measured and
    dropped: a plain expression index on the metric's value, and one on the
    order's own sort expressions. Their build time and size are the price;
    every insert or metrics update would also evaluate the expressions and
    write one more entry, and each (key, direction) needs its own index,
    since a missing value sorts last in both directions."""
    result: dict[str, Any] = {}
    cast = f"CREATE INDEX {CAST_INDEX} ON experiments (((metrics ->> 'oos_sharpe')::float))"
    await execute(url, cast)
    try:
        await execute(url, "ANALYZE experiments")
        statement, parameters = statements["first"]
        plan = await explain(url, statement, *parameters)
        result["cast_index_used"] = CAST_INDEX in plan
    finally:
        await execute(url, f"DROP INDEX {CAST_INDEX}")
    started = time.perf_counter()
    await execute(url, f"CREATE INDEX {ORDER_INDEX} ON experiments ({_order_index_columns()})")
    result["build_seconds"] = time.perf_counter() - started
    try:
        result["size_mb"] = await relation_mb(url, ORDER_INDEX)
        result["table_mb"] = await relation_mb(url, "experiments")
        await execute(url, "ANALYZE experiments")
        result.update(await _order_rows(stub, durations, url, questions, statements))
    finally:
        await execute(url, f"DROP INDEX {ORDER_INDEX}")
        await execute(url, "ANALYZE experiments")
    return result


def _report(context: Context, figures: dict[str, Any], sizes: tuple[int, ...]) -> None:
    largest = figures[str(sizes[-1])]
    for kind in QUERIES:
        growth = ", ".join(
            f"{size:,}: {figures[str(size)][kind]['in_service_p50_ms']:.2f}" for size in sizes
        )
        p50 = largest[kind]["in_service_p50_ms"]
        plan = largest[kind]["explain"]
        uses_index = plan["index_scan"]
        how = "index scan, no sort" if not plan["sort"] else "index scan, then a sort"
        used = f"{how} ({plan['node']})" if uses_index else f"NO index scan: {plan['node']}"
        context.report.add(
            Row(
                "5 scale",
                f"ListExperiments by {kind}, limit {LIMIT}, in-service p50 ms by rows ({growth})",
                f"{p50:.2f} ms at {sizes[-1]:,}; p99 {largest[kind]['in_service_p99_ms']:.2f} ms; "
                f"{used}",
                f"p50 <= {TARGET_MS:.0f} ms, index used",
                p50 <= TARGET_MS and uses_index,
            )
        )
    skips = largest["deep_skip"]
    context.report.add(
        Row(
            "5 scale",
            f"deep skip, strategy page at {sizes[-1]:,} rows: in-service p50 ms by skip",
            ", ".join(f"{skip}: {row['in_service_p50_ms']:.1f}" for skip, row in skips.items()),
        )
    )
    depths = largest["deep_token"]
    first, deepest = depths["0"]["in_service_p50_ms"], list(depths.values())[-1]
    ratio = deepest["in_service_p50_ms"] / first
    context.report.add(
        Row(
            "5 scale",
            f"page by token at {sizes[-1]:,} rows, newest first: in-service p50 ms by depth",
            ", ".join(f"{d}: {row['in_service_p50_ms']:.1f}" for d, row in depths.items())
            + f"; deepest {ratio:.2f}x the first",
            "deepest <= 1.2x the first",
            ratio <= 1.2,
        )
    )
    filtered = largest["filter"]["in_service_p50_ms"]
    filtered_p99 = largest["filter"]["in_service_p99_ms"]
    context.report.add(
        Row(
            "5 scale",
            f"filter strategy_id = … AND metrics.oos_sharpe > 1, page of {LIMIT}, "
            f"at {sizes[-1]:,} rows",
            f"in-service p50 {filtered:.2f} ms, p99 {filtered_p99:.2f} ms",
            "p50 <= 20 ms",
            filtered <= 20.0,
        )
    )

    _report_metric_order(context, largest["metric_order"], sizes[-1])


def _plan_text(explained: dict[str, Any]) -> str:
    sort = f", then a {explained['sort']}" if explained["sort"] else ""
    jit = f", {explained['jit_ms']:.0f} ms of it JIT" if explained["jit_ms"] else ""
    return (
        f"{explained['node']}, {explained['rows_read']:,} rows read{sort}; "
        f"execution {explained['execution_ms']:.1f} ms{jit}"
    )


def _report_metric_order(context: Context, order: dict[str, Any], size: int) -> None:
    first = order["first"]["in_service_p50_ms"]
    labels = {
        "first": "first page, no filter",
        "strategy": "first page of one strategy (filter strategy_id = …)",
        "deep": f"page {ORDER_DEPTH:,} rows deep by token",
    }
    for label, text in labels.items():
        row = order[label]
        p50 = row["in_service_p50_ms"]
        figure = f"in-service p50 {p50:.1f} ms, p90 {row['in_service_p90_ms']:.1f} ms; "
        target, met = "", None
        if label == "deep":
            figure += f"{p50 / first:.2f}x the first page; "
            target, met = "<= 1.2x the first page", p50 / first <= 1.2
        context.report.add(
            Row(
                "5 scale",
                f"order_by {METRIC_ORDER}, {text}, page of {LIMIT} at {size:,} rows",
                figure + _plan_text(row["explain"]),
                target,
                met,
            )
        )
    what_if = order["what_if"]
    with_index = ", ".join(
        f"{label} {what_if[label]['in_service_p50_ms']:.1f} ms "
        f"({what_if[label]['explain']['node']}, "
        f"{what_if[label]['explain']['rows_read']:,} rows read)"
        for label in labels
    )
    cast_used = "used" if what_if["cast_index_used"] else "not used"
    context.report.add(
        Row(
            "5 scale",
            f"what-if, not in the schema: an index on the order's sort expressions at {size:,} "
            f"rows ({what_if['build_seconds']:.1f} s to build, {what_if['size_mb']:.0f} MB "
            f"beside a {what_if['table_mb']:.0f} MB table); in-service p50 by page",
            f"{with_index}; a plain index on ((metrics->>'oos_sharpe')::float): {cast_used}",
        )
    )
