"""The stand-in upstream of scenario 10's floors (bench.grpc_stub): it
answers each method's fixed reply, and with a database it first reads the
very rows experiments_svc answers with."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from grpc import aio

from bench.database import asyncpg_dsn
from bench.grpc_stub import (
    COMPARE_EXPERIMENTS,
    ECHO,
    GET_EXPERIMENT,
    LIST_EXPERIMENTS,
    create_stub,
    read_replies,
    write_replies,
)
from experiments_svc.config import Settings
from experiments_svc.server import create_server
from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from tests.fixtures.postgres import truncate_experiments

pytestmark = pytest.mark.postgres

STRATEGY = "5e1f0c2a-7b3d-4c8e-9f60-1a2b3c4d5e6f"
OTHER = "0a9b8c7d-6e5f-4a3b-8c1d-2e3f4a5b6c7d"


def test_replies_are_read_back_by_method(tmp_path: Path) -> None:
    replies = {GET_EXPERIMENT: b"\x0a\x01a", COMPARE_EXPERIMENTS: b""}
    write_replies(tmp_path / "replies", replies)
    assert read_replies(tmp_path / "replies") == replies


@pytest.fixture
async def experiments(migrated_postgres: str) -> tuple[str, list[str]]:
    """Five experiments of STRATEGY (one deleted) and one of OTHER, written
    by experiments_svc itself; the database URL and STRATEGY's live ids,
    newest first."""
    await truncate_experiments(migrated_postgres)
    server, port = await create_server(Settings(database_url=migrated_postgres), "127.0.0.1:0")
    await server.start()
    ids = []
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = experiments_pb2_grpc.ExperimentServiceStub(channel)
            for strategy in [STRATEGY] * 5 + [OTHER]:
                created = await service.CreateExperiment(
                    experiments_pb2.CreateExperimentRequest(strategy_id=strategy)
                )
                if strategy == STRATEGY:
                    ids.append(created.experiment.id)
            await service.DeleteExperiment(
                experiments_pb2.DeleteExperimentRequest(experiment_id=ids.pop(2))
            )
    finally:
        await server.stop(0)
    return migrated_postgres, ids[::-1]


async def test_each_method_reads_the_rows_it_names_then_answers_its_reply(
    experiments: tuple[str, list[str]],
) -> None:
    url, newest_first = experiments
    replies = {GET_EXPERIMENT: b"get", LIST_EXPERIMENTS: b"list", COMPARE_EXPERIMENTS: b"compare"}
    requests = {
        GET_EXPERIMENT: experiments_pb2.GetExperimentRequest(experiment_id=newest_first[1]),
        LIST_EXPERIMENTS: experiments_pb2.ListExperimentsRequest(strategy_id=STRATEGY, limit=3),
        COMPARE_EXPERIMENTS: experiments_pb2.CompareExperimentsRequest(
            experiment_ids=newest_first[:2]
        ),
    }
    read: list[tuple[str, list[str]]] = []
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=2)
    fetch = pool.fetch

    async def recording_fetch(statement: str, *arguments: object) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await fetch(statement, *arguments)
        read.append((statement, [str(row["id"]) for row in rows]))
        return rows

    server, port = await create_stub("127.0.0.1:0", replies, recording_fetch)
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method, request in requests.items():
                call = channel.unary_unary(method, None, None)
                assert await call(request.SerializeToString(), timeout=5) == replies[method]
            echo = channel.unary_unary(ECHO, None, None)
            assert await echo(b"back", timeout=5) == b"back"
    finally:
        await server.stop(0)
        await pool.close()
    got = [ids for _, ids in read]
    assert got[0] == [newest_first[1]]
    assert got[1] == newest_first[:3]  # newest first, the deleted one left out
    assert sorted(got[2]) == sorted(newest_first[:2])
    assert len(read) == 3  # the echo reads nothing


async def test_without_a_database_the_methods_only_answer(tmp_path: Path) -> None:
    server, port = await create_stub("127.0.0.1:0", {GET_EXPERIMENT: b"fixed"})
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(GET_EXPERIMENT, None, None)
            request = experiments_pb2.GetExperimentRequest(experiment_id=str(uuid.uuid4()))
            assert await asyncio.wait_for(call(request.SerializeToString()), 5) == b"fixed"
    finally:
        await server.stop(0)
