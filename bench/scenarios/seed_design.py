"""1. The gateway path against the seed's design: the same two read routes
answered by gateway -> experiments_svc -> PostgreSQL and by the FastAPI +
async SQLAlchemy baseline (`bench.baseline`), from the same database, under
the same wrk load, in alternating rounds. Target: ours >= 1.0x."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from functools import partial

from bench.alternate import alternate
from bench.context import Context
from bench.database import STRATEGIES, bench_database, fetch_ids, load_rows, strategy_id
from bench.processes import spawn, stopping
from bench.report import Row, ratio_text
from bench.stack import running_stack
from bench.wrk import Request, run_wrk, write_requests
from testbed.ports import free_port

ROWS = 100_000
TARGET = 1.0


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _same_answers(ours: str, baseline: str, get_path: str, list_path: str) -> None:
    """Both sides return the same rows, or the comparison would be moot."""
    mine, theirs = _get(ours + get_path), _get(baseline + get_path)
    assert isinstance(mine, dict)
    assert isinstance(theirs, dict)
    if mine["id"] != theirs["id"] or mine["metrics"] != theirs["metrics"]:
        raise RuntimeError(f"the two sides disagree on {get_path}")
    mine_list, theirs_list = _get(ours + list_path), _get(baseline + list_path)
    assert isinstance(mine_list, list)
    assert isinstance(theirs_list, list)
    if [row["id"] for row in mine_list] != [row["id"] for row in theirs_list]:
        raise RuntimeError(f"the two sides disagree on {list_path}")


async def run(context: Context) -> None:
    options = context.options
    async with bench_database("bench_seed_design") as url:
        await load_rows(url, 1, ROWS)
        ids = await fetch_ids(url, 2000)
        gets = [Request("GET", f"/api/v1/experiments/{i}") for i in ids]
        lists = [
            Request("GET", f"/api/v1/experiments?strategy_id={strategy_id(k)}&limit=100")
            for k in range(STRATEGIES)
        ]
        routes = {
            "GET /api/v1/experiments/{id}": write_requests(gets, context.work),
            "GET /api/v1/experiments?strategy_id=&limit=100": write_requests(lists, context.work),
        }
        baseline_address = f"127.0.0.1:{free_port()}"
        async with (
            running_stack(url, context.work) as stack,
            stopping([]) as started,
        ):
            baseline = await spawn(
                "baseline",
                ["-m", "bench.baseline"],
                {"DATABASE_URL": url, "BASELINE_ADDR": baseline_address},
                context.work,
            )
            started.append(baseline)
            baseline_url = f"http://{baseline_address}"
            await baseline.wait_http(f"{baseline_url}/healthz")
            await asyncio.to_thread(
                _same_answers, stack.gateway_url, baseline_url, gets[0].path, lists[0].path
            )
            figures: dict[str, object] = {"rows": ROWS, "connections": options.connections}
            for label, requests in routes.items():
                measure = partial(
                    run_wrk,
                    requests_file=requests,
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
