"""The console's page tests: the whole backbone for real (gateway, both
services, PostgreSQL, the session's `mlflow server`) with the demo data of
`make demo` loaded, and a headless Chromium on the console."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser

from testbed.mlflow_server import MlflowServer
from tests.fixtures.browser import DESKTOP, BrowserPage
from tests.fixtures.mlflow import Seeded
from tests.fixtures.stack import Stack
from tracking_svc.config import Settings as TrackingSettings

# The demo loader is a script, imported as the script tests import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from demo_data import DemoSummary, load_demo

DEMO_EXPERIMENT = "console-demo"


@dataclass(frozen=True)
class Demo:
    """The stack with the demo data, and what the demo loaded."""

    stack: Stack
    summary: DemoSummary


@pytest.fixture
def stack_tracking_settings(mlflow_server: MlflowServer, gateway_seed: Seeded) -> TrackingSettings:
    """tracking_svc serves the demo's MLflow experiment, as `make demo` does."""
    return TrackingSettings(
        tracking_uri=mlflow_server.url, experiment_name=DEMO_EXPERIMENT, health_interval=0.2
    )


@pytest.fixture
async def demo(chromium: str, stack: Stack) -> Demo:
    """The demo runs in MLflow (logged once per session) and every one of
    them imported into the (emptied) experiments database."""
    summary = await asyncio.to_thread(
        load_demo,
        stack.mlflow.url,
        DEMO_EXPERIMENT,
        f"127.0.0.1:{stack.experiments.port}",
    )
    return Demo(stack, summary)


@pytest.fixture
async def console(browser: Browser, demo: Demo) -> AsyncIterator[BrowserPage]:
    """A page on the console at 1280x800; every test ends by asserting that
    nothing went wrong in it."""
    page = await browser.new_page(viewport=DESKTOP)
    watched = BrowserPage(page, demo.stack.base_url)
    yield watched
    await page.close()
    watched.assert_clean()
