"""`GET /docs` in a real headless Chromium: Swagger UI loads from the gateway
alone (no other host is asked for anything), lists every route, and runs a
call through "Try it out" against the real backbone. A screenshot of the
page after the call is kept in `test-artifacts/docs-page.png`.

The browser is Debian's `chromium` package (not Playwright's own download);
without it the test is skipped locally and fails in CI."""

from __future__ import annotations

import pytest
from playwright.async_api import ConsoleMessage, Request, async_playwright

from tests.fixtures.browser import ARTIFACTS, CHROMIUM_ARGS
from tests.fixtures.stack import Stack
from tests.gateway.openapi_checks import CONTRACT_ROUTES

SCREENSHOT = ARTIFACTS / "docs-page.png"
# Swagger UI's element for an operation: operations-<tag>-<operationId>.
OPERATION = "#operations-TrackingService-TrackingService_ListExperiments"


async def test_the_docs_page_lists_the_routes_and_runs_a_call(
    chromium: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere: list[str] = []
    errors: list[str] = []

    def on_request(request: Request) -> None:
        if not request.url.startswith((stack.base_url + "/", "data:")):
            elsewhere.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(20_000)
            page.on("request", on_request)
            page.on("console", on_console)
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{stack.base_url}/docs")

            operation = page.locator(OPERATION)
            await operation.wait_for()
            assert await page.locator(".opblock").count() == len(CONTRACT_ROUTES)
            summary = operation.locator(".opblock-summary")
            assert await summary.locator(".opblock-summary-method").inner_text() == "GET"
            path = await summary.locator(".opblock-summary-path").inner_text()
            assert path.replace("\u200b", "") == "/api/v1/tracking/experiments"

            await summary.locator(".opblock-summary-control").click()
            await operation.get_by_role("button", name="Try it out").click()
            await operation.get_by_role("button", name="Execute").click()
            live = operation.locator(".live-responses-table .response-col_status")
            await live.filter(has_text="200").wait_for()
            body = await operation.locator(".live-responses-table .microlight").first.inner_text()
            assert stack.seeded.experiment_name in body

            # The route list down to the live response (the documented error
            # answers below it would make the picture ten times as tall).
            table = operation.locator(".live-responses-table")
            box = await table.bounding_box()
            assert box is not None
            scrolled = await page.evaluate("window.scrollY")
            bottom = box["y"] + scrolled + box["height"] + 16
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(
                path=str(SCREENSHOT),
                full_page=True,
                clip={"x": 0, "y": 0, "width": 1280, "height": bottom},
            )
        finally:
            await browser.close()
    with capsys.disabled():
        print(f"\nscreenshot of /docs after the call: {SCREENSHOT}")
    assert elsewhere == [], "the page asked another host"
    assert errors == [], "the page logged errors"
