"""ListExperiments' page tokens (CONTRACT §10, and §3: a page of large rows
ends early rather than failing): keyset positions, bound to their query,
tamper-evident; `limit` and `skip` keep working."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from experiments_svc.db import create_engine
from experiments_svc.service import PAGE_BYTES
from experiments_svc.store import ExperimentStore
from research.experiments.v1 import experiments_pb2 as pb
from tests.experiments_svc.conftest import OTHER_STRATEGY, STRATEGY
from tests.experiments_svc.records import stored_record
from tests.fixtures.grpc import assert_invalid, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


async def create(stub: ExperimentServiceAsyncStub, **fields: object) -> str:
    fields.setdefault("strategy_id", STRATEGY)
    request = pb.CreateExperimentRequest(**fields)  # type: ignore[arg-type]
    return (await stub.CreateExperiment(request)).experiment.id


async def pages(
    stub: ExperimentServiceAsyncStub, **query: object
) -> tuple[list[list[str]], list[str]]:
    """Every page's ids, and the tokens that led to them."""
    found: list[list[str]] = []
    tokens: list[str] = []
    token = ""
    while True:
        request = pb.ListExperimentsRequest(page_token=token, **query)  # type: ignore[arg-type]
        page = await stub.ListExperiments(request)
        found.append([experiment.id for experiment in page.experiments])
        token = page.next_page_token
        if not token:
            return found, tokens
        tokens.append(token)


async def test_pages_follow_one_another_to_the_end(stub: ExperimentServiceAsyncStub) -> None:
    ids = [await create(stub) for _ in range(7)]
    found, tokens = await pages(stub, page_size=3)
    assert found == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    assert len(tokens) == 2
    assert all(
        set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for token in tokens
    )  # URL-safe as it is


async def test_an_exact_last_page_has_no_token(stub: ExperimentServiceAsyncStub) -> None:
    for _ in range(4):
        await create(stub)
    found, _ = await pages(stub, limit=2)
    assert [len(page) for page in found] == [2, 2]


async def test_rows_created_while_paging_shift_nothing(stub: ExperimentServiceAsyncStub) -> None:
    ids = [await create(stub) for _ in range(5)]
    first = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=2))
    for _ in range(3):  # newer rows land before the first page, not in the next
        await create(stub)
    second = await stub.ListExperiments(
        pb.ListExperimentsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [e.id for e in second.experiments] == [ids[2], ids[1]]


async def test_equal_creation_times_page_by_id(
    stub: ExperimentServiceAsyncStub, database_url: str
) -> None:
    engine = create_engine(database_url, timeout=5)
    store = ExperimentStore(engine)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ids = sorted((uuid.uuid4() for _ in range(5)), reverse=True)
    try:
        for experiment_id in ids:
            await store.insert(
                stored_record(
                    id=experiment_id,
                    strategy_id=uuid.UUID(STRATEGY),
                    created_at=moment,
                    updated_at=moment,
                )
            )
    finally:
        await engine.dispose()
    found, _ = await pages(stub, page_size=2)
    assert found == [[str(i) for i in ids[0:2]], [str(i) for i in ids[2:4]], [str(ids[4])]]


async def test_filters_hold_across_pages(stub: ExperimentServiceAsyncStub) -> None:
    mine = [await create(stub, dataset_version="ds1") for _ in range(3)]
    await create(stub, dataset_version="ds2")
    found, _ = await pages(stub, page_size=2, dataset_version="ds1")
    assert found == [mine[:0:-1], mine[:1]]


async def test_a_token_of_another_query_is_refused(stub: ExperimentServiceAsyncStub) -> None:
    for _ in range(3):
        await create(stub)
    first = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=1))
    request = pb.ListExperimentsRequest(
        page_size=1, page_token=first.next_page_token, strategy_id=OTHER_STRATEGY
    )
    error = await rpc_error(stub.ListExperiments(request))
    assert_invalid(error, "page_token", "page_token belongs to another query")
    # The page size may change between pages.
    second = await stub.ListExperiments(
        pb.ListExperimentsRequest(page_size=5, page_token=first.next_page_token)
    )
    assert len(second.experiments) == 2


@pytest.mark.parametrize("how", ["flipped", "truncated", "garbage", "not-ascii", "huge"])
async def test_an_altered_or_malformed_token_is_refused(
    stub: ExperimentServiceAsyncStub, how: str
) -> None:
    for _ in range(2):
        await create(stub)
    token = (await stub.ListExperiments(pb.ListExperimentsRequest(page_size=1))).next_page_token
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[10] ^= 1
    altered = {
        "flipped": base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="),
        "truncated": token[:-6],
        "garbage": "%%%",
        "not-ascii": "é" * 10,
        "huge": "A" * 5000,
    }[how]
    request = pb.ListExperimentsRequest(page_size=1, page_token=altered)
    error = await rpc_error(stub.ListExperiments(request))
    assert_invalid(error, "page_token", "page_token ")


async def test_skip_with_a_token_is_refused(stub: ExperimentServiceAsyncStub) -> None:
    for _ in range(2):
        await create(stub)
    token = (await stub.ListExperiments(pb.ListExperimentsRequest(page_size=1))).next_page_token
    error = await rpc_error(
        stub.ListExperiments(pb.ListExperimentsRequest(skip=1, page_token=token))
    )
    assert_invalid(error, "skip", "cannot be combined with page_token")


async def test_skip_still_skips_and_links_on(stub: ExperimentServiceAsyncStub) -> None:
    ids = [await create(stub) for _ in range(5)]
    page = await stub.ListExperiments(pb.ListExperimentsRequest(skip=1, limit=2))
    assert [e.id for e in page.experiments] == [ids[3], ids[2]]
    rest = await stub.ListExperiments(pb.ListExperimentsRequest(page_token=page.next_page_token))
    assert [e.id for e in rest.experiments] == [ids[1], ids[0]]


async def test_limit_and_page_size_must_agree(stub: ExperimentServiceAsyncStub) -> None:
    error = await rpc_error(stub.ListExperiments(pb.ListExperimentsRequest(limit=2, page_size=3)))
    assert_invalid(error, "page_size", "and limit name the same thing")
    error = await rpc_error(stub.ListExperiments(pb.ListExperimentsRequest(page_size=1001)))
    assert_invalid(error, "page_size", "must be between 1 and 1000, got 1001")


async def test_a_page_of_large_rows_ends_early_and_goes_on(
    stub: ExperimentServiceAsyncStub,
) -> None:
    # Rows of ~60 kB: 100 of them would be ~6 MB, beyond one gRPC message.
    blob = "x" * 60_000
    ids = [await create(stub, parameters=struct({"blob": blob, "n": n})) for n in range(70)]
    first = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=100))
    per_page = PAGE_BYTES // 60_000
    assert per_page - 2 <= len(first.experiments) <= per_page
    assert first.ByteSize() <= PAGE_BYTES + 1024
    assert first.next_page_token
    rest = await stub.ListExperiments(
        pb.ListExperimentsRequest(page_size=100, page_token=first.next_page_token)
    )
    assert not rest.next_page_token
    seen = [e.id for e in [*first.experiments, *rest.experiments]]
    assert seen == ids[::-1]
    assert all(e.parameters.fields["blob"].string_value == blob for e in rest.experiments)
