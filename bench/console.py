"""`python -m bench.console`: what the research console (CONTRACT §12) costs
a browser. Two figures, measured side by side in one run:

- **Page weight**: the bytes of every file under `gateway/console/` as
  served (the gateway sends them uncompressed), per file and in total; and
  what one cold load of each view actually fetched (the shell loads a view's
  module only when it is shown).
- **Time to a usable view** on the demo data of `make demo`, in a headless
  Chromium (Debian's `/usr/bin/chromium`, driven by Playwright, as the page
  tests do): from the navigation's start to the moment the view marks
  `<main id="view">` with `data-view="<name>"`, which each view does once its
  data is on the page (the compare view once its fold charts are drawn).
  Two views: the compare of the demo's two walk-forward runs against the
  older one (`/console/compare?kind=runs&ids=...&baseline=...`, the
  console's heaviest view: two compare statistics and a history request per
  folded metric) and the experiments list (`/console/experiments`, the start
  page). Each is loaded cold (a fresh browser context: empty cache) and then
  warm (a reload of the same page: every file revalidated by its ETag, 304).
  Rounds alternate which view goes first; one unrecorded warm-up round
  comes before them.

The stack runs as a deployment runs it (`bench.stack`: each service its own
`python -m` process) over a real `mlflow server` and a PostgreSQL database
of its own, with the demo loaded by `load_demo` of `scripts/demo_data.py`.

    .venv/bin/python -m bench.console [--rounds 15] [--json bench/results-console.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, Page, Response, ViewportSize, async_playwright

from bench.database import bench_database
from bench.report import machine
from bench.stack import running_stack
from bench.stats import Summary, summarize
from testbed.chromium import CHROMIUM_ARGS, ChromiumMissing, find_chromium
from testbed.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[1]
# The demo loader is a script, imported as its tests import it (mypy would
# otherwise see scripts/demo_data.py under two module names).
sys.path.insert(0, str(ROOT / "scripts"))
from demo_data import DemoSummary, load_demo  # noqa: E402

FOLDER = ROOT / "gateway" / "console"
EXPERIMENT = "bench-console"
VIEWPORT = ViewportSize(width=1280, height=800)  # the console's desktop size
# Installed before any of the page's own scripts run (Playwright's init
# scripts are not subject to the page's CSP): the first moment, on the
# page's clock (milliseconds since the navigation started), that <main>
# carries each data-view value. A MutationObserver sees the attribute set
# in the same task as the view's last DOM change, not at the next poll.
OBSERVER = """
(() => {
  window.__viewShown = {};
  new MutationObserver(() => {
    const main = document.getElementById("view");
    const name = main && main.dataset.view;
    if (name && !(name in window.__viewShown)) window.__viewShown[name] = performance.now();
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-view"] });
})();
"""
# What the page fetched in this load, from Resource Timing: the console's
# files (the bytes that crossed the wire, headers included: a revalidated
# file is its headers only) and the API calls, and when the last of each
# ended, on the same clock as the view's time.
FETCHED = """
() => {
  const entries = [performance.getEntriesByType("navigation")[0],
                   ...performance.getEntriesByType("resource")];
  const under = (prefix) => entries.filter((e) => new URL(e.name).pathname.startsWith(prefix));
  const files = under("/console");
  const api = under("/api/v1/");
  const last = (some) => Math.max(0, ...some.map((e) => e.responseEnd));
  return {
    files: files.length,
    wire_bytes: files.reduce((sum, e) => sum + e.transferSize, 0),
    api_calls: api.length,
    files_done_ms: last(files),
    api_done_ms: last(api),
  };
}
"""
# A usable view shows its data, not an error box: every one of these is on it.
USABLE = {
    "compare": ("main table.metric-diff", "main .fold-chart svg"),
    "experiments": ("main table tbody tr",),
}


def page_weight(folder: Path = FOLDER) -> dict[str, int]:
    """Bytes of every file under the console folder, by its path there."""
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class Load:
    """One navigation: when the view was usable, and what it fetched."""

    ms: float  # the view marked itself shown
    files: int  # console files the load asked for (the page included)
    wire_bytes: int  # what they took on the wire, headers included
    revalidated: int  # of those, answered 304 (Chromium reports the page itself as 200)
    api_calls: int
    files_done_ms: float  # the last console file's response ended
    api_done_ms: float  # the last API call's response ended


async def _until_usable(page: Page, view: str, statuses: list[int]) -> Load:
    """Once `view` is shown: its time and what it fetched (`statuses`: those
    of the console files answered since the navigation began)."""
    await page.wait_for_selector(f'main[data-view="{view}"]', timeout=30_000)
    errors = await page.locator("main .error").count()
    missing = [css for css in USABLE[view] if not await page.locator(css).count()]
    if errors or missing:
        text = await page.locator("main").inner_text()
        raise RuntimeError(f"the {view} view shows no data: {text[:500]}")
    shown = await page.evaluate("window.__viewShown")
    fetched: dict[str, Any] = await page.evaluate(FETCHED)
    return Load(
        ms=float(shown[view]),
        files=int(fetched["files"]),
        wire_bytes=int(fetched["wire_bytes"]),
        revalidated=statuses.count(304),
        api_calls=int(fetched["api_calls"]),
        files_done_ms=float(fetched["files_done_ms"]),
        api_done_ms=float(fetched["api_done_ms"]),
    )


async def _cold_then_warm(browser: Browser, url: str, view: str) -> tuple[Load, Load]:
    """A fresh context (empty cache) loads `url`, then reloads it."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        await page.add_init_script(OBSERVER)
        statuses: list[int] = []

        def answered(response: Response) -> None:
            if urlsplit(response.url).path.startswith("/console"):
                statuses.append(response.status)

        page.on("response", answered)
        await page.goto(url, wait_until="commit")
        cold = await _until_usable(page, view, statuses)
        statuses.clear()
        await page.reload(wait_until="commit")
        warm = await _until_usable(page, view, statuses)
        return cold, warm
    finally:
        await context.close()


@dataclass
class Figures:
    weight: dict[str, int]
    urls: dict[str, str]
    loads: dict[str, dict[str, list[Load]]]  # view -> "cold"/"warm" -> rounds
    selection: dict[str, Any]  # the demo's deflated Sharpe, as a sanity check

    def summaries(self) -> dict[str, dict[str, Summary]]:
        return {
            view: {kind: summarize([load.ms for load in loads]) for kind, loads in sides.items()}
            for view, sides in self.loads.items()
        }


async def _selection(base_url: str, summary: DemoSummary) -> dict[str, Any]:
    """CompareExperiments of strategy A's backtest and walk-forward
    experiments: the figure the console's experiments compare shows."""
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        experiments = (await http.get("/api/v1/experiments", params={"page_size": 100})).json()
        wanted = {summary.run_ids["backtest"][0], summary.run_ids["walk_forward"][0]}
        ids = [e["id"] for e in experiments if e["mlflow_run_id"] in wanted]
        answer = await http.post(
            "/api/v1/experiments/compare", params={"baseline": ids[0]}, json=ids
        )
        answer.raise_for_status()
        selection: dict[str, Any] = answer.json()["selection"]["oos_sharpe"]
        return selection


async def _rounds(
    chromium: str, urls: dict[str, str], rounds: int
) -> dict[str, dict[str, list[Load]]]:
    """Every view cold then warm, `rounds` times after one warm-up round,
    alternating which view goes first."""
    loads: dict[str, dict[str, list[Load]]] = {view: {"cold": [], "warm": []} for view in urls}
    views = list(urls)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            for number in range(rounds + 1):  # round 0 is the warm-up
                for view in views if number % 2 else views[::-1]:
                    cold, warm = await _cold_then_warm(browser, urls[view], view)
                    if number:
                        loads[view]["cold"].append(cold)
                        loads[view]["warm"].append(warm)
                print(f"  round {number}/{rounds}", flush=True)
        finally:
            await browser.close()
    return loads


async def measure(rounds: int, work: Path) -> Figures:
    try:
        chromium = find_chromium()
    except ChromiumMissing as missing:
        raise SystemExit(f"bench.console: {missing}") from None
    with MlflowServer(work / "mlflow") as mlflow:
        async with (
            bench_database("bench_console") as database,
            running_stack(database, work, mlflow.url, EXPERIMENT) as stack,
        ):
            summary = await asyncio.to_thread(
                load_demo, mlflow.url, EXPERIMENT, stack.experiments_address
            )
            older, newer = summary.run_ids["walk_forward"]
            urls = {
                "compare": (
                    f"{stack.gateway_url}/console/compare?kind=runs"
                    f"&ids={older},{newer}&baseline={older}"
                ),
                "experiments": f"{stack.gateway_url}/console/experiments",
            }
            selection = await _selection(stack.gateway_url, summary)
            loads = await _rounds(chromium, urls, rounds)
    return Figures(page_weight(), urls, loads, selection)


def report(figures: Figures) -> str:
    weight = figures.weight
    lines = ["page weight (uncompressed, as served):"]
    for name, size in weight.items():
        lines.append(f"  {size:>8,} B  {name}")
    lines.append(f"  {sum(weight.values()):>8,} B  total, {len(weight)} files")
    lines.append("")
    lines.append("time to a usable view (ms from navigation start; median, p10-p90):")
    for view, sides in figures.summaries().items():
        for kind, summary in sides.items():
            loads = figures.loads[view][kind]
            files_done = summarize([load.files_done_ms for load in loads])["median"]
            api_done = summarize([load.api_done_ms for load in loads])["median"]
            last = loads[-1]
            lines.append(
                f"  {view:<11} {kind}: {summary['median']:6.1f} "
                f"(p10 {summary['p10']:.1f} - p90 {summary['p90']:.1f}, n={int(summary['n'])});"
                f" files done {files_done:.1f}, API done {api_done:.1f};"
                f" {last.files} files, {last.wire_bytes:,} B on the wire,"
                f" {last.revalidated} x 304,"
                f" {last.api_calls} API calls"
            )
    lines.append("")
    lines.append(f"deflated Sharpe of the demo's compare: {figures.selection}")
    return "\n".join(lines)


def _document(figures: Figures) -> dict[str, Any]:
    return {
        "machine": machine(),
        "weight": figures.weight,
        "weight_total": sum(figures.weight.values()),
        "urls": figures.urls,
        "summaries": figures.summaries(),
        "loads": {
            view: {kind: [asdict(load) for load in loads] for kind, loads in sides.items()}
            for view, sides in figures.loads.items()
        },
        "selection": figures.selection,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--rounds", type=int, default=15, help="recorded rounds (default 15)")
    parser.add_argument("--json", type=Path, default=Path("bench/results-console.json"))
    args = parser.parse_args(argv)
    # MLflow's client prints a "View run at" line for every run it ends.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        figures = asyncio.run(measure(args.rounds, Path(work)))
    print("\n" + report(figures))
    args.json.write_text(json.dumps(_document(figures), indent=2) + "\n")
    print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
