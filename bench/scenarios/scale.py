"""5. Scale: ListExperiments filtered by strategy and by a lineage field
(dataset_version) as the table grows to 1,000,000 rows, bulk-loaded
server-side (generate_series) into a database of the harness's own.

At each size: the in-service time of each call (the service's own
`duration_ms`, from the interceptor's log record: handler, query and
conversion, without the network) and the client's round trip, p50 and p99;
EXPLAIN ANALYZE of the query the store sends, checked for an index scan and
no sort. At the largest size, the cost of a deep `skip`.
Target: p50 in-service <= 5 ms at 1M rows, index used."""

from __future__ import annotations

import logging
import time
from typing import Any

from grpc import aio

from bench.context import Context
from bench.database import (
    DATASETS,
    STRATEGIES,
    bench_database,
    dataset_version,
    explain,
    load_rows,
    position_at,
    strategy_id,
)
from bench.report import Row
from bench.stats import percentile
from experiments_svc.config import Settings
from experiments_svc.server import create_server
from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research_common.page_tokens import PageTokens

TARGET_MS = 5.0
CALLS = 200
LIMIT = 100
_ORDER = "ORDER BY created_at DESC, id DESC"
QUERIES = {
    "strategy_id": f"SELECT * FROM experiments WHERE strategy_id = $1 {_ORDER} LIMIT 100",
    "dataset_version": f"SELECT * FROM experiments WHERE dataset_version = $1 {_ORDER} LIMIT 100",
}


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
) -> dict[str, float]:
    for request in requests[:10]:  # warm-up: plans cached, pages in memory
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
