"""Figures of the fault tests (request counts, statuses, recovery times),
kept per test and written to test-artifacts/reliability.json at the end of
the session, where RELIABILITY.md's table is read from."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability.json"

Record = Callable[..., None]


@pytest.fixture(scope="session")
def _all_figures() -> Iterator[dict[str, dict[str, Any]]]:
    collected: dict[str, dict[str, Any]] = {}
    yield collected
    if collected:
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        previous: dict[str, Any] = {}
        if ARTIFACT.exists():
            # Keep the figures of tests this session did not run.
            previous = json.loads(ARTIFACT.read_text() or "{}")
        previous.update(collected)
        ARTIFACT.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def figures(request: pytest.FixtureRequest, _all_figures: dict[str, dict[str, Any]]) -> Record:
    """`figures(requests=..., statuses=...)` records this test's figures."""

    def record(**values: Any) -> None:
        _all_figures.setdefault(request.node.name, {}).update(values)

    return record
