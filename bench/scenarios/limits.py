"""2. Closeness to the limit.

- The gateway's own rate: GET /api/v1/experiments/{id} transcoded onto an
  upstream that does no work (`bench.grpc_stub`), against a bare ASGI
  responder on the same server library (`bench.bare_asgi`) answering the
  very bytes the gateway answers. Target: >= 50 %.
- experiments_svc's gRPC rate (GetExperiment on PostgreSQL) against a bare
  grpc.aio echo, with the same client (`bench.grpc_load`), whose own
  ceiling is the echo figure.
"""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from google.protobuf import struct_pb2, timestamp_pb2

from bench.alternate import alternate
from bench.context import Context
from bench.database import asyncpg_dsn, bench_database, fetch_ids, load_rows
from bench.grpc_load import run_grpc_load
from bench.grpc_stub import ECHO, GET_EXPERIMENT, write_replies
from bench.processes import BenchProcess, spawn, stopping
from bench.report import Row, ratio_text
from bench.wrk import Request, run_wrk, write_requests
from research.experiments.v1 import experiments_pb2
from testbed.ports import free_port

TARGET = 0.5
ROWS = 10_000


def _fixed_reply() -> bytes:
    """A GetExperimentResponse the size of a real one."""
    now = timestamp_pb2.Timestamp()
    now.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    parameters, metrics = struct_pb2.Struct(), struct_pb2.Struct()
    parameters.update({"max_depth": 6, "learning_rate": 0.05, "seed": 42})
    metrics.update({"oos_sharpe": 1.42, "mse": 0.0123})
    experiment = experiments_pb2.Experiment(
        id=str(uuid.uuid4()),
        strategy_id=str(uuid.uuid4()),
        dataset_version="ds-0001",
        feature_version="fv-1",
        model_version="mv-1",
        git_commit_hash="3f9a1c2b7d4e",
        parameters=parameters,
        metrics=metrics,
        artifacts={"model": "s3://research-artifacts/models/1/model.pkl"},
        created_at=now,
        updated_at=now,
    )
    return experiments_pb2.GetExperimentResponse(experiment=experiment).SerializeToString()


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body


async def gateway_on_stub(
    replies: Mapping[str, bytes],
    work: Path,
    started: list[BenchProcess],
    *,
    database_url: str | None = None,
    name: str = "",
) -> tuple[str, list[BenchProcess]]:
    """The gateway in front of `bench.grpc_stub` answering each gRPC method
    of `replies` with its fixed (serialized) answer, after reading the rows
    the request names from `database_url` when one is given: its URL, and
    the gateway and stub processes (appended to `started` too, to be stopped
    with it). `name` tells apart the processes (and logs) of two such pairs."""
    folder = work / f"replies{name}"
    write_replies(folder, replies)
    stub_address = f"127.0.0.1:{free_port()}"
    gateway_address = f"127.0.0.1:{free_port()}"
    environment = {"STUB_ADDR": stub_address, "STUB_REPLY_DIR": str(folder)}
    if database_url is not None:
        environment["STUB_DATABASE_URL"] = asyncpg_dsn(database_url)
    stub = await spawn(f"grpc_stub{name}", ["-m", "bench.grpc_stub"], environment, work)
    started.append(stub)
    await stub.wait_grpc(stub_address)
    gateway = await spawn(
        f"gateway_on_stub{name}",
        ["-m", "gateway"],
        {"GATEWAY_ADDR": gateway_address, "EXPERIMENTS_ADDR": stub_address},
        work,
    )
    started.append(gateway)
    await gateway.wait_http(f"http://{gateway_address}/healthz")
    return f"http://{gateway_address}", [gateway, stub]


async def _gateway_vs_bare(context: Context) -> None:
    options = context.options
    bare_address = f"127.0.0.1:{free_port()}"
    path = f"/api/v1/experiments/{uuid.uuid4()}"
    requests = write_requests([Request("GET", path)], context.work)
    async with stopping([]) as started:
        gateway_url, _ = await gateway_on_stub(
            {GET_EXPERIMENT: _fixed_reply()}, context.work, started
        )
        body = await asyncio.to_thread(_fetch, f"{gateway_url}{path}")
        body_file = context.work / "body.json"
        body_file.write_bytes(body)
        bare = await spawn(
            "bare_asgi",
            ["-m", "bench.bare_asgi"],
            {"BARE_ADDR": bare_address, "BARE_BODY_FILE": str(body_file)},
            context.work,
        )
        started.append(bare)
        await bare.wait_http(f"http://{bare_address}/")
        measure = partial(
            run_wrk,
            requests_file=requests,
            seconds=options.seconds,
            connections=options.connections,
        )
        rounds = await alternate(
            partial(measure, gateway_url),
            partial(measure, f"http://{bare_address}"),
            options.rounds,
        )
    share = rounds.ratio(lambda r: r.rate)
    ours, bare_rps = rounds.summaries(lambda r: r.rate)
    context.report.figures["gateway_vs_bare_asgi"] = {
        "gateway_rps": ours,
        "bare_asgi_rps": bare_rps,
        "ratio": share,
        "body_bytes": len(body),
    }
    context.report.add(
        Row(
            "2 limits",
            f"gateway GET experiment (no-op upstream) {ours['median']:.0f} vs bare ASGI "
            f"{bare_rps['median']:.0f} req/s",
            ratio_text(share),
            f">= {TARGET:.0%}",
            share["median"] >= TARGET,
        )
    )


async def _service_vs_echo(context: Context) -> None:
    options = context.options
    stub_address = f"127.0.0.1:{free_port()}"
    service_address = f"127.0.0.1:{free_port()}"
    async with bench_database("bench_limits") as url, stopping([]) as started:
        await load_rows(url, 1, ROWS)
        ids = await fetch_ids(url, 1000)
        service = await spawn(
            "experiments_svc_limits",
            ["-m", "experiments_svc"],
            {"EXPERIMENTS_ADDR": service_address, "DATABASE_URL": url},
            context.work,
        )
        started.append(service)
        stub = await spawn("grpc_echo", ["-m", "bench.grpc_stub"], {"STUB_ADDR": stub_address},
                           context.work)  # fmt: skip
        started.append(stub)
        await service.wait_grpc(service_address)
        await stub.wait_grpc(stub_address)
        requests = [
            experiments_pb2.GetExperimentRequest(experiment_id=i).SerializeToString() for i in ids
        ]
        measure = partial(
            run_grpc_load,
            requests=requests,
            seconds=options.seconds,
            concurrency=options.connections,
        )
        rounds = await alternate(
            partial(measure, service_address, GET_EXPERIMENT),
            partial(measure, stub_address, ECHO),
            options.rounds,
        )
    share = rounds.ratio(lambda r: r.rate)
    ours, echo = rounds.summaries(lambda r: r.rate)
    errors = sum(r.errors for r in rounds.ours)
    context.report.figures["experiments_svc_vs_grpc_echo"] = {
        "experiments_svc_rps": ours,
        "echo_rps (client ceiling)": echo,
        "ratio": share,
        "errors": errors,
        "p50_ms": [r.p50_ms for r in rounds.ours],
    }
    context.report.add(
        Row(
            "2 limits",
            f"experiments_svc GetExperiment {ours['median']:.0f} vs bare grpc.aio echo "
            f"{echo['median']:.0f} calls/s (echo = client ceiling)",
            ratio_text(share) + (f", {errors} errors" if errors else ""),
        )
    )


async def run(context: Context) -> None:
    await _gateway_vs_bare(context)
    await _service_vs_echo(context)
