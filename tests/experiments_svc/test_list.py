"""ListExperiments: filters, newest-first order and paging bounds (CONTRACT §5)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from experiments_svc.db import create_engine
from experiments_svc.store import ExperimentStore
from research.experiments.v1 import experiments_pb2 as pb
from tests.experiments_svc.conftest import OTHER_STRATEGY, STRATEGY
from tests.experiments_svc.records import stored_record
from tests.fixtures.grpc import assert_invalid, rpc_error

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


async def create(stub: ExperimentServiceAsyncStub, **fields: str) -> str:
    fields.setdefault("strategy_id", STRATEGY)
    response = await stub.CreateExperiment(pb.CreateExperimentRequest(**fields))  # type: ignore[arg-type]
    return response.experiment.id


async def listed(stub: ExperimentServiceAsyncStub, **query: object) -> list[str]:
    response = await stub.ListExperiments(pb.ListExperimentsRequest(**query))  # type: ignore[arg-type]
    return [experiment.id for experiment in response.experiments]


async def test_newest_first(stub: ExperimentServiceAsyncStub) -> None:
    ids = [await create(stub) for _ in range(4)]
    assert await listed(stub) == ids[::-1]


async def test_equal_creation_times_order_by_id_descending(
    stub: ExperimentServiceAsyncStub, database_url: str
) -> None:
    # Rows written with the same created_at (as a bulk load would) still
    # page stably: the id breaks the tie.
    engine = create_engine(database_url, timeout=5)
    store = ExperimentStore(engine)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(5)]
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
    assert await listed(stub) == [str(i) for i in sorted(ids, reverse=True)]


async def test_filters_by_strategy(stub: ExperimentServiceAsyncStub) -> None:
    mine = [await create(stub) for _ in range(2)]
    await create(stub, strategy_id=OTHER_STRATEGY)
    assert await listed(stub, strategy_id=STRATEGY) == mine[::-1]
    assert await listed(stub, strategy_id=str(uuid.uuid4())) == []


@pytest.mark.parametrize(
    "field",
    ["mlflow_run_id", "git_commit_hash", "dataset_version", "feature_version", "model_version"],
)
async def test_filters_by_each_lineage_field(stub: ExperimentServiceAsyncStub, field: str) -> None:
    wanted = await create(stub, **{field: "v-42"})
    await create(stub, **{field: "v-43"})
    await create(stub)
    assert await listed(stub, **{field: "v-42"}) == [wanted]
    assert await listed(stub, **{field: "v-4"}) == []  # exact match, not prefix


async def test_filters_combine(stub: ExperimentServiceAsyncStub) -> None:
    both = await create(stub, dataset_version="ds1", git_commit_hash="c1")
    await create(stub, dataset_version="ds1", git_commit_hash="c2")
    await create(stub, strategy_id=OTHER_STRATEGY, dataset_version="ds1", git_commit_hash="c1")
    query = {"strategy_id": STRATEGY, "dataset_version": "ds1", "git_commit_hash": "c1"}
    assert await listed(stub, **query) == [both]


async def test_paging_is_stable_and_complete(stub: ExperimentServiceAsyncStub) -> None:
    ids = [await create(stub) for _ in range(7)]
    pages = [await listed(stub, skip=skip, limit=3) for skip in (0, 3, 6, 9)]
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1], []]


async def test_default_limit_is_100_and_1000_is_allowed(stub: ExperimentServiceAsyncStub) -> None:
    await asyncio.gather(*(create(stub) for _ in range(101)))
    assert len(await listed(stub)) == 100
    assert len(await listed(stub, limit=1000)) == 101
    assert len(await listed(stub, limit=1)) == 1


@pytest.mark.parametrize(
    ("query", "field", "fragment"),
    [
        ({"limit": 0}, "limit", "limit must be between 1 and 1000, got 0"),
        ({"limit": 1001}, "limit", "limit must be between 1 and 1000, got 1001"),
        ({"limit": -5}, "limit", "got -5"),
        ({"skip": -1}, "skip", "skip must be 0 or more, got -1"),
        ({"strategy_id": "abc"}, "strategy_id", "strategy_id must be a UUID"),
        ({"strategy_id": ""}, "strategy_id", "strategy_id is required"),
        ({"dataset_version": ""}, "dataset_version", "must not be empty"),
        ({"model_version": "m" * 256}, "model_version", "at most 255 characters"),
        ({"mlflow_run_id": "a\x00b"}, "mlflow_run_id", "NUL"),
    ],
)
async def test_bad_queries_are_invalid(
    stub: ExperimentServiceAsyncStub, query: dict[str, object], field: str, fragment: str
) -> None:
    error = await rpc_error(stub.ListExperiments(pb.ListExperimentsRequest(**query)))  # type: ignore[arg-type]
    assert_invalid(error, field, fragment)
