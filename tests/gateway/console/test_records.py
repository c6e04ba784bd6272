"""The console's records half (CONTRACT §12) in a real headless Chromium on
the real backbone with the demo data: the experiments list (filters, order,
paging forward and back, show-deleted, choosing rows to compare), one
experiment (fields, revisions, an edit with If-Match and its 409, delete and
undelete), importing a run; strings from the API only ever as text; the
keyboard alone; and, on a stack with API_TOKENS, the token prompt on a 401
and a read-only token's 403.

What the page shows is checked against what the HTTP API answers for the
same query, id for id."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from playwright.async_api import Browser, Dialog, Page

from research_common.auth import Tokens
from tests.fixtures.browser import DESKTOP, BrowserPage
from tests.fixtures.stack import guarded_stack
from tests.gateway.console.conftest import Demo
from tracking_svc.lineage import Lineage, start_run

# The demo loader is a script, imported as the script tests import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from demo_data import DEMO_STRATEGY, SECOND_STRATEGY

XSS = "<img src=x onerror=alert(1)>"
BAD_FILTER = "metrics.oos_sharpe >"
# An MLflow experiment of its own for runs this module imports, so that the
# demo experiment the runs view lists keeps exactly the demo's runs.
IMPORT_EXPERIMENT = "console-records-import"


# --- the page ----------------------------------------------------------------


# --- helpers -----------------------------------------------------------------


async def shown(console: BrowserPage, view: str) -> None:
    """The view has drawn its data (it sets main[data-view])."""
    await console.page.locator(f'main[data-view="{view}"]').wait_for()


async def open_view(console: BrowserPage, path: str, view: str) -> None:
    await console.goto(path)
    await shown(console, view)


async def row_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator("main tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.id)"
    )
    return ids


async def api_ids(http: httpx.AsyncClient, params: dict[str, Any]) -> list[str]:
    answer = await http.get("/api/v1/experiments", params=params)
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()]


async def api_pages(http: httpx.AsyncClient, params: dict[str, Any]) -> list[list[str]]:
    """Every page of the list, following the Link header as a client would."""
    pages = []
    answer = await http.get("/api/v1/experiments", params=params)
    while True:
        assert answer.status_code == 200, answer.text
        pages.append([row["id"] for row in answer.json()])
        following = answer.links.get("next")
        if following is None:
            return pages
        answer = await http.get(following["url"])


async def after_navigation(console: BrowserPage, view: str, action: Any) -> None:
    """Run `action` (a click, a key press) that navigates, and wait for the
    new view's data (data-view is cleared at each navigation)."""
    page = console.page
    before = page.url
    await action()
    await page.wait_for_function("before => window.location.href !== before", arg=before)
    await shown(console, view)


async def submit_filters(console: BrowserPage, values: dict[str, str]) -> None:
    page = console.page
    for name, value in values.items():
        await page.locator(f"#f-{name}").fill(value)
    await after_navigation(
        console, "experiments", lambda: page.get_by_role("button", name="Apply").click()
    )


async def experiment(http: httpx.AsyncClient, experiment_id: str) -> dict[str, Any]:
    answer = await http.get(f"/api/v1/experiments/{experiment_id}", params={"show_deleted": True})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def set_metrics(page: Page, metrics: dict[str, Any]) -> None:
    await page.locator("#edit-metrics").fill(json.dumps(metrics))
    await page.get_by_role("button", name="Save changes").click()


# --- the experiments list ----------------------------------------------------


async def test_the_list_shows_every_demo_experiment_newest_first(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    await open_view(console, "/console", "experiments")
    newest_first = await api_ids(demo.stack.http, {})
    assert len(newest_first) == len(demo.summary.experiment_ids)
    assert sorted(newest_first) == sorted(demo.summary.experiment_ids)
    assert await row_ids(page) == newest_first
    assert await page.locator("main h1").inner_text() == "Experiments"

    # One row's cells, against the API's record of it.
    first = await experiment(demo.stack.http, newest_first[0])
    row = page.locator(f'main tbody tr[data-id="{first["id"]}"]')
    cells = [text.strip() for text in await row.locator("td").all_inner_texts()]
    assert cells[1] == first["id"][:8]
    assert cells[2] == first["strategy_id"][:8]
    assert cells[3:7] == [
        first["dataset_version"],
        first["feature_version"],
        first["model_version"],
        first["git_commit_hash"],
    ]
    assert cells[7] == first["mlflow_run_id"][:8]
    assert await row.locator("td").nth(1).locator("a").get_attribute("href") == (
        f"/console/experiments/{first['id']}"
    )
    assert await row.locator("td").nth(7).locator("a").get_attribute("href") == (
        f"/console/runs/{first['mlflow_run_id']}"
    )
    assert "oos_sharpe" in cells[8]
    assert await page.locator("main tr.deleted").count() == 0
    # One page only: neither previous nor next.
    assert await page.locator("nav.pager a").count() == 0
    await console.screenshots("experiments")


async def test_paging_forward_and_back_follows_the_api_pages(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    expected = await api_pages(demo.stack.http, {"page_size": 3})
    # The demo's experiments make at least three pages of three.
    assert len(expected) >= 3
    assert all(len(ids) == 3 for ids in expected[:-1])
    assert sum(map(len, expected)) == len(demo.summary.experiment_ids)

    await open_view(console, "/console/experiments", "experiments")
    await submit_filters(console, {"page_size": "3"})
    assert await row_ids(page) == expected[0]
    assert await page.get_by_role("link", name="← Previous page").count() == 0

    for number, ids in enumerate(expected[1:], start=2):
        await after_navigation(
            console, "experiments", lambda: page.get_by_role("link", name="Next page →").click()
        )
        assert await row_ids(page) == ids, f"page {number}"
        assert await page.locator("nav.pager .page-number").inner_text() == f"Page {number}"
    assert await page.get_by_role("link", name="Next page →").count() == 0

    # A reload and the browser's Back keep the page the URL names.
    await page.reload()
    await shown(console, "experiments")
    assert await row_ids(page) == expected[-1]
    await page.go_back()
    await shown(console, "experiments")
    assert await row_ids(page) == expected[-2]
    await page.go_forward()
    await shown(console, "experiments")
    assert await row_ids(page) == expected[-1]

    for number in range(len(expected) - 1, 0, -1):
        await after_navigation(
            console,
            "experiments",
            lambda: page.get_by_role("link", name="← Previous page").click(),
        )
        assert await row_ids(page) == expected[number - 1], f"page {number}"
    assert await page.get_by_role("link", name="← Previous page").count() == 0
    assert "page_token" not in page.url


async def test_lineage_filters_the_filter_box_and_the_order_narrow_the_rows(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    http = demo.stack.http
    await open_view(console, "/console/experiments", "experiments")

    await submit_filters(console, {"strategy_id": SECOND_STRATEGY})
    second = await api_ids(http, {"strategy_id": SECOND_STRATEGY})
    assert 0 < len(second) < len(demo.summary.experiment_ids)
    assert await row_ids(page) == second

    await submit_filters(
        console,
        {
            "strategy_id": "",
            "filter": "metrics.oos_sharpe > 1.2",
            "order_by": "metrics.oos_sharpe best",
        },
    )
    query = {"filter": "metrics.oos_sharpe > 1.2", "order_by": "metrics.oos_sharpe best"}
    best = await api_ids(http, query)
    assert 0 < len(best) < len(demo.summary.experiment_ids)
    assert await row_ids(page) == best
    sharpe = [(await experiment(http, one))["metrics"]["oos_sharpe"] for one in best]
    assert sharpe == sorted(sharpe, reverse=True)
    # The ordered metric leads each row's key metrics.
    first_metric = page.locator("main tbody tr ul.experiment-metrics li:first-child .metric-name")
    assert set(await first_metric.all_inner_texts()) == {"oos_sharpe"}
    # The form state is the console URL's query: a reload keeps it.
    await page.reload()
    await shown(console, "experiments")
    assert await page.locator("#f-filter").input_value() == "metrics.oos_sharpe > 1.2"
    assert await page.locator("#f-order_by").input_value() == "metrics.oos_sharpe best"
    assert await row_ids(page) == best


async def test_a_bad_filter_shows_the_contract_message_with_its_position(
    console: BrowserPage, demo: Demo
) -> None:
    console.expected_statuses.add(400)
    page = console.page
    refused = await demo.stack.http.get("/api/v1/experiments", params={"filter": BAD_FILTER})
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "position" in message

    await open_view(console, "/console/experiments", "experiments")
    await page.locator("#f-filter").fill(BAD_FILTER)
    await page.locator("#f-filter").press("Enter")
    alert = page.locator("main p.error[role=alert]")
    await alert.wait_for()
    assert await alert.inner_text() == f"400: {message}"
    assert await page.locator("main tbody tr").count() == 0
    # The form keeps what was typed, to be corrected.
    assert await page.locator("#f-filter").input_value() == BAD_FILTER


async def test_show_deleted_brings_back_a_deleted_row_marked(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    http = demo.stack.http
    gone = demo.summary.experiment_ids[3]
    deleted = await http.delete(f"/api/v1/experiments/{gone}")
    assert deleted.status_code == 204

    await open_view(console, "/console/experiments", "experiments")
    live = await api_ids(http, {})
    assert gone not in live
    assert len(live) == len(demo.summary.experiment_ids) - 1
    assert await row_ids(page) == live

    await page.locator("#f-show_deleted").check()
    await after_navigation(
        console, "experiments", lambda: page.get_by_role("button", name="Apply").click()
    )
    assert "show_deleted=true" in page.url
    every = await api_ids(http, {"show_deleted": True})
    assert len(every) == len(demo.summary.experiment_ids)
    assert await row_ids(page) == every
    marked = await page.locator("main tbody tr.deleted").evaluate_all(
        "rows => rows.map(row => row.dataset.id)"
    )
    assert marked == [gone]
    assert await page.locator("main tr.deleted .badge").inner_text() == "deleted"


async def test_compare_selected_opens_the_compare_view_with_the_ticked_ids(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    # The compare view is another module's; a stand-in keeps this test to
    # what the list promises: the URL it navigates to.
    await page.route(
        "**/console/assets/views/compare.js",
        lambda route: route.fulfill(
            status=200,
            content_type="text/javascript",
            body=(
                'import { h, mount } from "../dom.js";\n'
                "export async function render({ main, query }) {\n"
                '  mount(main, h("h1", {}, "Compare"), h("p", { id: "ids" }, query.get("ids")));\n'
                '  main.dataset.view = "compare";\n'
                "}\n"
            ),
        ),
    )
    await open_view(console, "/console/experiments", "experiments")
    ids = await row_ids(page)
    button = page.get_by_role("button", name="Compare selected")
    assert await button.is_disabled()
    await page.get_by_label(f"Select experiment {ids[0]}").check()
    assert await button.is_disabled()  # one is not a compare
    await page.get_by_label(f"Select experiment {ids[2]}").check()
    await page.get_by_label(f"Select experiment {ids[1]}").check()
    assert await button.is_enabled()
    await after_navigation(console, "compare", button.click)
    assert page.url == (
        f"{console.origin}/console/compare?kind=experiments&ids={ids[0]},{ids[1]},{ids[2]}"
    )
    assert await page.locator("#ids").inner_text() == f"{ids[0]},{ids[1]},{ids[2]}"


# --- one experiment ----------------------------------------------------------


async def test_the_experiment_page_shows_its_record_and_an_edit_in_its_revisions(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    http = demo.stack.http
    experiment_id = demo.summary.experiment_ids[0]
    before = await experiment(http, experiment_id)

    await open_view(console, "/console/experiments", "experiments")
    await after_navigation(
        console,
        "experiment",
        lambda: page.locator(f'main tbody tr[data-id="{experiment_id}"] td a').first.click(),
    )
    assert page.url == f"{console.origin}/console/experiments/{experiment_id}"
    assert await page.locator("main h1").inner_text() == f"Experiment {experiment_id}"

    async def field(term: str) -> str:
        return await page.locator(f'main [data-field="{term}"]').inner_text()

    assert await field("Id") == experiment_id
    assert await field("Strategy") == before["strategy_id"] == DEMO_STRATEGY
    assert await field("Dataset version") == before["dataset_version"]
    assert await field("Feature version") == before["feature_version"]
    assert await field("Model version") == before["model_version"]
    assert await field("Git commit") == before["git_commit_hash"]
    assert await field("MLflow run") == before["mlflow_run_id"]
    assert await field("Revision") == "1"
    assert await field("Deleted") == "no"
    run_link = page.get_by_role("link", name="MLflow run page")
    assert await run_link.get_attribute("href") == f"/console/runs/{before['mlflow_run_id']}"

    for name in ("parameters", "metrics", "artifacts"):
        rows = page.locator(f"main section.kv-{name} tbody tr")
        shown_pairs = [
            [cell.strip() for cell in await rows.nth(i).locator("td").all_inner_texts()]
            for i in range(await rows.count())
        ]
        stored = before[name]
        assert shown_pairs == [
            [key, value if isinstance(value, str) else json.dumps(value)]
            for key, value in sorted(stored.items())
        ], name
    # The revisions: the import, by nobody (no tokens on this stack).
    first = page.locator("main ol.timeline li").first
    assert await first.get_attribute("data-revision") == "1"
    assert await first.locator(".action").inner_text() == "import"
    assert await first.locator(".actor").inner_text() == "anonymous"
    await console.screenshots("experiment")

    # An edit of the metrics alone: sent with If-Match, recorded as revision 2.
    edited = {**before["metrics"], "console_check": 1.5}
    await set_metrics(page, edited)
    notice = page.locator("main .status .notice")
    await notice.wait_for()
    assert await notice.inner_text() == "Saved as revision 2 (changed: metrics)."
    after = await experiment(http, experiment_id)
    assert after["metrics"] == edited
    assert after["parameters"] == before["parameters"]
    assert after["revision"] == 2
    assert await field("Revision") == "2"
    newest = page.locator('main ol.timeline li[data-revision="2"]')
    await newest.wait_for()
    assert await page.locator("main ol.timeline li").first.get_attribute("data-revision") == "2"
    assert await newest.locator(".action").inner_text() == "update"
    assert await newest.locator(".actor").inner_text() == "anonymous"
    assert await newest.locator(".changed").inner_text() == "Changed: metrics"
    revisions = (await http.get(f"/api/v1/experiments/{experiment_id}/revisions")).json()
    request_id = revisions["revisions"][0]["request_id"]
    assert await newest.locator(".request-id").inner_text() == request_id
    # Saving again without a change sends nothing.
    await page.get_by_role("button", name="Save changes").click()
    await page.locator("main .status").get_by_text("Nothing changed: nothing was sent.").wait_for()
    assert (await experiment(http, experiment_id))["revision"] == 2


async def test_an_edit_after_someone_else_changed_it_is_a_409_explained(
    console: BrowserPage, demo: Demo
) -> None:
    console.expected_statuses.add(409)
    page = console.page
    http = demo.stack.http
    experiment_id = demo.summary.experiment_ids[1]
    await open_view(console, f"/console/experiments/{experiment_id}", "experiment")

    # Someone else changes it after the page read it.
    theirs = {"oos_sharpe": 9.9}
    changed = await http.patch(f"/api/v1/experiments/{experiment_id}", json={"metrics": theirs})
    assert changed.status_code == 200, changed.text

    await set_metrics(page, {"oos_sharpe": 1.0})
    conflict = page.locator("main .status .conflict")
    await conflict.wait_for()
    said = await conflict.inner_text()
    assert "Someone changed this experiment since this page read it" in said
    assert "nothing was saved" in said
    assert "it is at revision 2" in said  # the contract's message names it
    # Nothing was written: the stored metrics are the other change's.
    stored = await experiment(http, experiment_id)
    assert stored["metrics"] == theirs
    assert stored["revision"] == 2
    # The page's edit is still there, until the reader reloads.
    assert json.loads(await page.locator("#edit-metrics").input_value()) == {"oos_sharpe": 1.0}
    await after_navigation_same_url(
        console, lambda: conflict.get_by_role("button", name="Reload").click()
    )
    assert json.loads(await page.locator("#edit-metrics").input_value()) == theirs
    assert await page.locator('main [data-field="Revision"]').inner_text() == "2"


async def after_navigation_same_url(console: BrowserPage, action: Any) -> None:
    """A reload of the view in place (same URL): data-view goes at once and
    comes back when the new data is shown."""
    page = console.page
    await action()
    await page.wait_for_function(
        "() => { const m = document.getElementById('view');"
        " return m.dataset.view === 'experiment' && !m.querySelector('.conflict'); }"
    )


async def test_delete_then_undelete_through_the_page(console: BrowserPage, demo: Demo) -> None:
    page = console.page
    http = demo.stack.http
    experiment_id = demo.summary.experiment_ids[2]
    path = f"/api/v1/experiments/{experiment_id}"
    await open_view(console, f"/console/experiments/{experiment_id}", "experiment")

    await page.get_by_role("button", name="Delete").click()
    await page.locator("main .deleted-banner").wait_for()
    notice = page.locator("main .status .notice")
    assert (await notice.inner_text()).startswith("Deleted.")
    stored = await experiment(http, experiment_id)
    assert stored["deleted_at"] is not None
    assert stored["revision"] == 2
    assert (await http.get(path)).status_code == 404
    assert await page.locator('main [data-field="Deleted"]').inner_text() != "no"
    assert await page.locator("#edit-metrics").count() == 0  # no edit of a deleted one
    top = page.locator('main ol.timeline li[data-revision="2"]')
    await top.wait_for()
    assert await top.locator(".action").inner_text() == "delete"
    await console.screenshots("experiment-deleted")

    await page.get_by_role("button", name="Undelete").click()
    status = page.locator("main .status")
    await status.get_by_text("Undeleted: live again at revision 3.").wait_for()
    assert await page.locator("main .deleted-banner").count() == 0
    stored = await experiment(http, experiment_id)
    assert stored["deleted_at"] is None
    assert stored["revision"] == 3
    assert (await http.get(path)).status_code == 200
    top = page.locator('main ol.timeline li[data-revision="3"]')
    await top.wait_for()
    assert await top.locator(".action").inner_text() == "undelete"
    assert await page.get_by_role("button", name="Delete").is_visible()


async def test_older_revisions_are_paged_in_by_the_link_header(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    http = demo.stack.http
    experiment_id = demo.summary.experiment_ids[4]
    path = f"/api/v1/experiments/{experiment_id}"
    for step in range(24):  # 25 revisions: more than the page's 20
        changed = await http.patch(path, json={"metrics": {"step": step}})
        assert changed.status_code == 200, changed.text
    first_page = await http.get(f"{path}/revisions", params={"page_size": 20})
    assert "next" in first_page.links

    await open_view(console, f"/console/experiments/{experiment_id}", "experiment")
    items = page.locator("main ol.timeline li")
    numbers = await items.evaluate_all("items => items.map(item => item.dataset.revision)")
    assert numbers == [str(n) for n in range(25, 5, -1)]
    await page.get_by_role("button", name="Older revisions").click()
    await page.locator('main ol.timeline li[data-revision="1"]').wait_for()
    numbers = await items.evaluate_all("items => items.map(item => item.dataset.revision)")
    assert numbers == [str(n) for n in range(25, 0, -1)]
    assert await page.get_by_role("button", name="Older revisions").count() == 0


async def test_an_unknown_experiment_shows_the_contract_message(
    console: BrowserPage, demo: Demo
) -> None:
    console.expected_statuses.add(404)
    unknown = "00000000-0000-4000-8000-000000000000"
    answer = await demo.stack.http.get(f"/api/v1/experiments/{unknown}")
    assert answer.status_code == 404
    await console.goto(f"/console/experiments/{unknown}")
    alert = console.page.locator("main p.error[role=alert]")
    await alert.wait_for()
    assert await alert.inner_text() == f"404: {answer.json()['message']}"


# --- import ------------------------------------------------------------------


def _new_run(tracking_uri: str) -> str:
    """A run that no experiment records yet, outside the demo's experiment."""
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(IMPORT_EXPERIMENT)
    experiment_id = (
        found.experiment_id if found is not None else client.create_experiment(IMPORT_EXPERIMENT)
    )
    run = start_run(client, str(experiment_id), Lineage(DEMO_STRATEGY, "training", "abc1234"))
    client.log_metric(run.info.run_id, "oos_sharpe", 1.11)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


async def test_import_says_created_or_already_recorded_and_links_the_experiment(
    console: BrowserPage, demo: Demo
) -> None:
    console.expected_statuses.add(404)
    page = console.page
    http = demo.stack.http
    recorded = demo.summary.run_ids["backtest"][0]
    (known,) = await api_ids(http, {"mlflow_run_id": recorded})

    # The run view links here with ?run=: the form is filled, nothing sent yet.
    await open_view(console, f"/console/import?run={recorded}", "import")
    assert await page.locator("#import-run").input_value() == recorded
    assert await page.locator("main .import-result").inner_text() == ""
    await page.get_by_role("button", name="Import").click()
    outcome = page.locator('main .import-result [data-outcome="existing"]')
    await outcome.wait_for()
    assert (await outcome.inner_text()).startswith(
        f"Already recorded: run {recorded} is experiment {known}."
    )
    assert await outcome.get_by_role("link").get_attribute("href") == (
        f"/console/experiments/{known}"
    )
    assert len(await api_ids(http, {})) == len(demo.summary.experiment_ids)
    await console.screenshots("import")

    # An unknown run: the contract's message.
    unknown = "0" * 32
    refused = await http.post("/api/v1/experiments/import", json={"mlflow_run_id": unknown})
    assert refused.status_code == 404
    await page.locator("#import-run").fill(unknown)
    await page.get_by_role("button", name="Import").click()
    alert = page.locator("main .import-result p.error")
    await alert.wait_for()
    assert await alert.inner_text() == f"404: {refused.json()['message']}"

    # A new run: created (201), and the link opens it.
    fresh = await asyncio.to_thread(_new_run, demo.stack.mlflow.url)
    await page.locator("#import-run").fill(fresh)
    await page.locator("#import-run").press("Enter")
    created = page.locator('main .import-result [data-outcome="created"]')
    await created.wait_for()
    (new_id,) = await api_ids(http, {"mlflow_run_id": fresh})
    assert (await created.inner_text()).startswith(f"Created: run {fresh} is experiment {new_id}.")

    await after_navigation(console, "experiment", created.get_by_role("link").click)
    assert await page.locator('main [data-field="MLflow run"]').inner_text() == fresh


# --- text only, keyboard only ------------------------------------------------


async def test_markup_from_the_api_is_shown_as_text_and_runs_nothing(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    dialogs: list[str] = []

    async def saw(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", saw)
    created = await demo.stack.http.post(
        "/api/v1/experiments",
        json={
            "strategy_id": DEMO_STRATEGY,
            "dataset_version": XSS,
            "parameters": {XSS: XSS},
            "metrics": {XSS: 1.25},
            "artifacts": {XSS: XSS},
        },
    )
    assert created.status_code == 201, created.text
    experiment_id = created.json()["id"]

    await open_view(console, "/console/experiments", "experiments")
    row = page.locator(f'main tbody tr[data-id="{experiment_id}"]')
    assert XSS in await row.inner_text()
    assert await page.locator("main img").count() == 0

    await open_view(console, f"/console/experiments/{experiment_id}", "experiment")
    for name in ("parameters", "metrics", "artifacts"):
        cells = await page.locator(f"main section.kv-{name} tbody td").all_inner_texts()
        assert cells[0] == XSS, name
    assert await page.locator("main section.kv-parameters tbody td").nth(1).inner_text() == XSS
    assert await page.locator('main [data-field="Dataset version"]').inner_text() == XSS
    assert XSS in await page.locator("#edit-parameters").input_value()
    assert await page.locator("main img").count() == 0
    assert await page.locator("img").count() == 0
    await page.wait_for_timeout(300)  # an onerror would have fired by now
    assert dialogs == []


async def _tab_to(page: Page, condition: str, limit: int = 60) -> None:
    """Press Tab until `condition` (JS on `el`, the focused element) holds."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            f"(() => {{ const el = document.activeElement; return {condition}; }})()"
        ):
            return
    pytest.fail(f"Tab never reached an element where {condition}")


async def test_the_keyboard_alone_filters_and_opens_an_experiment(
    console: BrowserPage, demo: Demo
) -> None:
    page = console.page
    await open_view(console, "/console/experiments", "experiments")
    await page.wait_for_function("document.activeElement.tagName === 'H1'")

    await _tab_to(page, "el.id === 'f-git_commit_hash'")
    await page.keyboard.type("9c8b7a6")
    await after_navigation(console, "experiments", lambda: page.keyboard.press("Enter"))
    narrowed = await api_ids(demo.stack.http, {"git_commit_hash": "9c8b7a6"})
    assert 0 < len(narrowed) < len(demo.summary.experiment_ids)
    assert await row_ids(page) == narrowed
    assert "git_commit_hash=9c8b7a6" in page.url

    await page.wait_for_function("document.activeElement.tagName === 'H1'")
    await _tab_to(page, "el.tagName === 'A' && el.closest('tbody') !== null")
    target = await page.evaluate("document.activeElement.getAttribute('href')")
    assert target == f"/console/experiments/{narrowed[0]}"
    await after_navigation(console, "experiment", lambda: page.keyboard.press("Enter"))
    assert page.url == f"{console.origin}{target}"

    # And the edit form is reachable and submits with the keyboard.
    await _tab_to(page, "el.id === 'edit-metrics'")
    await _tab_to(page, "el.tagName === 'BUTTON' && el.textContent === 'Save changes'")
    await page.keyboard.press("Enter")
    await page.locator("main .status").get_by_text("Nothing changed: nothing was sent.").wait_for()


# --- with API_TOKENS ---------------------------------------------------------

WRITER = "console-w.51c0"
READER = "console-r.9e7d"
TOKENS = f"console-writer:{WRITER},console-reader:{READER}:read"


@dataclass
class Guarded:
    http: httpx.AsyncClient
    console: BrowserPage


@pytest.fixture
async def guarded(tmp_path: Path, browser: Browser) -> AsyncIterator[Guarded]:
    """The three processes sharing TOKENS (as API_TOKENS), and a watched page
    on their gateway (no demo data: the tests make what they need)."""
    async with guarded_stack(tmp_path, Tokens(TOKENS)) as (http, _):
        page = await browser.new_page(viewport=DESKTOP)
        watched = BrowserPage(page, str(http.base_url).rstrip("/"))
        yield Guarded(http, watched)
        await page.close()
        watched.assert_clean()


async def _create(http: httpx.AsyncClient) -> str:
    created = await http.post(
        "/api/v1/experiments",
        json={"strategy_id": DEMO_STRATEGY, "metrics": {"oos_sharpe": 1.2}},
        headers={"Authorization": f"Bearer {WRITER}"},
    )
    assert created.status_code == 201, created.text
    experiment_id: str = created.json()["id"]
    return experiment_id


async def _give_token(page: Page, secret: str) -> None:
    dialog = page.locator("#token-dialog")
    await dialog.wait_for(state="visible")
    assert await page.locator("#token-reason").inner_text() != ""
    await page.locator("#token-input").fill(secret)
    await page.locator("#token-input").press("Enter")


async def test_a_401_asks_for_a_token_and_an_edit_names_its_token(guarded: Guarded) -> None:
    console = guarded.console
    console.expected_statuses.add(401)
    page = console.page
    experiment_id = await _create(guarded.http)

    await console.goto("/console/experiments")
    await _give_token(page, WRITER)
    await shown(console, "experiments")
    assert await row_ids(page) == [experiment_id]
    kept = await page.evaluate("sessionStorage.getItem('research-console-token')")
    assert kept == WRITER

    await after_navigation(
        console, "experiment", lambda: page.locator("main tbody td a").first.click()
    )
    await set_metrics(page, {"oos_sharpe": 1.3})
    await page.locator("main .status .notice").wait_for()
    newest = page.locator('main ol.timeline li[data-revision="2"]')
    await newest.wait_for()
    assert await newest.locator(".actor").inner_text() == "console-writer"
    assert await page.locator('main ol.timeline li[data-revision="1"] .actor').inner_text() == (
        "console-writer"
    )


async def test_a_read_only_token_is_refused_with_the_403_message(guarded: Guarded) -> None:
    console = guarded.console
    console.expected_statuses.update({401, 403})
    page = console.page
    experiment_id = await _create(guarded.http)
    path = f"/api/v1/experiments/{experiment_id}"
    read = {"Authorization": f"Bearer {READER}"}
    refused = await guarded.http.patch(path, json={"metrics": {"oos_sharpe": 0.1}}, headers=read)
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert "console-reader" in message

    await console.goto(f"/console/experiments/{experiment_id}")
    await _give_token(page, READER)
    await shown(console, "experiment")
    await set_metrics(page, {"oos_sharpe": 0.5})
    alert = page.locator("main .status p.error")
    await alert.wait_for()
    assert await alert.inner_text() == f"403: {message}"

    await page.get_by_role("button", name="Delete").click()
    await page.locator("main .status p.error").get_by_text("DeleteExperiment").wait_for()
    stored = await guarded.http.get(path, headers=read)
    assert stored.json()["metrics"] == {"oos_sharpe": 1.2}
    assert stored.json()["deleted_at"] is None
    assert stored.json()["revision"] == 1
