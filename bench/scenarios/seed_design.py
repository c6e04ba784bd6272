"""1. The gateway path against the seed's design: the same two read routes
answered by gateway -> experiments_svc -> PostgreSQL and by the FastAPI +
async SQLAlchemy baseline (`bench.baseline`), from the same database, under
the same wrk load, in alternating rounds. Target: ours >= 1.0x."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from pathlib import Path

from bench.alternate import alternate
from bench.context import Context
from bench.database import STRATEGIES, bench_database, fetch_ids, load_rows, strategy_id
from bench.processes import BenchProcess, spawn, stopping
from bench.report import Row, ratio_text
from bench.stack import running_stack
from bench.wrk import Request, run_wrk, write_requests
from testbed.ports import free_port

ROWS = 100_000
IDS = 2000  # the experiments the GETs rotate over (the newest)
TARGET = 1.0
GET_ROUTE = "GET /api/v1/experiments/{id}"
LIST_ROUTE = "GET /api/v1/experiments?strategy_id=&limit=100"


@contextlib.asynccontextmanager
async def seed_database(name: str) -> AsyncIterator[tuple[str, list[str]]]:
    """Database `name` with ROWS experiments; yields its URL and the ids of
    the newest IDS of them."""
    async with bench_database(name) as url:
        await load_rows(url, 1, ROWS)
        yield url, await fetch_ids(url, IDS)


def read_requests(ids: Sequence[str]) -> dict[str, list[Request]]:
    """The two read routes' requests, by route: a GET of every id, and the
    first page of 100 of every strategy."""
    return {
        GET_ROUTE: [Request("GET", f"/api/v1/experiments/{i}") for i in ids],
        LIST_ROUTE: [
            Request("GET", f"/api/v1/experiments?strategy_id={strategy_id(k)}&limit=100")
            for k in range(STRATEGIES)
        ],
    }


async def start_baseline(
    url: str, log_dir: Path, started: list[BenchProcess], workers: int = 1
) -> tuple[BenchProcess, str]:
    """`bench.baseline` on database `url` with `workers` uvicorn workers,
    added to `started` and answering; returns it and its base URL."""
    address = f"127.0.0.1:{free_port()}"
    name = "baseline" if workers == 1 else f"baseline_{workers}_workers"
    baseline = await spawn(
        name,
        ["-m", "bench.baseline"],
        {"DATABASE_URL": url, "BASELINE_ADDR": address, "BASELINE_WORKERS": str(workers)},
        log_dir,
    )
    started.append(baseline)
    base_url = f"http://{address}"
    await baseline.wait_http(f"{base_url}/healthz")
    return baseline, base_url


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def same_answers(ours: str, baseline: str, requests: Mapping[str, Sequence[Request]]) -> None:
    """Both sides return the same rows for the first GET and the first list
    of `requests` (read_requests), or the comparison would be moot."""
    get_path, list_path = requests[GET_ROUTE][0].path, requests[LIST_ROUTE][0].path
    mine, theirs = get_json(ours + get_path), get_json(baseline + get_path)
    assert isinstance(mine, dict)
    assert isinstance(theirs, dict)
    if mine["id"] != theirs["id"] or mine["metrics"] != theirs["metrics"]:
        raise RuntimeError(f"the two sides disagree on {get_path}")
    mine_list, theirs_list = get_json(ours + list_path), get_json(baseline + list_path)
    assert isinstance(mine_list, list)
    assert isinstance(theirs_list, list)
    if [row["id"] for row in mine_list] != [row["id"] for row in theirs_list]:
        raise RuntimeError(f"the two sides disagree on {list_path}")


async def run(context: Context) -> None:
    options = context.options
    async with seed_database("bench_seed_design") as (url, ids):
        requests = read_requests(ids)
        routes = {label: write_requests(sent, context.work) for label, sent in requests.items()}
        async with (
            running_stack(url, context.work) as stack,
            stopping([]) as started,
        ):
            _, baseline_url = await start_baseline(url, context.work, started)
            await asyncio.to_thread(same_answers, stack.gateway_url, baseline_url, requests)
            figures: dict[str, object] = {"rows": ROWS, "connections": options.connections}
            for label, requests_file in routes.items():
                measure = partial(
                    run_wrk,
                    requests_file=requests_file,
                    seconds=options.seconds,
                    connections=options.connections,
                )
                rounds = await alternate(
                    partial(measure, stack.gateway_url),
                    partial(measure, baseline_url),
                    options.rounds,
                )
                speed = rounds.ratio(lambda r: r.rate)
                ours, theirs = rounds.summaries(lambda r: r.rate)
                errors = sum(r.errors for r in rounds.ours + rounds.theirs)
                figures[label] = {
                    "ours_rps": ours,
                    "baseline_rps": theirs,
                    "ratio": speed,
                    "ours_p99_ms": [r.p99_ms for r in rounds.ours],
                    "baseline_p99_ms": [r.p99_ms for r in rounds.theirs],
                    "errors": errors,
                }
                context.report.add(
                    Row(
                        "1 seed design",
                        f"{label}: gateway {ours['median']:.0f} vs baseline "
                        f"{theirs['median']:.0f} req/s",
                        ratio_text(speed) + (f", {errors} errors" if errors else ""),
                        f">= {TARGET:.1f}x",
                        speed["median"] >= TARGET,
                    )
                )
            context.report.figures["seed_design"] = figures
