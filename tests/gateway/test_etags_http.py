"""Entity tags, conditional requests, soft delete's undelete and the
revision routes over real HTTP, end to end (CONTRACT §9): gateway →
experiments_svc on PostgreSQL (→ tracking_svc → MLflow for ImportRun).

The gateway maps the headers from proto options (`research.http.v1`):
`ETag` from the response's `experiment.etag`, `If-Match` onto the request's
`etag`, `If-None-Match` answered 304; the service decides whether a tag
matches (ABORTED, 409, when it does not)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.fixtures.stack import ALLOWED_ORIGIN, Stack

COLLECTION = "/api/v1/experiments"
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
ABORTED = 10
FAILED_PRECONDITION = 9
IF_MATCH_FORM = (
    "If-Match must be * or one strong entity tag in double quotes, as the ETag header gives "
    'it (If-Match: "<etag>")'
)


def path(experiment_id: str) -> str:
    return f"{COLLECTION}/{experiment_id}"


def quoted(etag: str) -> str:
    return f'"{etag}"'


def tagged(response: httpx.Response) -> dict[str, Any]:
    """The experiment answered, after checking that its `ETag` is the
    quoted `etag` of the body."""
    body: dict[str, Any] = response.json()
    assert body["etag"], body
    assert response.headers["etag"] == quoted(body["etag"])
    return body


def assert_error(response: httpx.Response, status: int, code: int, field: str | None = None) -> str:
    """The contract's error body (CONTRACT §4); its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["code", "message", "detail", "details"]
    assert body["code"] == code
    assert body["detail"] == body["message"]
    if field is not None:
        violation = {"field": field, "description": body["message"]}
        assert body["details"] == [{"@type": BAD_REQUEST, "field_violations": [violation]}]
    message: str = body["message"]
    return message


async def create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    fields.setdefault("strategy_id", STRATEGY)
    response = await http.post(COLLECTION, json=fields)
    assert response.status_code == 201, response.text
    return tagged(response)


async def current(http: httpx.AsyncClient, experiment_id: str, **params: str) -> dict[str, Any]:
    response = await http.get(path(experiment_id), params=params)
    assert response.status_code == 200, response.text
    return tagged(response)


# --- ETag ---------------------------------------------------------------------


async def test_every_answer_with_one_experiment_carries_its_etag(stack: Stack) -> None:
    http = stack.http
    created = await create(http, metrics={"sharpe": 1.0})
    assert created["revision"] == 1
    assert created["deleted_at"] is None
    fetched = await current(http, created["id"])
    assert fetched == created
    head = await http.head(path(created["id"]))
    assert head.status_code == 200
    assert head.headers["etag"] == quoted(created["etag"])
    assert head.content == b""

    patched = await http.patch(path(created["id"]), json={"metrics": {"sharpe": 1.1}})
    assert patched.status_code == 200, patched.text
    after = tagged(patched)
    assert after["revision"] == 2
    assert after["etag"] != created["etag"]  # a new revision, a new tag
    assert (await current(http, created["id"]))["etag"] == after["etag"]

    # A list carries many experiments: no ETag. A 204 carries none.
    listing = await http.get(COLLECTION)
    assert listing.status_code == 200
    assert "etag" not in listing.headers
    deleted = await http.delete(path(created["id"]))
    assert deleted.status_code == 204
    assert "etag" not in deleted.headers

    undeleted = await http.post(f"{path(created['id'])}:undelete")
    assert undeleted.status_code == 200, undeleted.text
    back = tagged(undeleted)
    assert back["revision"] == 4
    assert back["deleted_at"] is None
    assert back["etag"] not in (created["etag"], after["etag"])


async def test_import_carries_the_etag_new_or_found(stack: Stack) -> None:
    run = {"mlflow_run_id": stack.seeded.training_a}
    made = await stack.http.post(f"{COLLECTION}/import", json=run)
    assert made.status_code == 201, made.text
    first = tagged(made)
    found = await stack.http.post(f"{COLLECTION}/import", json=run)
    assert found.status_code == 200, found.text
    assert tagged(found)["etag"] == first["etag"]


# --- If-None-Match --------------------------------------------------------------


async def test_get_with_a_matching_if_none_match_is_304_with_no_body(stack: Stack) -> None:
    http = stack.http
    created = await create(http)
    tag = quoted(created["etag"])
    for given in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        for method in ("GET", "HEAD"):
            response = await http.request(
                method, path(created["id"]), headers={"If-None-Match": given}
            )
            assert response.status_code == 304, (given, method, response.text)
            assert response.content == b""
            assert response.headers["etag"] == tag
            assert "content-type" not in response.headers
    other = await http.get(path(created["id"]), headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert tagged(other) == created
    # Once it changes, the old tag gets the new experiment.
    await http.patch(path(created["id"]), json={"metrics": {"n": 1}})
    stale = await http.get(path(created["id"]), headers={"If-None-Match": tag})
    assert stale.status_code == 200
    assert tagged(stale)["metrics"] == {"n": 1}


async def test_a_malformed_if_none_match_is_400_naming_it(stack: Stack) -> None:
    created = await create(stack.http)
    response = await stack.http.get(path(created["id"]), headers={"If-None-Match": created["etag"]})
    message = assert_error(response, 400, 3, "If-None-Match")
    assert message.startswith("If-None-Match must be * or entity tags in double quotes")


# --- If-Match -----------------------------------------------------------------------


async def test_a_patch_with_a_stale_if_match_is_409_and_writes_nothing(stack: Stack) -> None:
    http = stack.http
    created = await create(http, metrics={"sharpe": 1.0})
    first = await http.patch(
        path(created["id"]),
        json={"metrics": {"sharpe": 2.0}},
        headers={"If-Match": quoted(created["etag"])},
    )
    assert first.status_code == 200, first.text
    second = tagged(first)
    assert second["revision"] == 2
    # A second writer still holding the first revision's tag.
    stale = await http.patch(
        path(created["id"]),
        json={"metrics": {"sharpe": 3.0}},
        headers={"If-Match": quoted(created["etag"])},
    )
    message = assert_error(stale, 409, ABORTED)
    assert "revision 2" in message, message
    assert "etag" not in stale.headers
    now = await current(http, created["id"])
    assert now == second
    revisions = await http.get(f"{path(created['id'])}/revisions")
    assert [r["revision"] for r in revisions.json()["revisions"]] == [2, 1]
    # With the current tag it is written.
    fresh = await http.patch(
        path(created["id"]),
        json={"metrics": {"sharpe": 3.0}},
        headers={"If-Match": quoted(second["etag"])},
    )
    assert fresh.status_code == 200, fresh.text
    assert tagged(fresh)["revision"] == 3


RACERS = 20


@pytest.mark.postgres
async def test_of_twenty_racing_patches_with_one_if_match_exactly_one_is_written(
    stack: Stack,
) -> None:
    """Twenty PATCHes at once, each with the first revision's tag: the row
    lock lets one through (200, revision 2); the nineteen others find the
    tag stale (409 naming revision 2 and its tag), and write nothing."""
    http = stack.http
    created = await create(http, metrics={"sharpe": 1.0})
    history = f"{path(created['id'])}/revisions"
    assert len((await http.get(history)).json()["revisions"]) == 1
    condition = {"If-Match": quoted(created["etag"])}
    responses = await asyncio.gather(
        *(
            http.patch(path(created["id"]), json={"metrics": {"sharpe": n}}, headers=condition)
            for n in range(RACERS)
        )
    )
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [200] + [409] * (RACERS - 1), statuses
    won = tagged(responses[statuses.index(200)])
    assert won["revision"] == 2
    stale = (
        f"etag {created['etag']!r} is not the experiment's: it is at revision 2 "
        f'(etag "{won["etag"]}"); nothing was written. Read it again, then retry with its etag'
    )
    for lost in responses:
        if lost.status_code == 409:
            assert assert_error(lost, 409, ABORTED) == stale
            assert "etag" not in lost.headers
    assert await current(http, created["id"]) == won
    listing = await http.get(history)
    assert listing.status_code == 200, listing.text
    revisions = listing.json()["revisions"]  # one more than before the race
    assert [(r["revision"], r["action"]) for r in revisions] == [(2, "update"), (1, "create")]
    assert revisions[0]["experiment"] == won


async def test_if_match_star_matches_any_live_experiment(stack: Stack) -> None:
    http = stack.http
    created = await create(http)
    patched = await http.patch(
        path(created["id"]), json={"mlflow_run_id": "run-star"}, headers={"If-Match": "*"}
    )
    assert patched.status_code == 200, patched.text
    assert tagged(patched)["revision"] == 2
    deleted = await http.delete(path(created["id"]), headers={"If-Match": "*"})
    assert deleted.status_code == 204, deleted.text
    # A deleted experiment is no live one: 404, as without the header.
    again = await http.patch(
        path(created["id"]), json={"mlflow_run_id": "x"}, headers={"If-Match": "*"}
    )
    assert_error(again, 404, 5)


async def test_a_delete_with_if_match(stack: Stack) -> None:
    http = stack.http
    created = await create(http)
    patched = tagged(await http.patch(path(created["id"]), json={"metrics": {"n": 1}}))
    stale = await http.delete(path(created["id"]), headers={"If-Match": quoted(created["etag"])})
    message = assert_error(stale, 409, ABORTED)
    assert "revision 2" in message, message
    assert await current(http, created["id"]) == patched  # still there, unchanged
    deleted = await http.delete(path(created["id"]), headers={"If-Match": quoted(patched["etag"])})
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert_error(await http.get(path(created["id"])), 404, 5)
    kept = await current(http, created["id"], show_deleted="true")
    assert kept["deleted_at"] is not None
    assert kept["revision"] == 3


async def test_a_malformed_if_match_is_400_naming_it_and_writes_nothing(stack: Stack) -> None:
    http = stack.http
    created = await create(http)
    etag = created["etag"]
    for given, problem in [
        (etag, None),  # no quotes
        (f"W/{quoted(etag)}", "a weak tag (W/) never matches: If-Match compares strongly"),
        (f'{quoted(etag)}, "other"', "it lists 2 tags"),
        ("", "it is empty"),
    ]:
        for response in (
            await http.patch(
                path(created["id"]), json={"metrics": {}}, headers={"If-Match": given}
            ),
            await http.delete(path(created["id"]), headers={"If-Match": given}),
        ):
            message = assert_error(response, 400, 3, "If-Match")
            reason = f": {problem}" if problem else ""
            assert message == f"{IF_MATCH_FORM}{reason}; got {given!r}"
    assert await current(http, created["id"]) == created


async def test_etag_is_no_query_parameter(stack: Stack) -> None:
    created = await create(stack.http)
    response = await stack.http.delete(f"{path(created['id'])}?etag={created['etag']}")
    message = assert_error(response, 400, 3, "etag")
    assert message == "etag is taken from the If-Match header, not the query string"
    await current(stack.http, created["id"])


# --- undelete -------------------------------------------------------------------------


async def test_undelete_with_no_body_or_an_empty_object(stack: Stack) -> None:
    http = stack.http
    created = await create(http)
    undelete = f"{path(created['id'])}:undelete"
    requests: list[dict[str, Any]] = [
        {},
        {"content": b"", "headers": {"Content-Type": "application/json"}},
        {"json": {}},
    ]
    for request in requests:
        assert (await http.delete(path(created["id"]))).status_code == 204
        response = await http.post(undelete, **request)
        assert response.status_code == 200, (request, response.text)
        back = tagged(response)
        assert back["id"] == created["id"]
        assert back["deleted_at"] is None
    assert (await current(http, created["id"]))["revision"] == 7
    # Live: nothing to undelete.
    live = await http.post(undelete)
    assert_error(live, 400, FAILED_PRECONDITION)


async def test_undelete_errors(stack: Stack) -> None:
    http = stack.http
    assert_error(await http.post(f"{path(UNKNOWN_ID)}:undelete"), 404, 5)
    assert_error(await http.post(f"{path('nope')}:undelete"), 400, 3, "experiment_id")
    created = await create(http)
    await http.delete(path(created["id"]))
    unknown = await http.post(f"{path(created['id'])}:undelete", json={"force": True})
    assert_error(unknown, 400, 3, "force")
    # Only POST has the verb; GET reads the ':' as part of the id.
    wrong = await http.get(f"{path(created['id'])}:undelete")
    assert_error(wrong, 400, 3, "experiment_id")
    # The other methods of /{experiment_id} are untouched by the verb's route.
    assert_error(await http.get(path(created["id"])), 404, 5)
    assert (await current(http, created["id"], show_deleted="true"))["deleted_at"] is not None


# --- revisions --------------------------------------------------------------------------


async def test_the_revision_routes(stack: Stack) -> None:
    http = stack.http
    created = await create(http)
    await http.patch(path(created["id"]), json={"metrics": {"n": 1}})
    await http.delete(path(created["id"]))
    listing = await http.get(f"{path(created['id'])}/revisions")
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert [(r["revision"], r["action"]) for r in body["revisions"]] == [
        (3, "delete"),
        (2, "update"),
        (1, "create"),
    ]
    assert body["next_page_token"] is None
    assert "link" not in listing.headers
    paged = await http.get(f"{path(created['id'])}/revisions?page_size=2")
    assert [r["revision"] for r in paged.json()["revisions"]] == [3, 2]
    token = paged.json()["next_page_token"]
    assert token
    link = paged.headers["link"]
    assert link.endswith('>; rel="next"')
    rest = await http.get(link[1 : link.index(">")])
    assert rest.status_code == 200, rest.text
    assert [r["revision"] for r in rest.json()["revisions"]] == [1]

    one = await http.get(f"{path(created['id'])}/revisions/2")
    assert one.status_code == 200, one.text
    revision = one.json()
    assert revision["revision"] == 2
    assert revision["action"] == "update"
    assert revision["experiment"]["revision"] == 2
    assert revision["experiment"]["metrics"] == {"n": 1}
    assert "etag" not in one.headers  # the route has no etag_field
    assert_error(await http.get(f"{path(created['id'])}/revisions/4"), 404, 5)


async def test_a_revision_that_is_no_positive_integer_is_400_naming_it(stack: Stack) -> None:
    created = await create(stack.http)
    for given in ("abc", "1.5", "1e2", "%2B1", str(2**63), "0", "-1"):
        response = await stack.http.get(f"{path(created['id'])}/revisions/{given}")
        message = assert_error(response, 400, 3, "revision")
        assert message.startswith("revision must be"), (given, message)


# --- CORS ----------------------------------------------------------------------------------


async def test_a_browser_may_send_the_conditions_and_read_the_etag(stack: Stack) -> None:
    created = await create(stack.http)
    preflight = await stack.http.options(
        path(created["id"]),
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "content-type, if-match, if-none-match",
        },
    )
    assert preflight.status_code == 204, preflight.text
    allowed = preflight.headers["access-control-allow-headers"].split(", ")
    assert {"if-match", "if-none-match"} <= set(allowed)
    read = await stack.http.get(path(created["id"]), headers={"Origin": ALLOWED_ORIGIN})
    assert "etag" in read.headers["access-control-expose-headers"].split(", ")
    not_modified = await stack.http.get(
        path(created["id"]),
        headers={"Origin": ALLOWED_ORIGIN, "If-None-Match": quoted(created["etag"])},
    )
    assert not_modified.status_code == 304
    assert not_modified.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
