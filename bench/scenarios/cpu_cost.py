"""10. CPU per request: the stack against the seed's design run with one
uvicorn worker and with two.

Three sides answer the same routes from one database (scenario 1's: ROWS
experiments, its GET and list requests) under the same wrk load, one after
the other in rotating rounds (`bench.alternate.rotate`):
- the stack: gateway -> experiments_svc -> PostgreSQL;
- `bench.baseline` (FastAPI + async SQLAlchemy) with one worker, as that
  design was served;
- the same with `uvicorn --workers 2` (a supervisor and two workers).
Routes: GET /api/v1/experiments/{id}, the list of 100 of a strategy, and
POST /api/v1/experiments/compare of 10 ids (rotating over consecutive
groups of the newest experiments). The stack's compare does more than the
seed's (param, lineage and selection diffs, with the selection's trial
statistics read from the strategy's trial sums); the seed's is what it
replaces.

For each side and round: requests per second, p50 and p99 (wrk's), their
ratio, and the CPU time per answered request of every process of the side
(each process started and the processes below it, all threads) and of the
PostgreSQL backends serving the side's connections, told apart by client
port (`bench.cpu`). Only the side under load runs queries; the others sit
idle, their counters not read.

Two more sides show the design's floor on each route: the gateway in front
of a gRPC upstream (`bench.grpc_stub`) that answers experiments_svc's own
serialized answer to the route's first request, with both processes' CPU:
- "no-op": the upstream does nothing else. The HTTP side, the transcoding
  and the gRPC hop, with no database and no conversion in the service;
- "reads only": the upstream first reads the rows the request names from
  the same database in one prepared asyncpg statement (with the backends'
  CPU), then answers the same fixed bytes: no SQLAlchemy, no conversion,
  no logging, metrics or checks, no trial statistics on compare.
The stack cannot spend less than the second on a route, whatever is done
inside experiments_svc: where it is above the CPU target, the target is
below what this design (an HTTP gateway in front of a gRPC service reading
PostgreSQL) can cost in Python.

Targets (issue 18): CPU per request of the stack (its processes and its
backends) <= 0.8x each baseline's; req/s >= 1.0x the two-worker baseline's;
GET p99/p50 <= 3 in every round, and the spread of GET p99 across rounds
(p90 - p10 of the rounds' p99) no wider than the one-worker baseline's."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from grpc import aio
from sqlalchemy.engine import make_url

from bench.alternate import rotate
from bench.context import Context
from bench.cpu import Backends, Tally, descendants, parent_pids, per_request_ms, process_cpu
from bench.database import STRATEGIES, asyncpg_dsn, strategy_id
from bench.grpc_stub import COMPARE_EXPERIMENTS, GET_EXPERIMENT, LIST_EXPERIMENTS
from bench.processes import BenchProcess, stopping
from bench.report import Row, ratio_text
from bench.scenarios.limits import gateway_on_stub
from bench.scenarios.seed_design import (
    GET_ROUTE,
    ROWS,
    read_requests,
    same_answers,
    seed_database,
    start_baseline,
)
from bench.stack import running_stack
from bench.stats import ratios, summarize
from bench.wrk import Request, run_wrk, write_requests
from research.experiments.v1 import experiments_pb2

COMPARE_ROUTE = "POST /api/v1/experiments/compare (10 ids)"
COMPARED = 10
CPU_TARGET = 0.8  # the stack's CPU per request over a baseline's
RATE_TARGET = 1.0  # the stack's req/s over the two-worker baseline's
TAIL_TARGET = 3.0  # GET p99 / p50, every round
# Seconds between readings of the backends during a round: a backend that
# ends (a pool's overflow connection closed) loses what it spent since.
SAMPLE_EVERY = 0.05

STACK = "stack"
ONE_WORKER = "baseline, 1 worker"
TWO_WORKERS = "baseline, 2 workers"
FLOOR = "gateway on a no-op upstream"
FLOOR_READ = "gateway on an upstream that only reads the rows"
FLOORS = (FLOOR, FLOOR_READ)


@dataclass(frozen=True)
class Side:
    label: str
    url: str
    processes: Sequence[BenchProcess]  # each with the processes below it


@dataclass(frozen=True)
class CpuRound:
    rate: float
    answered: int
    errors: int
    p50_ms: float
    p99_ms: float
    process_ms: dict[str, float]  # CPU per answered request, by process started
    processes: int  # processes read: those started and the ones below them
    postgres_ms: float | None  # None: no backend was found serving the side
    backends: int  # backends read during the round
    backends_ended: int  # of those, ended before the round did

    @property
    def processes_ms(self) -> float:
        return sum(self.process_ms.values())

    @property
    def total_ms(self) -> float:
        return self.processes_ms + (self.postgres_ms or 0.0)

    @property
    def tail(self) -> float:
        """p99 / p50."""
        return self.p99_ms / self.p50_ms if self.p50_ms else float("inf")


def compare_groups(ids: Sequence[str]) -> list[list[str]]:
    """Each consecutive group of COMPARED ids (a shorter last one left out)."""
    return [
        list(ids[start : start + COMPARED]) for start in range(0, len(ids) - COMPARED + 1, COMPARED)
    ]


def compare_requests(ids: Sequence[str]) -> list[Request]:
    """One compare of each consecutive group of COMPARED ids."""
    return [
        Request("POST", "/api/v1/experiments/compare", json.dumps(group, separators=(",", ":")))
        for group in compare_groups(ids)
    ]


def grpc_requests(method: str, ids: Sequence[str]) -> list[bytes]:
    """The three routes as experiments_svc's own gRPC requests (serialized),
    by method path: a GetExperiment of every id, the first page of 100 of
    every strategy, a compare of each group of COMPARED ids."""
    if method == GET_EXPERIMENT:
        messages: list[Any] = [experiments_pb2.GetExperimentRequest(experiment_id=i) for i in ids]
    elif method == LIST_EXPERIMENTS:
        messages = [
            experiments_pb2.ListExperimentsRequest(strategy_id=str(strategy_id(k)), limit=100)
            for k in range(STRATEGIES)
        ]
    elif method == COMPARE_EXPERIMENTS:
        messages = [
            experiments_pb2.CompareExperimentsRequest(experiment_ids=group)
            for group in compare_groups(ids)
        ]
    else:
        raise ValueError(f"no requests for {method}")
    return [message.SerializeToString() for message in messages]


def _post_json(url: str, body: str) -> Any:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _same_compare(ours: str, baseline: str, request: Request) -> None:
    """Both sides compare the same experiments, in the order asked."""
    sent = json.loads(request.body)
    for side in (ours, baseline):
        answer = _post_json(side + request.path, request.body)
        if [row["id"] for row in answer["experiments"]] != sent:
            raise RuntimeError(f"{side} compared other experiments than {sent}")
        if sorted(answer["metric_diff"]) != ["mse", "oos_sharpe"]:
            raise RuntimeError(f"{side}'s metric_diff has {sorted(answer['metric_diff'])}")


async def measure(
    side: Side,
    requests_file: Path,
    *,
    seconds: float,
    connections: int,
    probe: asyncpg.Connection,
    database_port: int,
) -> CpuRound:
    parents = parent_pids()
    trees = {process.name: descendants(process.pid, parents) for process in side.processes}
    processes = {name: Tally() for name in trees}
    serving = Backends(probe, set().union(*trees.values()), database_port)
    backends = Tally()

    async def read_all() -> None:
        for name, tree in trees.items():
            processes[name].read(process_cpu(tree))
        backends.read(await serving.cpu())

    await read_all()
    load = asyncio.create_task(
        run_wrk(side.url, requests_file, seconds=seconds, connections=connections)
    )
    try:
        while not load.done():
            await asyncio.wait({load}, timeout=SAMPLE_EVERY)
            if not load.done():
                backends.read(await serving.cpu())
        result = await load
    finally:
        load.cancel()
    await read_all()
    answered = result.requests - result.errors
    return CpuRound(
        rate=result.rate,
        answered=answered,
        errors=result.errors,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        process_ms={name: per_request_ms(t.seconds, answered) for name, t in processes.items()},
        processes=sum(t.seen for t in processes.values()),
        postgres_ms=per_request_ms(backends.seconds, answered) if backends.seen else None,
        backends=backends.seen,
        backends_ended=backends.ended,
    )


def spread_ms(rounds: Sequence[CpuRound]) -> float:
    """p90 - p10 of the rounds' p99."""
    p99 = summarize([r.p99_ms for r in rounds])
    return p99["p90"] - p99["p10"]


def _side_figures(rounds: Sequence[CpuRound]) -> dict[str, Any]:
    postgres = [r.postgres_ms for r in rounds if r.postgres_ms is not None]
    return {
        "rps": summarize([r.rate for r in rounds]),
        "cpu_ms_per_request": summarize([r.total_ms for r in rounds]),
        "processes_ms_per_request": {
            name: summarize([r.process_ms[name] for r in rounds]) for name in rounds[0].process_ms
        },
        "postgres_ms_per_request": summarize(postgres) if len(postgres) == len(rounds) else None,
        "p50_ms": [r.p50_ms for r in rounds],
        "p99_ms": [r.p99_ms for r in rounds],
        "p99_over_p50": [r.tail for r in rounds],
        "p99_spread_ms": spread_ms(rounds),
        "answered": [r.answered for r in rounds],
        "processes": [r.processes for r in rounds],
        "errors": sum(r.errors for r in rounds),
        "backends": [r.backends for r in rounds],
        "backends_ended": [r.backends_ended for r in rounds],
    }


def _cpu_text(label: str, rounds: Sequence[CpuRound]) -> str:
    """`stack 2.10 ms (gateway 0.90 + experiments_svc 0.80 + postgres 0.40)`"""
    parts = {name: summarize([r.process_ms[name] for r in rounds]) for name in rounds[0].process_ms}
    postgres = [r.postgres_ms for r in rounds if r.postgres_ms is not None]
    detail = [f"{name} {s['median']:.2f}" for name, s in parts.items()]
    detail.append(
        f"postgres {summarize(postgres)['median']:.2f}" if postgres else "postgres not attributed"
    )
    total = summarize([r.total_ms for r in rounds])["median"]
    return f"{label} {total:.2f} ms ({' + '.join(detail)})"


def _tails(rounds: Sequence[CpuRound]) -> str:
    return "/".join(f"{r.tail:.1f}" for r in rounds)


def _report(context: Context, route: str, sides: dict[str, list[CpuRound]]) -> dict[str, Any]:
    ours, one, two = sides[STACK], sides[ONE_WORKER], sides[TWO_WORKERS]
    cpu_one = summarize(ratios([r.total_ms for r in ours], [r.total_ms for r in one]))
    cpu_two = summarize(ratios([r.total_ms for r in ours], [r.total_ms for r in two]))
    rate_one = summarize(ratios([r.rate for r in ours], [r.rate for r in one]))
    rate_two = summarize(ratios([r.rate for r in ours], [r.rate for r in two]))
    errors = sum(r.errors for rounds in sides.values() for r in rounds)
    context.report.add(
        Row(
            "10 cpu",
            f"{route}: CPU/request {_cpu_text(STACK, ours)} vs {_cpu_text('1 worker', one)} "
            f"vs {_cpu_text('2 workers', two)}",
            f"{ratio_text(cpu_one)} of 1 worker's, {ratio_text(cpu_two)} of 2 workers'",
            f"<= {CPU_TARGET}x both",
            max(cpu_one["median"], cpu_two["median"]) <= CPU_TARGET,
        )
    )
    rates = {label: summarize([r.rate for r in rounds]) for label, rounds in sides.items()}
    context.report.add(
        Row(
            "10 cpu",
            f"{route}: stack {rates[STACK]['median']:.0f} vs 1 worker "
            f"{rates[ONE_WORKER]['median']:.0f} vs 2 workers {rates[TWO_WORKERS]['median']:.0f} "
            "req/s" + (f", {errors} errors" if errors else ""),
            f"{ratio_text(rate_two)} of 2 workers' (of 1 worker's {rate_one['median']:.2f}x)",
            f">= {RATE_TARGET:.1f}x 2 workers",
            rate_two["median"] >= RATE_TARGET,
        )
    )
    latency = ", ".join(
        f"{label} {summarize([r.p50_ms for r in rounds])['median']:.1f}/"
        f"{summarize([r.p99_ms for r in rounds])['median']:.1f}"
        for label, rounds in ((STACK, ours), ("1 worker", one), ("2 workers", two))
    )
    is_get = route == GET_ROUTE
    context.report.add(
        Row(
            "10 cpu",
            f"{route}: p50/p99 ms {latency}; p99/p50 by round: stack {_tails(ours)}, "
            f"1 worker {_tails(one)}, 2 workers {_tails(two)}",
            f"p99 spread (p90-p10 across rounds) stack {spread_ms(ours):.1f} ms vs 1 worker "
            f"{spread_ms(one):.1f}, 2 workers {spread_ms(two):.1f}",
            f"p99/p50 <= {TAIL_TARGET:.0f} every round, spread <= 1 worker's" if is_get else "",
            (max(r.tail for r in ours) <= TAIL_TARGET and spread_ms(ours) <= spread_ms(one))
            if is_get
            else None,
        )
    )
    floor = {
        f"cpu_over_2_workers of {label}": _floor_row(context, route, label, sides[label], two)
        for label in FLOORS
        if label in sides
    }
    return {
        **{label: _side_figures(rounds) for label, rounds in sides.items()},
        **floor,
        "cpu_stack_over_1_worker": cpu_one,
        "cpu_stack_over_2_workers": cpu_two,
        "rps_stack_over_1_worker": rate_one,
        "rps_stack_over_2_workers": rate_two,
    }


def _floor_row(
    context: Context,
    route: str,
    label: str,
    floor: Sequence[CpuRound],
    two: Sequence[CpuRound],
) -> dict[str, Any]:
    """A floor's CPU per request against the two-worker baseline's whole
    request, in the same rounds, and its req/s against the baseline's: no
    change inside experiments_svc brings the stack below either."""
    share = summarize(ratios([r.total_ms for r in floor], [r.total_ms for r in two]))
    rate = summarize(ratios([r.rate for r in floor], [r.rate for r in two]))
    context.report.add(
        Row(
            "10 cpu",
            f"{route}: the design's floor, {_cpu_text(label, floor)}, "
            f"{summarize([r.rate for r in floor])['median']:.0f} req/s, against the "
            "2-worker baseline's whole request",
            f"CPU {ratio_text(share)}, req/s {ratio_text(rate)}",
            f"the stack's targets need CPU <= {CPU_TARGET}x, req/s >= {RATE_TARGET:.1f}x",
            None,
        )
    )
    return {"cpu": share, "rps": rate}


async def _stored_replies(address: str, ids: Sequence[str]) -> dict[str, bytes]:
    """experiments_svc's own serialized answers to the first request of
    each route, by gRPC method: the stub's fixed replies."""
    requests = {
        method: grpc_requests(method, ids)[0]
        for method in (GET_EXPERIMENT, LIST_EXPERIMENTS, COMPARE_EXPERIMENTS)
    }
    replies = {}
    async with aio.insecure_channel(address) as channel:
        for method, request in requests.items():
            call = channel.unary_unary(method, None, None)  # bytes in, bytes out
            replies[method] = await call(request, timeout=5)
    return replies


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


async def run(context: Context) -> None:
    options = context.options
    figures: dict[str, Any] = {
        "rows": ROWS,
        "connections": options.connections,
        "seconds": options.seconds,
        "rounds": options.rounds,
        "loadavg_before": _loadavg(),
    }
    async with seed_database("bench_cpu_cost") as (url, ids):
        requests: dict[str, list[Request]] = {
            **read_requests(ids),
            COMPARE_ROUTE: compare_requests(ids),
        }
        files = {route: write_requests(sent, context.work) for route, sent in requests.items()}
        database_port = make_url(url).port or 5432
        probe = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with running_stack(url, context.work) as stack, stopping([]) as started:
                one, one_url = await start_baseline(url, context.work, started)
                two, two_url = await start_baseline(url, context.work, started, workers=2)
                for baseline_url in (one_url, two_url):
                    await asyncio.to_thread(same_answers, stack.gateway_url, baseline_url, requests)
                    await asyncio.to_thread(
                        _same_compare, stack.gateway_url, baseline_url, requests[COMPARE_ROUTE][0]
                    )
                replies = await _stored_replies(stack.experiments_address, ids)
                floor_url, floor = await gateway_on_stub(replies, context.work, started)
                reads_url, reads = await gateway_on_stub(
                    replies, context.work, started, database_url=url, name="_reading"
                )
                sides = [
                    Side(STACK, stack.gateway_url, [stack.gateway, stack.experiments]),
                    Side(ONE_WORKER, one_url, [one]),
                    Side(TWO_WORKERS, two_url, [two]),
                    Side(FLOOR, floor_url, floor),
                    Side(FLOOR_READ, reads_url, reads),
                ]
                for route, requests_file in files.items():
                    measured = await rotate(
                        [
                            partial(
                                measure,
                                side,
                                requests_file,
                                seconds=options.seconds,
                                connections=options.connections,
                                probe=probe,
                                database_port=database_port,
                            )
                            for side in sides
                        ],
                        options.rounds,
                    )
                    by_side = {
                        side.label: rounds for side, rounds in zip(sides, measured, strict=True)
                    }
                    figures[route] = _report(context, route, by_side)
        finally:
            await probe.close()
    figures["loadavg_after"] = _loadavg()
    context.report.figures["cpu_per_request"] = figures
