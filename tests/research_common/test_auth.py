"""API_TOKENS in the gRPC services: calls without or with a wrong bearer token
are UNAUTHENTICATED before any handler runs, health and reflection stay
open, and ImportRun passes the caller's credentials on to tracking_svc."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from research_common.auth import ANONYMOUS, MISSING, WRONG, Tokens
from research_common.config import ConfigError
from research_common.server import GrpcServer
from tests.fixtures.grpc import handled, rpc_error

TOKEN = "s3cret-token.A1"
OTHER = "another~token"
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def test_tokens_from_env() -> None:
    tokens = Tokens.from_env({"API_TOKENS": f" {TOKEN} , ,{OTHER}"})
    assert tokens == Tokens((TOKEN, OTHER))
    assert tokens.required
    assert not Tokens.from_env({}).required
    assert not Tokens.from_env({"API_TOKENS": " , "}).required


def test_a_token_never_appears_in_repr_or_errors() -> None:
    assert TOKEN not in repr(Tokens((TOKEN,)))
    assert repr(Tokens((TOKEN,))) == "Tokens(1 configured)"
    with pytest.raises(ConfigError) as raised:
        Tokens.from_env({"API_TOKENS": "good,bad token"})
    assert str(raised.value) == "API_TOKENS: token #2 has characters a bearer token cannot hold"
    assert "bad token" not in str(raised.value)


@pytest.mark.parametrize(
    ("authorization", "accepted"),
    [
        (None, False),
        ("", False),
        (TOKEN, False),  # no scheme
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),  # the scheme is case-insensitive
        (f"Bearer {OTHER}", True),
        ("Bearer é", False),
    ],
)
def test_identify(authorization: str | None, accepted: bool) -> None:
    assert (Tokens((TOKEN, OTHER)).identify(authorization) is not None) is accepted


def test_no_tokens_accepts_anything() -> None:
    assert Tokens().identify(None) is ANONYMOUS
    assert Tokens().identify("Bearer whatever") is ANONYMOUS


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[GrpcServer]:
    """experiments_svc with API_TOKENS set, pointing ImportRun at a closed port."""
    settings = ExperimentsSettings(
        database_url=f"sqlite:///{tmp_path / 'experiments.db'}",
        tokens=Tokens((TOKEN,)),
        tracking_address="127.0.0.1:1",
        tracking_timeout=1,
    )
    server, _ = await create_experiments(settings, "127.0.0.1:0")
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
async def channel(guarded: GrpcServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{guarded.port}") as grpc_channel:
        yield grpc_channel


def _create(stub: experiments_pb2_grpc.ExperimentServiceStub, token: str | None) -> object:
    metadata = () if token is None else (("authorization", token),)
    return stub.CreateExperiment(
        pb.CreateExperimentRequest(strategy_id=STRATEGY), metadata=metadata
    )


async def test_calls_need_the_token(channel: aio.Channel, caplog: pytest.LogCaptureFixture) -> None:
    stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
    caplog.set_level(logging.INFO)
    missing = await rpc_error(_create(stub, None))
    assert (missing.code(), missing.details()) == (grpc.StatusCode.UNAUTHENTICATED, MISSING)
    wrong = await rpc_error(_create(stub, "Bearer nope"))
    assert (wrong.code(), wrong.details()) == (grpc.StatusCode.UNAUTHENTICATED, WRONG)
    created = await _create(stub, f"Bearer {TOKEN}")  # type: ignore[misc]
    assert created.experiment.strategy_id == STRATEGY
    # Refused calls never reached the handler: exactly one row exists.
    listed = await stub.ListExperiments(
        pb.ListExperimentsRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),)
    )
    assert len(listed.experiments) == 1
    assert TOKEN not in caplog.text
    assert "nope" not in caplog.text


async def test_health_and_reflection_stay_open(channel: aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = [
        answer
        async for answer in stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    ]
    names = {s.name for s in answers[0].list_services_response.service}
    assert "research.experiments.v1.ExperimentService" in names


async def test_unknown_methods_are_refused_without_a_token(channel: aio.Channel) -> None:
    call = channel.unary_unary(
        "/research.experiments.v1.ExperimentService/Nope",
        request_serializer=None,
        response_deserializer=None,
    )
    error = await rpc_error(call(b""))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await rpc_error(call(b"", metadata=(("authorization", f"Bearer {TOKEN}"),)))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def _refused(service: str, method: str) -> float | None:
    """How many calls of `method` were refused for want of a token."""
    return handled(service, method, "UNAUTHENTICATED")


async def test_made_up_method_names_add_no_metric_series(channel: aio.Channel) -> None:
    """Without a token anyone may call any name: they are counted as one
    unknown method, not a series each."""
    service = "research.experiments.v1.ExperimentService"
    names = [f"Made{index}Up" for index in range(5)]
    before = _refused("unknown", "unknown") or 0.0
    for name in names:
        call = channel.unary_unary(f"/{service}/{name}", None, None)
        assert (await rpc_error(call(b""))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert _refused("unknown", "unknown") == before + len(names)
    assert _refused(service, names[0]) is None
    # A method the server has is still counted by its own name.
    known = channel.unary_unary(f"/{service}/GetExperiment", None, None)
    counted = _refused(service, "GetExperiment") or 0.0
    assert (await rpc_error(known(b""))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert _refused(service, "GetExperiment") == counted + 1


async def test_import_passes_the_callers_credentials_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """tracking_svc with the same tokens answers ImportRun's GetRun only
    because experiments_svc forwards the caller's Authorization."""
    from tracking_svc.config import Settings as TrackingSettings
    from tracking_svc.server import create_server as create_tracking

    tracking_settings = TrackingSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        tokens=Tokens((TOKEN,)),
    )
    tracking, tracking_port = await create_tracking(tracking_settings, "127.0.0.1:0")
    await tracking.start()
    settings = ExperimentsSettings(
        database_url=f"sqlite:///{tmp_path / 'experiments.db'}",
        tokens=Tokens((TOKEN,)),
        tracking_address=f"127.0.0.1:{tracking_port}",
    )
    experiments, port = await create_experiments(settings, "127.0.0.1:0")
    await experiments.start()
    try:
        from mlflow.tracking import MlflowClient

        from tracking_svc.lineage import Lineage, start_run

        client = MlflowClient(tracking_uri=tracking_settings.tracking_uri)
        experiment = client.get_experiment_by_name(tracking_settings.experiment_name)
        assert experiment is not None
        run = start_run(
            client, experiment.experiment_id, Lineage(strategy_id=STRATEGY, run_type="training")
        )
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            request = pb.ImportRunRequest(mlflow_run_id=run.info.run_id)
            reply = await stub.ImportRun(
                request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10
            )
            assert reply.created
            assert reply.experiment.mlflow_run_id == run.info.run_id
    finally:
        await experiments.stop(0)
        await tracking.stop(0)


def test_settings_read_api_tokens() -> None:
    from gateway.config import Settings as GatewaySettings
    from tracking_svc.config import Settings as TrackingSettings

    env = {"API_TOKENS": f"{TOKEN},{OTHER}"}
    for settings_class in (ExperimentsSettings, TrackingSettings, GatewaySettings):
        assert settings_class.from_env(env).tokens == Tokens((TOKEN, OTHER))
