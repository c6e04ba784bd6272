"""Concurrency through the gateway: 50 creates at once, 50 PATCHes of one
row at once, 8 racing imports of one MLflow run. No row lost or doubled,
the final state one of the written ones, updated_at consistent with the
order the row lock serialised the writes in."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest

from tests.fixtures.stack import Stack
from tests.reliability.conftest import Record

pytestmark = pytest.mark.postgres

COLLECTION = "/api/v1/experiments"
CREATES = 50
PATCHES = 50
IMPORTS = 8


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_50_concurrent_creates_are_50_rows(stack: Stack, figures: Record) -> None:
    strategy = str(uuid.uuid4())
    bodies = [{"strategy_id": strategy, "parameters": {"i": i}} for i in range(CREATES)]
    responses = await asyncio.gather(*(stack.http.post(COLLECTION, json=b) for b in bodies))
    assert [r.status_code for r in responses] == [201] * CREATES
    created = {r.json()["id"]: r.json() for r in responses}
    listed = await stack.http.get(COLLECTION, params={"strategy_id": strategy, "limit": 1000})
    rows = listed.json()
    figures(requests=CREATES, created=len(created), listed=len(rows))
    assert len(created) == CREATES  # no id handed out twice
    assert len(rows) == CREATES
    assert {row["id"] for row in rows} == set(created)
    assert sorted(row["parameters"]["i"] for row in rows) == list(range(CREATES))
    for row in rows:
        assert row == created[row["id"]]


async def test_50_concurrent_patches_of_one_row(stack: Stack, figures: Record) -> None:
    made = await stack.http.post(COLLECTION, json={"strategy_id": str(uuid.uuid4())})
    row = made.json()
    url = f"{COLLECTION}/{row['id']}"
    writes = [{"metrics": {"writer": i}, "parameters": {"writer": i}} for i in range(PATCHES)]
    responses = await asyncio.gather(*(stack.http.patch(url, json=w) for w in writes))
    assert [r.status_code for r in responses] == [200] * PATCHES
    answers = [r.json() for r in responses]
    final = (await stack.http.get(url)).json()
    stamps = [moment(a["updated_at"]) for a in answers]
    figures(requests=PATCHES, distinct_updated_at=len(set(stamps)))
    # Each answer is the row right after that write: its own values, both
    # fields from the same write (never a mix).
    for write, answer in zip(writes, answers, strict=True):
        assert answer["metrics"] == write["metrics"]
        assert answer["parameters"] == write["parameters"]
    # Serialised by the row lock: every write moved updated_at forward, so
    # the stamps are distinct, all after created_at, and the row holds the
    # write with the latest stamp.
    assert len(set(stamps)) == PATCHES
    assert min(stamps) > moment(row["created_at"])
    last = answers[stamps.index(max(stamps))]
    assert final == last
    assert final["created_at"] == row["created_at"]
    assert final["metrics"]["writer"] == final["parameters"]["writer"]


async def test_8_racing_imports_of_one_run(stack: Stack, figures: Record) -> None:
    run_id = stack.seeded.training_a
    body = {"mlflow_run_id": run_id}
    responses = await asyncio.gather(
        *(stack.http.post(f"{COLLECTION}/import", json=body) for _ in range(IMPORTS))
    )
    statuses = sorted(r.status_code for r in responses)
    listed = await stack.http.get(COLLECTION, params={"mlflow_run_id": run_id})
    figures(requests=IMPORTS, statuses=statuses, rows=len(listed.json()))
    assert statuses == [200] * (IMPORTS - 1) + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(r.json() == responses[0].json() for r in responses)
    assert [row["id"] for row in listed.json()] == [responses[0].json()["id"]]
