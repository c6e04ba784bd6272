"""Optional TLS: both services serve TLS with a certificate made here, the
gateway's upstream channels and experiments_svc's channel to tracking_svc
verify it against the CA, and plaintext or unverified callers get nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc import aio
from mlflow.tracking import MlflowClient

from gateway.config import Settings as GatewaySettings
from gateway.server import create_server as create_gateway
from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from research_common.config import ConfigError
from research_common.tls import TlsSettings
from tests.certificates import make_certificates
from tests.fixtures.grpc import rpc_error
from tests.fixtures.stack import embedded_services
from tracking_svc.lineage import Lineage, start_run

STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


@dataclass
class TlsStack:
    experiments_port: int
    tracking_port: int
    mlflow_uri: str
    ca: bytes
    tls: TlsSettings  # what a verifying client uses


@pytest.fixture
async def tls_stack(tmp_path: Path) -> AsyncIterator[TlsStack]:
    paths = make_certificates(tmp_path)
    env = {
        "TLS_CERT_FILE": str(paths["cert"]),
        "TLS_KEY_FILE": str(paths["key"]),
        "TLS_CA_FILE": str(paths["ca"]),
    }
    tls = TlsSettings.from_env(env)
    async with embedded_services(tmp_path, tls=tls) as services:
        yield TlsStack(
            services.experiments_port,
            services.tracking_port,
            services.mlflow_uri,
            paths["ca"].read_bytes(),
            tls,
        )


def test_settings_need_cert_and_key_together(tmp_path: Path) -> None:
    paths = make_certificates(tmp_path)
    with pytest.raises(ConfigError, match="TLS_CERT_FILE and TLS_KEY_FILE must be set together"):
        TlsSettings.from_env({"TLS_CERT_FILE": str(paths["cert"])})
    with pytest.raises(ConfigError, match=r"TLS_CA_FILE: cannot read '/no/such\.pem'"):
        TlsSettings.from_env({"TLS_CA_FILE": "/no/such.pem"})
    assert not TlsSettings.from_env({}).serves_tls
    assert TlsSettings.from_env({"TLS_CA_FILE": str(paths["ca"])}).dials_tls


async def test_verified_tls_works_and_plaintext_does_not(tls_stack: TlsStack) -> None:
    address = f"127.0.0.1:{tls_stack.experiments_port}"
    request = pb.CreateExperimentRequest(strategy_id=STRATEGY)
    async with tls_stack.tls.channel(address) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        reply = await stub.CreateExperiment(request, timeout=5)
        assert reply.experiment.strategy_id == STRATEGY
    async with aio.insecure_channel(address) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        error = await rpc_error(stub.CreateExperiment(request, timeout=2))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_import_crosses_services_over_tls(tls_stack: TlsStack) -> None:
    client = MlflowClient(tracking_uri=tls_stack.mlflow_uri)
    experiment = client.get_experiment_by_name("hedge-fund-research")
    assert experiment is not None
    run = start_run(
        client, experiment.experiment_id, Lineage(strategy_id=STRATEGY, run_type="backtest")
    )
    async with tls_stack.tls.channel(f"127.0.0.1:{tls_stack.experiments_port}") as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        reply = await stub.ImportRun(pb.ImportRunRequest(mlflow_run_id=run.info.run_id), timeout=10)
    assert reply.created


async def test_the_gateway_dials_tls_upstreams(tls_stack: TlsStack) -> None:
    plaintext = GatewaySettings(
        experiments_address=f"127.0.0.1:{tls_stack.experiments_port}",
        tracking_address=f"127.0.0.1:{tls_stack.tracking_port}",
        shutdown_grace=1,
    )
    verifying = dataclasses.replace(plaintext, tls=TlsSettings(ca=tls_stack.ca))
    for settings, ready, listed in ((verifying, 200, 200), (plaintext, 503, 503)):
        gateway, port = create_gateway(settings, "127.0.0.1:0")
        await gateway.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.get("/readyz")).status_code == ready
                assert (await http.get("/api/v1/experiments")).status_code == listed
        finally:
            await gateway.stop()
