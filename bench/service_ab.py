"""experiments_svc of two commits side by side: CPU time per gRPC call.

    .venv/bin/python -m bench.service_ab --before 0483805 --after HEAD
    .venv/bin/python -m bench.service_ab --method ListExperiments --rounds 9

Each side is its commit's own code (bench.source_tree), started once on the
same database of `--rows` rows (bench.database, migrated by this checkout's
code; each side starts with AUTO_MIGRATE=false, so the commits must read
the same schema). In each round each side takes the same gRPC load in
turn (bench.grpc_load: `--concurrency` callers for `--seconds`), and its
CPU per call is read from its own process counters: no gateway, no HTTP,
no database CPU, so that a change inside experiments_svc is not lost in
the noise of the whole stack. The ratio is taken round by round
(bench.stats.ratios), so that a slow moment weighs on both sides.

Issue 18's fifth round measured the reads by key this way (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.database import bench_database, fetch_ids, load_rows
from bench.grpc_load import run_grpc_load
from bench.processes import BenchProcess, spawn, stopping
from bench.scenarios.cpu_cost import grpc_requests
from bench.source_tree import SourceTree, extract
from bench.stats import Summary, ratios, summarize
from research.experiments.v1 import experiments_pb2
from testbed.ports import free_port

SERVICE = experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"].full_name
# Scenario 10's three routes (bench.scenarios.cpu_cost.grpc_requests).
METHODS = ("GetExperiment", "ListExperiments", "CompareExperiments")
IDS = 1000  # the newest rows, which the requests go round


@dataclass
class Side:
    label: str  # "before", "after"
    tree: SourceTree
    address: str = ""
    process: BenchProcess | None = None
    cpu_ms: list[float] = field(default_factory=list)  # per call, one a round
    errors: int = 0


@dataclass(frozen=True)
class Outcome:
    method: str
    before: Summary
    after: Summary
    after_over_before: Summary
    errors: int


async def _start(side: Side, url: str, log_dir: Path) -> BenchProcess:
    side.address = f"127.0.0.1:{free_port()}"
    env = {
        **side.tree.env(),
        "DATABASE_URL": url,
        "EXPERIMENTS_ADDR": side.address,
        "AUTO_MIGRATE": "false",
        # Two pools on one server: half the default each.
        "DB_POOL_SIZE": "10",
    }
    process = await spawn(
        f"experiments_svc_{side.label}", ["-m", "experiments_svc"], env, log_dir, side.tree.root
    )
    side.process = process
    await process.wait_grpc(side.address)
    return process


async def _round(side: Side, method: str, requests: list[bytes], args: argparse.Namespace) -> None:
    if side.process is None:
        raise RuntimeError(f"the {side.label} side is not running")
    used = side.process.cpu_seconds()
    result = await run_grpc_load(
        side.address, method, requests, seconds=args.seconds, concurrency=args.concurrency
    )
    used = side.process.cpu_seconds() - used
    side.errors += result.errors
    if result.calls == 0:
        raise RuntimeError(f"the {side.label} side answered no call ({result.errors} errors)")
    side.cpu_ms.append(1000 * used / result.calls)


async def measure(args: argparse.Namespace) -> Outcome:
    method = f"/{SERVICE}/{args.method}"
    with tempfile.TemporaryDirectory(prefix="service-ab-") as scratch:
        folder = Path(scratch)
        sides = [
            Side("before", await extract(args.before, folder / "before")),
            Side("after", await extract(args.after, folder / "after")),
        ]
        async with bench_database("bench_service_ab") as url, stopping([]) as started:
            await load_rows(url, 1, args.rows)
            ids = await fetch_ids(url, min(IDS, args.rows))
            requests = grpc_requests(method, ids)
            for side in sides:
                started.append(await _start(side, url, folder))
            for side in sides:  # warm-up: connections, caches, statements
                await run_grpc_load(
                    side.address, method, requests, seconds=1.0, concurrency=args.concurrency
                )
            for number in range(args.rounds):
                # Alternating which goes first, so neither always follows the other.
                for side in sides if number % 2 == 0 else reversed(sides):
                    await _round(side, method, requests, args)
    before, after = sides
    return Outcome(
        args.method,
        summarize(before.cpu_ms),
        summarize(after.cpu_ms),
        summarize(ratios(after.cpu_ms, before.cpu_ms)),
        before.errors + after.errors,
    )


def report(outcome: Outcome, args: argparse.Namespace) -> str:
    def line(label: str, figures: Summary, unit: str) -> str:
        return (
            f"  {label:<14} {figures['median']:.3f}{unit} "
            f"(p10 {figures['p10']:.3f} - p90 {figures['p90']:.3f}, n={int(figures['n'])})"
        )

    return "\n".join(
        [
            f"experiments_svc {outcome.method}: CPU per call, {args.before} -> {args.after}",
            line(f"before ({args.before})", outcome.before, " ms"),
            line(f"after ({args.after})", outcome.after, " ms"),
            line("after / before", outcome.after_over_before, "x"),
            f"  errors: {outcome.errors}",
        ]
    )


def parser() -> argparse.ArgumentParser:
    parsing = argparse.ArgumentParser(prog="python -m bench.service_ab", description=__doc__)
    parsing.add_argument("--before", default="HEAD~1", help="a commit (default HEAD~1)")
    parsing.add_argument("--after", default="HEAD", help="a commit (default HEAD)")
    parsing.add_argument("--method", choices=METHODS, default="GetExperiment")
    parsing.add_argument("--rows", type=int, default=20_000)
    parsing.add_argument("--rounds", type=int, default=7)
    parsing.add_argument("--seconds", type=float, default=3.0)
    parsing.add_argument("--concurrency", type=int, default=16)
    return parsing


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    print(report(asyncio.run(measure(args)), args))


if __name__ == "__main__":
    main()
