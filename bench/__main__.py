"""`python -m bench`: every scenario (or those picked with --only), one
after the other, each starting what it needs on loopback and stopping it
again; a table at the end, and every figure as JSON.

    .venv/bin/python -m bench [--quick] [--only 1,3,5] [--json bench/results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.context import Context, Options
from bench.report import Report
from bench.scenarios import (
    compare,
    cpu_cost,
    facade,
    footprint,
    limits,
    load,
    revisions,
    runs_paging,
    scale,
    seed_design,
)
from bench.wrk import WrkMissing, require_wrk

Scenario = Callable[[Context], Awaitable[None]]
SCENARIOS: dict[int, tuple[str, Scenario]] = {
    1: ("gateway path vs the seed's design", seed_design.run),
    2: ("closeness to the limit", limits.run),
    3: ("compare: one call against ten", compare.run),
    4: ("the facade's cost over MLflow's REST API", facade.run),
    5: ("scale: 10k to 1M rows", scale.run),
    6: ("footprint: start-up and memory", footprint.run),
    7: ("load: mixed reads and writes", load.run),
    8: ("paging 1,000 runs: the facade vs MLflow's REST paging", runs_paging.run),
    9: ("revisions: PATCH before and after the revision write", revisions.run),
    10: ("CPU per request: the stack vs the seed's design on 1 and 2 workers", cpu_cost.run),
}


def _picked(raw: str | None) -> list[int]:
    if raw is None:
        return sorted(SCENARIOS)
    picked = [int(part) for part in raw.split(",") if part.strip()]
    unknown = [number for number in picked if number not in SCENARIOS]
    if unknown:
        raise SystemExit(f"bench: no scenario {unknown}; there are {sorted(SCENARIOS)}")
    return picked


async def _run(picked: list[int], options: Options, json_path: Path) -> int:
    report = Report()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        context = Context(options, report, Path(folder))
        for number in picked:
            title, scenario = SCENARIOS[number]
            print(f"\n[{number}] {title}", flush=True)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(600):  # no scenario may hang the run
                    await scenario(context)
            except Exception as error:
                failed += 1
                print(f"  FAILED: {type(error).__name__}: {error}", file=sys.stderr)
                report.figures[f"failed_{number}"] = f"{type(error).__name__}: {error}"
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    print("\n" + report.table())
    report.write_json(json_path)
    print(f"\nfigures written to {json_path}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds, 100k rows")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,3")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args(argv)
    picked = _picked(args.only)
    try:
        require_wrk()
    except WrkMissing as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    options = Options.quick() if args.quick else Options.full()
    # MLflow's client prints a "View run at" line for every run it ends.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    return asyncio.run(_run(picked, options, args.json))


if __name__ == "__main__":
    sys.exit(main())
