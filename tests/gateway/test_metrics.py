"""Prometheus metrics: the gateway's `GET /metrics` counts requests by route
template (never by raw path) and status, with a latency histogram; each gRPC
service serves its call counts on METRICS_ADDR."""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path

import httpx
from grpc import aio

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from testbed.ports import free_port
from tests.fixtures.stack import Stack

STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if match and match.group(1) == name:
            given = ",".join(sorted(match.group(2).split(",")))
            if given == wanted:
                return float(match.group(3))
    return 0.0


async def _metrics(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template_and_status(stack: Stack) -> None:
    before = await _metrics(stack.http)
    created = await stack.http.post("/api/v1/experiments", json={"strategy_id": STRATEGY})
    assert created.status_code == 201
    experiment_id = created.json()["id"]
    assert (await stack.http.get(f"/api/v1/experiments/{experiment_id}")).status_code == 200
    assert (await stack.http.get("/api/v1/experiments/not-a-uuid")).status_code == 400
    assert (await stack.http.get("/api/v1/nowhere")).status_code == 404
    after = await _metrics(stack.http)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    total = "gateway_http_requests_total"
    assert grew(total, route="/api/v1/experiments", method="POST", status="201") == 1
    item = "/api/v1/experiments/{experiment_id}"
    assert grew(total, route=item, method="GET", status="200") == 1
    assert grew(total, route=item, method="GET", status="400") == 1
    assert grew(total, route="unmatched", method="GET", status="404") == 1
    # No series is labelled with a raw path (one per id would never end).
    assert experiment_id not in after
    histogram = "gateway_http_request_duration_seconds_count"
    assert grew(histogram, route=item, method="GET") == 2


async def test_a_service_serves_its_call_counts(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = ExperimentsSettings(
        database_url=f"sqlite:///{tmp_path / 'experiments.db'}", metrics_address=address
    )
    server, port = await create_experiments(settings, "127.0.0.1:0")
    await server.start()
    try:

        def scrape() -> str:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
                return str(response.read().decode())

        labels = {
            "grpc_service": "research.experiments.v1.ExperimentService",
            "grpc_method": "CreateExperiment",
            "grpc_code": "OK",
        }
        before = sample(scrape(), "grpc_server_handled_total", **labels)
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
            await stub.CreateExperiment(pb.CreateExperimentRequest(strategy_id=STRATEGY))
        assert sample(scrape(), "grpc_server_handled_total", **labels) - before == 2
    finally:
        await server.stop(0)
    # Stopped with the server: the port is free again.
    host, _, metrics_port = address.rpartition(":")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        probe.bind((host, int(metrics_port)))
        probe.listen()
