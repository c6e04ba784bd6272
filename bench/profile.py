"""Where the stack's CPU goes on the three routes of scenario 10: the
gateway and experiments_svc sampled by py-spy while wrk loads one route.

    .venv/bin/python -m bench.profile                  # all three routes, 15 s each
    .venv/bin/python -m bench.profile --route get --seconds 30 --top 25

Scenario 1's database (100,000 rows), this checkout's code. For each route
and process it prints the functions with the most samples, inclusive (the
function or anything it called) and self (the function itself), as a share
of the process's samples; `--keep DIR` leaves py-spy's collapsed stacks
there for a flame graph (`py-spy` can render them, or speedscope).
py-spy needs ptrace: run as root or with CAP_SYS_PTRACE.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bench.scenarios.cpu_cost import COMPARE_ROUTE, compare_requests
from bench.scenarios.seed_design import GET_ROUTE, LIST_ROUTE, read_requests, seed_database
from bench.stack import running_stack
from bench.wrk import run_wrk, write_requests

ROUTES = {"get": GET_ROUTE, "list": LIST_ROUTE, "compare": COMPARE_ROUTE}
RATE = 250  # py-spy samples per second


def frame_name(frame: str) -> str:
    """`function (path/to/module.py:line)` as `function (module.py)`: one
    name per function, whatever line the sample was on."""
    name, _, where = frame.partition(" (")
    module = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({module})" if module else name


def tally(lines: Iterable[str]) -> tuple[Counter[str], Counter[str], int]:
    """Inclusive and self sample counts per function, and the total, from
    py-spy's collapsed stacks (`frame;frame;...;leaf count` per line)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame_name(frame) for frame in stack.split(";") if frame]
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    return inclusive, own, total


def report(title: str, path: Path, top: int) -> str:
    inclusive, own, total = tally(path.read_text().splitlines())
    if total == 0:
        return f"{title}: no samples\n"
    lines = [f"{title}: {total} samples"]
    lines.append("  inclusive")
    lines += [f"    {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    lines.append("  self")
    lines += [f"    {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


async def _record(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def main(routes: list[str], seconds: float, top: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        work = keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        async with seed_database("bench_profile") as (url, ids):
            requests = {**read_requests(ids), COMPARE_ROUTE: compare_requests(ids)}
            async with running_stack(url, work) as stack:
                for key in routes:
                    route = ROUTES[key]
                    requests_file = write_requests(requests[route], work)
                    # Warm up, then sample while the same load runs.
                    await run_wrk(stack.gateway_url, requests_file, seconds=3, connections=32)
                    outputs = {
                        process.name: work / f"{key}-{process.name}.txt"
                        for process in (stack.gateway, stack.experiments)
                    }
                    recorders = [
                        await _record(process.pid, seconds, outputs[process.name])
                        for process in (stack.gateway, stack.experiments)
                    ]
                    result = await run_wrk(
                        stack.gateway_url, requests_file, seconds=seconds, connections=32
                    )
                    for recorder in recorders:
                        await recorder.wait()
                    print(
                        f"== {route}: {result.rate:.0f} req/s, "
                        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
                    )
                    for name, output in outputs.items():
                        print(report(name, output, top))


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--route", choices=[*ROUTES, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="keep the stacks here")
    args = parser.parse_args()
    routes = list(ROUTES) if args.route == "all" else [args.route]
    asyncio.run(main(routes, args.seconds, args.top, args.keep))


if __name__ == "__main__":
    cli()
