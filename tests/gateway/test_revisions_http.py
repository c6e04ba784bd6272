"""Who changed a record (CONTRACT §9 with §1's named tokens), over HTTP
through the real gateway and both services, experiments_svc on PostgreSQL:
each revision's `actor` is the name of the token that made the change, and
a read-only token's PATCH is refused before it can add one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from research_common.auth import Tokens
from tests.fixtures.stack import guarded_stack

pytestmark = pytest.mark.postgres

TOKENS = "alice:s3cret,bob:other:read"
ALICE = {"Authorization": "Bearer s3cret"}
BOB = {"Authorization": "Bearer other"}
COLLECTION = "/api/v1/experiments"
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
PERMISSION_DENIED = 7


@pytest.fixture
async def http(tmp_path: Path, experiments_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway of all three processes with TOKENS, experiments_svc on
    the session's PostgreSQL database (emptied)."""
    async with guarded_stack(tmp_path, Tokens(TOKENS), database_url=experiments_database) as (
        client,
        _,
    ):
        yield client


async def history(http: httpx.AsyncClient, experiment_id: str) -> list[dict[str, Any]]:
    """Every revision of the experiment, newest first (read by bob: reading
    is all a read token may do, and enough)."""
    response = await http.get(f"{COLLECTION}/{experiment_id}/revisions", headers=BOB)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_page_token"] is None
    revisions: list[dict[str, Any]] = body["revisions"]
    return revisions


async def test_a_patch_records_the_named_tokens_actor_and_a_read_token_adds_nothing(
    http: httpx.AsyncClient,
) -> None:
    created = await http.post(
        COLLECTION, json={"strategy_id": STRATEGY, "metrics": {"sharpe": 1.0}}, headers=ALICE
    )
    assert created.status_code == 201, created.text
    experiment = created.json()
    url = f"{COLLECTION}/{experiment['id']}"
    patched = await http.patch(url, json={"metrics": {"sharpe": 1.5}}, headers=ALICE)
    assert patched.status_code == 200, patched.text
    assert patched.json()["revision"] == 2

    revisions = await history(http, experiment["id"])
    assert [(r["revision"], r["action"], r["actor"]) for r in revisions] == [
        (2, "update", "alice"),
        (1, "create", "alice"),
    ]
    assert revisions[0]["changed_fields"] == ["metrics"]
    assert revisions[0]["experiment"] == patched.json()
    one = await http.get(f"{url}/revisions/2", headers=BOB)
    assert one.status_code == 200, one.text
    assert one.json() == revisions[0]

    # bob's token is read-only: 403 naming bob and the method, nothing written.
    refused = await http.patch(url, json={"metrics": {"sharpe": 9.0}}, headers=BOB)
    message = (
        "token 'bob' is read-only and cannot call "
        "research.experiments.v1.ExperimentService/UpdateExperiment"
    )
    assert refused.status_code == 403, refused.text
    assert refused.json() == {
        "code": PERMISSION_DENIED,
        "message": message,
        "detail": message,
        "details": [],
    }
    assert await history(http, experiment["id"]) == revisions
    now = await http.get(url, headers=BOB)
    assert now.status_code == 200, now.text
    assert now.json() == patched.json()
