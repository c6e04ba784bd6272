"""The console's analysis half (CONTRACT §12) in a real headless Chromium on
the real backbone with the demo data: the runs table (its rows against the
API's, paging forward and back by token), a run's page (one chart per metric
logged at more than one step), and the compare view (the best value, a
baseline's deltas and verdicts, fold statistics, paired sign tests, PBO, one
fold chart per metric, the deflated Sharpe ratio), by keyboard alone too,
and the contract's error messages.

What the page shows is checked against what the HTTP API answers for the
same request, figure for figure."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Locator, Page, Route

from tests.fixtures.browser import PHONE, BrowserPage
from tests.gateway.console.conftest import Demo

ASSETS = Path(__file__).resolve().parents[3] / "gateway" / "console" / "assets"
OUR_MODULES = [
    ASSETS / "chart.js",
    ASSETS / "analysis.js",
    ASSETS / "views" / "runs.js",
    ASSETS / "views" / "run.js",
    ASSETS / "views" / "compare.js",
    ASSETS / "views" / "compare_statistics.js",
]
UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"
IDS_LABEL = "Ids (2\u201310)"  # the compare form's textarea, an en dash in its label


# --- helpers -----------------------------------------------------------------


def shown_number(value: float | None, digits: int = 4) -> str:
    """A number as dom.js's number() writes it."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return str(int(value))
    return repr(round(value, digits))


async def open_view(console: BrowserPage, path: str, view: str) -> None:
    await console.goto(path)
    await console.page.locator(f'main[data-view="{view}"]').wait_for()


async def run_rows(page: Page) -> list[str]:
    ids: list[str] = await page.locator("table.runs tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.runId)"
    )
    return ids


async def api_run_pages(http: httpx.AsyncClient, params: dict[str, Any]) -> list[list[str]]:
    """Every page of the runs list, following its Link header."""
    pages = []
    answer = await http.get("/api/v1/tracking/runs", params=params)
    while True:
        assert answer.status_code == 200, answer.text
        pages.append([run["run_id"] for run in answer.json()["runs"]])
        following = answer.links.get("next")
        if following is None:
            return pages
        answer = await http.get(following["url"])


async def compare_runs(
    http: httpx.AsyncClient, ids: list[str], baseline: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"run_ids": ids}
    if baseline:
        body["baseline_run_id"] = baseline
    answer = await http.post("/api/v1/tracking/runs/compare", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def metric_cell(page: Page, metric: str, run_id: str) -> Locator:
    return page.locator(f'table.metric-diff tr[data-metric="{metric}"] td[data-id="{run_id}"]')


async def assert_metric_table(page: Page, diff: dict[str, Any], best_key: str) -> None:
    """Every metric row: the best cell, and each cell's verdict, as the API says."""
    rows = page.locator("table.metric-diff tbody tr")
    assert await rows.count() == len(diff)
    for metric, entry in diff.items():
        best = page.locator(f'table.metric-diff tr[data-metric="{metric}"] td[data-best]')
        if entry[best_key] is None:
            assert await best.count() == 0
        else:
            assert await best.get_attribute("data-id") == entry[best_key]
            assert "best" in (await best.get_attribute("class") or "").split()
        for run_id, value in entry["values"].items():
            cell = metric_cell(page, metric, run_id)
            classes = (await cell.get_attribute("class") or "").split()
            assert await cell.locator(".value").inner_text() == shown_number(value)
            verdict = (entry["verdict"] or {}).get(run_id)
            if verdict is None:
                assert not [name for name in classes if name.startswith("verdict-")]
            else:
                assert f"verdict-{verdict}" in classes
                assert await cell.get_attribute("data-verdict") == verdict


async def focused(page: Page) -> dict[str, Any]:
    """What has the keyboard focus (read only: input is by keyboard alone)."""
    info: dict[str, Any] = await page.evaluate(
        "() => { const e = document.activeElement; return {tag: e.tagName, id: e.id,"
        " cls: e.className, text: e.textContent, value: e.value ?? null}; }"
    )
    return info


async def tab_until(page: Page, want: Any, key: str = "Tab", limit: int = 80) -> dict[str, Any]:
    """Press Tab (or Shift+Tab) until `want(what has the focus)`."""
    for _ in range(limit):
        await page.keyboard.press(key)
        info = await focused(page)
        if want(info):
            return info
    raise AssertionError("the keyboard never reached the element")


# --- the runs table ----------------------------------------------------------


async def test_the_runs_table_lists_what_the_api_lists(console: BrowserPage, demo: Demo) -> None:
    http = demo.stack.http
    await open_view(console, "/console/runs", "runs")
    listed = (await http.get("/api/v1/tracking/runs")).json()["runs"]
    assert await run_rows(console.page) == [run["run_id"] for run in listed]
    assert len(listed) == sum(len(ids) for ids in demo.summary.run_ids.values())
    first = console.page.locator("table.runs tbody tr").first
    assert await first.locator("a").first.get_attribute("href") == (
        f"/console/runs/{listed[0]['run_id']}"
    )
    assert listed[0]["tags"]["run_type"] in await first.inner_text()
    await console.screenshots("runs")

    # The filter box: typed, sent with Enter, kept in the console URL.
    await console.page.get_by_label("Filter (§10)").fill('run_type = "walk_forward"')
    await console.page.get_by_label("Order by").fill("metrics.mean_oos_sharpe best")
    await console.page.get_by_label("Order by").press("Enter")
    await console.page.wait_for_url(re.compile(r"filter=run_type"))
    await console.page.locator('main[data-view="runs"]').wait_for()
    expected = await http.get(
        "/api/v1/tracking/runs",
        params={"filter": 'run_type = "walk_forward"', "order_by": "metrics.mean_oos_sharpe best"},
    )
    walk_forward = [run["run_id"] for run in expected.json()["runs"]]
    assert sorted(walk_forward) == sorted(demo.summary.run_ids["walk_forward"])
    assert await run_rows(console.page) == walk_forward


async def test_runs_page_forward_and_back_by_token(console: BrowserPage, demo: Demo) -> None:
    pages = await api_run_pages(demo.stack.http, {"page_size": 3})
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    await open_view(console, "/console/runs?page_size=3", "runs")
    page = console.page
    assert await run_rows(page) == pages[0]
    assert await page.get_by_role("link", name="← Previous page").count() == 0
    for expected in pages[1:]:
        await page.get_by_role("link", name="Next page →").click()
        await page.locator('main[data-view="runs"]').wait_for()
        assert await run_rows(page) == expected
    assert await page.get_by_role("link", name="Next page →").count() == 0
    assert "Page 4" in await page.locator(".page-number").inner_text()
    for expected in reversed(pages[:-1]):
        await page.get_by_role("link", name="← Previous page").click()
        await page.locator('main[data-view="runs"]').wait_for()
        assert await run_rows(page) == expected
    assert "page_token" not in page.url
    # The browser's own Back goes back a page too: the state is the URL.
    await page.go_back()
    await page.locator('main[data-view="runs"]').wait_for()
    assert await run_rows(page) == pages[1]


# --- one run -----------------------------------------------------------------


async def test_a_run_charts_each_metric_logged_at_several_steps(
    console: BrowserPage, demo: Demo
) -> None:
    http = demo.stack.http
    charted = {}
    for run_type in ("walk_forward", "training"):
        run_id = demo.summary.run_ids[run_type][0]
        run = (await http.get(f"/api/v1/tracking/runs/{run_id}")).json()
        several = []
        for key in sorted(run["metrics"]):
            history = await http.get(f"/api/v1/tracking/runs/{run_id}/metrics/{key}/history")
            if len(history.json()["history"]) > 1:
                several.append(key)
        charted[run_type] = several
        await open_view(console, f"/console/runs/{run_id}", "run")
        page = console.page
        assert await page.locator("h1").inner_text() == f"Run {run['run_name']}"
        charts = page.locator("figure.chart")
        assert await charts.count() == len(several)
        for index, key in enumerate(several):
            chart = charts.nth(index)
            assert await chart.locator("figcaption").inner_text() == key
            assert await chart.get_attribute("data-series") == "1"
            assert await chart.locator("path.series").count() == 1
            assert await chart.locator("svg[role=img]").get_attribute("aria-label")
        metric_rows = page.locator("tr[data-metric]")
        assert await metric_rows.count() == len(run["metrics"])
        for key, value in run["metrics"].items():
            row = page.locator(f'tr[data-metric="{key}"]')
            assert await row.locator("td").first.inner_text() == shown_number(value)
        link = page.get_by_role("link", name="Import into the audit trail")
        assert await link.get_attribute("href") == f"/console/import?run={run_id}"
        params = page.locator("table:has(caption:text-is('Params')) tbody tr")
        assert await params.count() == len(run["params"])
        if several:
            await console.screenshots("run")
    # Walk-forward logs oos_sharpe once per fold; training logs one value each.
    assert charted == {"walk_forward": ["oos_sharpe"], "training": []}


async def test_an_unknown_run_shows_the_contracts_message(console: BrowserPage) -> None:
    console.expected_statuses.add(404)
    await open_view(console, f"/console/runs/{UNKNOWN_RUN}", "run")
    error = console.page.locator(".error")
    assert await error.inner_text() == f"404: Run not found: {UNKNOWN_RUN}"


# --- compare -----------------------------------------------------------------


async def test_compare_three_training_runs_best_and_verdicts(
    console: BrowserPage, demo: Demo
) -> None:
    http = demo.stack.http
    ids = demo.summary.compare_run_ids
    plain = await compare_runs(http, ids)
    sharpe = plain["metric_diff"]["oos_sharpe"]["values"]
    assert sorted(sharpe.values()) == [1.18, 1.35, 1.42]
    top = next(run_id for run_id, value in sharpe.items() if value == 1.42)

    await open_view(console, f"/console/compare?kind=runs&ids={','.join(ids)}", "compare")
    page = console.page
    headers = page.locator("table.metric-diff thead th[data-id]")
    assert await headers.evaluate_all("cells => cells.map(c => c.dataset.id)") == ids
    best = page.locator('tr[data-metric="oos_sharpe"] td[data-best]')
    assert await best.get_attribute("data-id") == top
    await assert_metric_table(page, plain["metric_diff"], "best_run_id")
    assert await page.locator("table.metric-diff td.verdict-better").count() == 0
    direction = page.locator('tr[data-metric="max_drawdown"]')
    assert await direction.get_attribute("data-direction") == "maximize"
    assert "higher is better" in await direction.inner_text()

    heads = await page.locator(".diffs table").first.locator("thead th").all_inner_texts()
    assert heads == ["Key", *[f"training {run_id[:8]}" for run_id in ids]]
    # The parameters that vary are marked; "only what varies" hides the rest.
    param_rows = page.locator(".diffs table").first.locator("tbody tr")
    assert await param_rows.count() == len(plain["param_diff"])
    varying = [key for key, diff in plain["param_diff"].items() if diff["varies"]]
    assert sorted(
        await page.locator(".diffs table")
        .first.locator("tr.varies")
        .evaluate_all("rows => rows.map(r => r.dataset.key)")
    ) == sorted(varying)
    await page.get_by_label("Only what varies").check()
    assert await param_rows.locator("visible=true").count() == len(varying)

    # With the 1.18 run as the baseline, every cell's verdict is the API's.
    worst = next(run_id for run_id, value in sharpe.items() if value == 1.18)
    judged = await compare_runs(http, ids, worst)
    await page.get_by_label("Baseline").select_option(worst)
    await page.get_by_role("button", name="Set baseline").click()
    await page.wait_for_url(re.compile(f"baseline={worst}"))
    await page.locator('main[data-view="compare"]').wait_for()
    await assert_metric_table(page, judged["metric_diff"], "best_run_id")
    assert await metric_cell(page, "oos_sharpe", top).get_attribute("data-verdict") == "better"
    classes = await metric_cell(page, "oos_sharpe", top).get_attribute("class") or ""
    assert "verdict-better" in classes.split()
    delta = judged["metric_diff"]["oos_sharpe"]["delta"][top]
    assert await metric_cell(page, "oos_sharpe", top).locator(".delta").text_content() == (
        f"change Δ +{shown_number(delta)}"
    )
    assert await page.get_by_label("Baseline").input_value() == worst
    await console.screenshots("compare-runs")

    # With the 1.42 run as the baseline, the others are worse on both metrics.
    await page.get_by_label("Baseline").select_option(top)
    await page.get_by_role("button", name="Set baseline").click()
    await page.wait_for_url(re.compile(f"baseline={top}"))
    await page.locator('main[data-view="compare"]').wait_for()
    judged = await compare_runs(http, ids, top)
    await assert_metric_table(page, judged["metric_diff"], "best_run_id")
    assert await page.locator("table.metric-diff td.verdict-worse").count() == 4


async def test_compare_walk_forward_runs_fold_statistics(console: BrowserPage, demo: Demo) -> None:
    http = demo.stack.http
    ids = demo.summary.run_ids["walk_forward"]
    older = ids[0]  # oldest first: the README's baseline
    answer = await compare_runs(http, ids, older)
    assert list(answer["fold_stats"]) == ["oos_sharpe"]

    await open_view(
        console, f"/console/compare?kind=runs&ids={','.join(ids)}&baseline={older}", "compare"
    )
    page = console.page
    await assert_metric_table(page, answer["metric_diff"], "best_run_id")

    for metric, stats in answer["fold_stats"].items():
        table = page.locator(f'table.fold-stats[data-metric="{metric}"]')
        for run_id, one in stats.items():
            row = table.locator(f'tr[data-id="{run_id}"]')

            async def stat(name: str, row: Locator = row) -> str:
                return await row.locator(f'td[data-stat="{name}"]').inner_text()

            assert await row.locator("th").inner_text() == f"walk_forward {run_id[:8]}"
            assert await stat("folds") == str(one["folds"])
            for name in ("mean", "std", "min", "max", "worst"):
                assert await stat(name) == shown_number(one[name]), name
            share = shown_number(one["positive_share"] * 100, 1)
            assert await stat("positive_share") == f"{share} %"

        # One chart of the folds, one series per run.
        chart = page.locator(f'.fold-chart[data-metric="{metric}"] figure.chart')
        assert await chart.count() == 1
        assert await chart.locator("path.series").count() == len(ids)
        assert await chart.get_attribute("data-series") == str(len(ids))
        legend = await chart.locator(".legend li").all_inner_texts()
        assert [text.split()[-1] for text in legend] == [run_id[:8] for run_id in ids]

        paired = answer["paired"][metric]
        assert list(paired) == [ids[1]]
        row = page.locator(f'table.paired[data-metric="{metric}"] tr[data-id="{ids[1]}"]')
        for name in ("n", "wins", "losses", "ties"):
            assert await row.locator(f'td[data-stat="{name}"]').inner_text() == str(
                paired[ids[1]][name]
            )
        assert await row.locator('td[data-stat="sign_test_p"]').inner_text() == shown_number(
            paired[ids[1]]["sign_test_p"]
        )

        figure = answer["overfitting"][metric]
        if figure["pbo"] is None:
            reason = page.locator(f'p.reason[data-metric="{metric}"]')
            assert await reason.inner_text() == f"No PBO: {figure['reason']}"
        else:
            block = page.locator(f'dl.pbo-figures[data-metric="{metric}"]')
            assert await block.locator("dd.pbo").inner_text() == shown_number(figure["pbo"], 3)
            assert await block.locator("dd.pbo-blocks").inner_text() == str(figure["blocks"])
            assert await block.locator("dd.pbo-combinations").inner_text() == str(
                figure["combinations"]
            )
            assert await block.locator("dd.pbo-runs").inner_text() == str(figure["runs"])
    section = page.locator('section.fold-metric[data-metric="oos_sharpe"]')
    explanations = await section.locator(".explain").all_inner_texts()
    assert any(line.startswith("Share of in/out-of-sample splits") for line in explanations)
    assert any(line.startswith("Sign-test p: chance of a split") for line in explanations)
    assert await page.locator("figure.chart").count() == len(answer["fold_stats"])
    await console.screenshots("compare-folds")


async def test_a_run_without_folds_is_a_dash_and_left_out_of_the_chart(
    console: BrowserPage, demo: Demo
) -> None:
    runs = demo.summary.run_ids
    ids = [runs["walk_forward"][0], runs["training"][0], runs["cpcv"][0]]
    answer = await compare_runs(demo.stack.http, ids)
    assert answer["fold_stats"]["oos_sharpe"][ids[1]] is None
    await open_view(console, f"/console/compare?kind=runs&ids={','.join(ids)}", "compare")
    page = console.page
    row = page.locator(f'table.fold-stats tr[data-id="{ids[1]}"]')
    assert await row.locator("td").all_inner_texts() == ["—"] * 7
    chart = page.locator('.fold-chart[data-metric="oos_sharpe"] figure.chart')
    assert await chart.locator("path.series").count() == 2
    # No baseline: no paired table, and a word on what a baseline adds.
    assert await page.locator("table.paired").count() == 0
    assert await page.locator("text=Choose a baseline for fold-by-fold").count() == 1


async def test_compare_experiments_with_a_baseline(console: BrowserPage, demo: Demo) -> None:
    http = demo.stack.http
    ids = demo.summary.experiment_ids[:4]
    baseline = ids[1]
    answer = await http.post("/api/v1/experiments/compare", params={"baseline": baseline}, json=ids)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    await open_view(
        console,
        f"/console/compare?kind=experiments&ids={','.join(ids)}&baseline={baseline}",
        "compare",
    )
    page = console.page
    assert await page.locator("h1").inner_text() == "Compare 4 experiments"
    await assert_metric_table(page, data["metric_diff"], "best_id")
    assert await page.locator("td.verdict-baseline").count() == len(data["metric_diff"])
    lineage = page.locator(".diffs table").nth(1).locator("tbody tr")
    assert await lineage.count() == len(data["lineage_diff"])

    # Selection bias: one row per Sharpe metric, with the API's figures or reason.
    rows = page.locator("table.selection tbody tr")
    assert await rows.evaluate_all("rows => rows.map(r => r.dataset.metric)") == sorted(
        data["selection"]
    )
    for metric, one in data["selection"].items():
        row = page.locator(f'table.selection tr[data-metric="{metric}"]')
        assert await row.locator('td[data-stat="trials"]').inner_text() == str(one["trials"])
        assert await row.locator('td[data-stat="expected_max_sharpe"]').inner_text() == (
            shown_number(one["expected_max_sharpe"])
        )
        deflated = await row.locator('td[data-stat="deflated_sharpe"]').inner_text()
        if one["deflated_sharpe"] is None:
            assert deflated == f"— {one['reason']}"
        else:
            assert deflated == shown_number(one["deflated_sharpe"])
    explanation = await page.locator("section.statistics .explain").inner_text()
    assert explanation.startswith("Deflated Sharpe: probability that the best Sharpe ratio beats")
    await console.screenshots("compare-experiments")


async def test_directions_from_the_console_url_reach_both_compares(
    console: BrowserPage, demo: Demo
) -> None:
    """`maximize` / `minimize` in the console URL: the runs compare's body
    lists, the experiments compare's query parameters (§7)."""
    http = demo.stack.http
    page = console.page
    runs = demo.summary.compare_run_ids
    answer = await http.post(
        "/api/v1/tracking/runs/compare", json={"run_ids": runs, "minimize": ["oos_sharpe"]}
    )
    turned = answer.json()["metric_diff"]["oos_sharpe"]
    assert turned["direction"] == "minimize"
    await open_view(
        console, f"/console/compare?kind=runs&ids={','.join(runs)}&minimize=oos_sharpe", "compare"
    )
    row = page.locator('table.metric-diff tr[data-metric="oos_sharpe"]')
    assert await row.get_attribute("data-direction") == "minimize"
    assert await row.locator("td[data-best]").get_attribute("data-id") == turned["best_run_id"]

    experiments = demo.summary.experiment_ids[:3]
    answer = await http.post(
        "/api/v1/experiments/compare", params={"maximize": "max_drawdown"}, json=experiments
    )
    assert answer.status_code == 200, answer.text
    path = f"/console/compare?ids={','.join(experiments)}&maximize=max_drawdown"
    await open_view(console, path, "compare")
    await assert_metric_table(page, answer.json()["metric_diff"], "best_id")
    row = page.locator('table.metric-diff tr[data-metric="max_drawdown"]')
    assert await row.get_attribute("data-direction") == "maximize"


async def test_a_bad_runs_filter_shows_the_contracts_message(
    console: BrowserPage, demo: Demo
) -> None:
    console.expected_statuses.add(400)
    refused = await demo.stack.http.get(
        "/api/v1/tracking/runs", params={"filter": "metrics.oos_sharpe >"}
    )
    assert refused.status_code == 400
    await open_view(console, "/console/runs?filter=metrics.oos_sharpe%20%3E", "runs")
    page = console.page
    assert await page.locator(".error").inner_text() == f"400: {refused.json()['message']}"
    # The form keeps what was typed, to be mended.
    assert await page.get_by_label("Filter (§10)").input_value() == "metrics.oos_sharpe >"


async def test_a_late_compare_never_overwrites_the_view_gone_to(
    console: BrowserPage, demo: Demo
) -> None:
    """The reader leaves a compare before its answer is in: the answer, when
    it comes, is not drawn over the runs view."""
    page = console.page
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/api/v1/tracking/runs/compare", hold)
    ids = demo.summary.compare_run_ids
    async with page.expect_request("**/api/v1/tracking/runs/compare"):
        await console.goto(f"/console/compare?kind=runs&ids={','.join(ids)}")
    await page.locator("header nav").get_by_role("link", name="Runs").click()
    await page.locator('main[data-view="runs"]').wait_for()
    async with page.expect_response("**/api/v1/tracking/runs/compare"):
        release.set()
    await page.wait_for_timeout(300)  # time for the late answer to be (not) drawn
    assert await page.locator("main h1").inner_text() == "Runs"
    assert await page.locator("main").get_attribute("data-view") == "runs"
    assert await page.locator("table.metric-diff").count() == 0


async def test_compare_by_keyboard_alone(console: BrowserPage, demo: Demo) -> None:
    http = demo.stack.http
    listed = [run["run_id"] for run in (await http.get("/api/v1/tracking/runs")).json()["runs"]]
    await open_view(console, "/console/runs", "runs")
    page = console.page
    keyboard = page.keyboard

    def is_pick(info: dict[str, Any]) -> bool:
        return info["tag"] == "INPUT" and "pick" in info["cls"]

    first = await tab_until(page, is_pick)
    await keyboard.press("Space")
    second = await tab_until(page, is_pick)
    await keyboard.press("Space")
    assert [first["value"], second["value"]] == listed[:2]
    assert "2 runs selected" in await page.locator(".selection-status").inner_text()
    # The compare bar is above the table: back up to it.
    await tab_until(page, lambda info: info["text"] == "Compare selected", key="Shift+Tab")
    await keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/console/compare\?kind=runs&ids="))
    await page.locator('main[data-view="compare"]').wait_for()
    assert page.url.endswith(f"/console/compare?kind=runs&ids={listed[0]},{listed[1]}")

    # The baseline: Tab to the list, the arrow key picks the first run, Enter sets it.
    await tab_until(page, lambda info: info["id"] == "compare-baseline")
    await keyboard.press("ArrowDown")
    assert (await focused(page))["value"] == listed[0]
    await keyboard.press("Tab")
    assert (await focused(page))["text"] == "Set baseline"
    await keyboard.press("Enter")
    await page.wait_for_url(re.compile(f"baseline={listed[0]}"))
    await page.locator('main[data-view="compare"]').wait_for()
    answer = await compare_runs(http, listed[:2], listed[0])
    await assert_metric_table(page, answer["metric_diff"], "best_run_id")
    assert await page.locator("td[data-verdict=baseline]").count() == len(answer["metric_diff"])
    # Enter on the list itself applies a choice too: back to no baseline.
    await tab_until(page, lambda info: info["id"] == "compare-baseline")
    await keyboard.press("ArrowUp")
    await keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"ids=[^&]+$"))
    await page.locator('main[data-view="compare"]').wait_for()
    assert await page.locator("td[data-verdict]").count() == 0


async def test_compare_errors_show_the_contracts_message(console: BrowserPage, demo: Demo) -> None:
    page = console.page
    console.expected_statuses.update({400, 404})
    run = demo.summary.run_ids["training"][0]
    await open_view(console, f"/console/compare?kind=runs&ids={run},{UNKNOWN_RUN}", "compare")
    assert await page.locator(".error").inner_text() == f"404: Run not found: {UNKNOWN_RUN}"
    await console.screenshots("compare-error")

    ids = demo.summary.experiment_ids
    unknown = "00000000-0000-0000-0000-000000000000"
    await open_view(console, f"/console/compare?ids={ids[0]},{unknown}", "compare")
    assert await page.locator("h1").inner_text() == "Compare 2 experiments"
    assert await page.locator(".error").inner_text() == f"404: Experiments not found: {unknown}"

    await open_view(console, f"/console/compare?ids={ids[0]},{ids[1]}&baseline={ids[2]}", "compare")
    message = (
        await demo.stack.http.post(
            "/api/v1/experiments/compare", params={"baseline": ids[2]}, json=ids[:2]
        )
    ).json()["message"]
    assert await page.locator(".error").inner_text() == f"400: {message}"


async def test_the_compare_form_takes_pasted_ids(console: BrowserPage, demo: Demo) -> None:
    await open_view(console, "/console/compare", "compare")
    page = console.page
    ids = demo.summary.run_ids["cpcv"]
    await page.get_by_label(IDS_LABEL).fill(ids[0])
    await page.get_by_role("button", name="Compare").click()
    assert await page.locator(".form-message .error").inner_text() == "Give 2 to 10 ids; 1 given."
    await page.get_by_label(IDS_LABEL).fill(f"{ids[0]}\n{ids[1]}, ")
    await page.get_by_label(IDS_LABEL).press("Control+Enter")
    await page.wait_for_url(re.compile(r"kind=runs"))
    await page.locator('main[data-view="compare"]').wait_for()
    assert page.url.endswith(f"/console/compare?kind=runs&ids={ids[0]},{ids[1]}")
    assert await page.locator("table.fold-stats tbody tr").count() == 2
    await console.screenshots("compare-form")


def test_the_modules_insert_text_only_and_speak_to_the_api_only() -> None:
    """No HTML parsing of any string, no inline style, no other host."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"\.style\b|\"style\"|https?://"
    )
    for module in OUR_MODULES:
        source = module.read_text()
        assert not forbidden.search(source), f"{module.name}: {forbidden.search(source)}"
        for path in re.findall(r"\"(/api/[^\"]*)\"|`(/api/[^`]*)`", source):
            assert (path[0] or path[1]).startswith("/api/v1/")


async def test_no_view_is_wider_than_a_phone(console: BrowserPage, demo: Demo) -> None:
    """At 390x844 only the tables scroll sideways (in .table-scroll), never the page."""
    runs, experiments = demo.summary.run_ids, demo.summary.experiment_ids
    folds = runs["walk_forward"]
    await console.page.set_viewport_size(PHONE)
    for path, view in [
        ("/console/runs", "runs"),
        (f"/console/runs/{folds[0]}", "run"),
        ("/console/compare", "compare"),
        (f"/console/compare?kind=runs&ids={','.join(folds)}&baseline={folds[0]}", "compare"),
        (f"/console/compare?ids={','.join(experiments[:5])}&baseline={experiments[0]}", "compare"),
    ]:
        await open_view(console, path, view)
        width = await console.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], path
