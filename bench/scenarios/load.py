"""7. Load: a mixed read/write workload through the gateway for a fixed
time at 64 connections (wrk): 40 % GET one experiment, 30 % list a
strategy's newest 20, 20 % create, 10 % PATCH metrics, on a table of
100,000 rows. Throughput, p50/p99 latency, and every error (socket errors,
timeouts and any status outside 2xx/3xx). Target: 0 errors."""

from __future__ import annotations

import json
import random

import asyncpg

from bench.context import Context
from bench.database import asyncpg_dsn, bench_database, fetch_ids, load_rows, strategy_id
from bench.report import Row
from bench.stack import running_stack
from bench.wrk import Request, run_wrk, write_requests

ROWS = 100_000
MIX = (("get", 40), ("list", 30), ("create", 20), ("patch", 10))


def _workload(ids: list[str], count: int = 2000) -> list[Request]:
    chooser = random.Random(7)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    requests = []
    for n in range(count):
        kind = chooser.choice(kinds)
        some_id = chooser.choice(ids)
        if kind == "get":
            requests.append(Request("GET", f"/api/v1/experiments/{some_id}"))
        elif kind == "list":
            strategy = strategy_id(chooser.randrange(100))
            requests.append(Request("GET", f"/api/v1/experiments?strategy_id={strategy}&limit=20"))
        elif kind == "create":
            body = {
                "strategy_id": str(strategy_id(chooser.randrange(100))),
                "dataset_version": f"ds-load-{n % 50}",
                "git_commit_hash": f"{n:012x}",
                "parameters": {"max_depth": n % 12, "learning_rate": 0.05},
                "metrics": {"oos_sharpe": n / 1000, "mse": 0.01},
            }
            requests.append(Request("POST", "/api/v1/experiments", json.dumps(body)))
        else:
            body = {"metrics": {"oos_sharpe": n / 100, "mse": 0.02}}
            requests.append(Request("PATCH", f"/api/v1/experiments/{some_id}", json.dumps(body)))
    return requests


async def _count(url: str) -> int:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM experiments"))
    finally:
        await connection.close()


async def run(context: Context) -> None:
    options = context.options
    async with bench_database("bench_load") as url:
        await load_rows(url, 1, ROWS)
        requests = write_requests(_workload(await fetch_ids(url, 5000)), context.work)
        async with running_stack(url, context.work) as stack:
            # A short warm-up so the figures are of a running system.
            await run_wrk(stack.gateway_url, requests, seconds=2, connections=8)
            before = await _count(url)
            result = await run_wrk(
                stack.gateway_url,
                requests,
                seconds=options.load_seconds,
                connections=options.load_connections,
                request_timeout=10,
            )
            created = await _count(url) - before
            rss = {p.name: p.rss_mb() for p in stack.processes}
    context.report.figures["load"] = {
        "seconds": result.seconds,
        "connections": options.load_connections,
        "requests": result.requests,
        "rps": result.rate,
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "errors": result.errors,
        "status_errors": result.status_errors,
        "rows_created": created,
        "rss_mb_after": rss,
    }
    context.report.add(
        Row(
            "7 load",
            f"mixed 40/30/20/10 get/list/create/patch, {options.load_connections} connections, "
            f"{result.seconds:.0f} s",
            f"{result.rate:.0f} req/s; p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms; "
            f"{result.errors} errors; {created} rows created",
            "0 errors",
            result.errors == 0,
        )
    )
