"""Upstream targets (CONTRACT §13): what EXPERIMENTS_ADDR / TRACKING_ADDR may
name as a client dials them, and the service config every client channel
carries."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc import aio

from experiments_svc.config import Settings as ExperimentsSettings
from gateway.config import Settings as GatewaySettings
from research.experiments.v1 import experiments_pb2
from research.tracking.v1 import tracking_pb2
from research_common.auth import read_only_methods
from research_common.config import ConfigError
from research_common.constants import RETRY_PUSHBACK_HEADER
from research_common.errors import NotFound, ServiceError, Unavailable
from research_common.interceptor import ServiceInterceptor
from research_common.targets import RETRY_POLICY, channel_options, parse_target, service_config

EXPERIMENTS = experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"].full_name
TRACKING = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051"),
        ("experiments_svc:50051", "experiments_svc:50051"),
        ("  localhost:50051 ", "localhost:50051"),
        (
            "dns:///experiments-svc.research.svc.cluster.local:50051",
            "dns:///experiments-svc.research.svc.cluster.local:50051",
        ),
        ("dns://10.0.0.10/experiments:50051", "dns://10.0.0.10/experiments:50051"),
        ("dns:experiments:50051", "dns:experiments:50051"),
        ("127.0.0.1:50051,127.0.0.1:50061", "ipv4:127.0.0.1:50051,127.0.0.1:50061"),
        ("127.0.0.1:50051, localhost:50061", "ipv4:127.0.0.1:50051,127.0.0.1:50061"),
        ("[::1]:50051,[::1]:50061", "ipv6:[::1]:50051,[::1]:50061"),
        ("ipv4:10.0.0.1:50051,10.0.0.2:50051", "ipv4:10.0.0.1:50051,10.0.0.2:50051"),
        ("unix:/run/experiments.sock", "unix:/run/experiments.sock"),
    ],
)
def test_targets_a_client_may_dial(raw: str, target: str) -> None:
    assert parse_target("EXPERIMENTS_ADDR", raw) == target


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (",", "EXPERIMENTS_ADDR names no address, got ','"),
        (" , ", "EXPERIMENTS_ADDR names no address, got ' , '"),
        (
            "127.0.0.1:50051,",
            "EXPERIMENTS_ADDR has an empty entry in its list, got '127.0.0.1:50051,'",
        ),
        ("127.0.0.1", "EXPERIMENTS_ADDR must be host:port, got '127.0.0.1'"),
        ("127.0.0.1:50051,127.0.0.1", "EXPERIMENTS_ADDR must be host:port, got '127.0.0.1'"),
        ("127.0.0.1:99999", "EXPERIMENTS_ADDR must be host:port, got '127.0.0.1:99999'"),
        (
            "a:50051,b:50051",
            "EXPERIMENTS_ADDR: a list takes IP addresses, and 'a' is a name; use dns:///a:50051 "
            "to reach every address a name resolves to (got 'a:50051,b:50051')",
        ),
        ("127.0.0.1:1,[::1]:2", "EXPERIMENTS_ADDR mixes IPv4 and IPv6 addresses; list one family"),
        ("dns:", "EXPERIMENTS_ADDR names no host after dns:, got 'dns:'"),
        ("dns:///", "EXPERIMENTS_ADDR names no host after dns:, got 'dns:///'"),
        ("dns://server", "EXPERIMENTS_ADDR must be dns:///host:port, got 'dns://server'"),
        ("dns:///experiments", "EXPERIMENTS_ADDR must be host:port, got 'experiments'"),
        (
            "ipv4:10.0.0.1:1,name:2",
            "EXPERIMENTS_ADDR: a list takes IP addresses, and 'name' is a name",
        ),
        ("unix:", "EXPERIMENTS_ADDR names no socket after unix:, got 'unix:'"),
    ],
)
def test_unparsable_targets_name_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_target("EXPERIMENTS_ADDR", raw)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_the_gateway_and_experiments_svc_read_targets() -> None:
    gateway = GatewaySettings.from_env(
        {"EXPERIMENTS_ADDR": "127.0.0.1:1,127.0.0.1:2", "TRACKING_ADDR": "dns:///tracking:50052"}
    )
    assert gateway.experiments_address == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert gateway.tracking_address == "dns:///tracking:50052"
    experiments = ExperimentsSettings.from_env({"TRACKING_ADDR": "127.0.0.1:1,127.0.0.1:2"})
    assert experiments.tracking_address == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ConfigError, match=r"^TRACKING_ADDR names no address"):
        ExperimentsSettings.from_env({"TRACKING_ADDR": ","})


def test_a_service_still_listens_on_one_address() -> None:
    # EXPERIMENTS_ADDR is where experiments_svc listens: one host:port.
    with pytest.raises(ConfigError) as raised:
        ExperimentsSettings.from_env({"EXPERIMENTS_ADDR": "127.0.0.1:1,127.0.0.1:2"})
    assert str(raised.value) == (
        "EXPERIMENTS_ADDR must be one host:port, got '127.0.0.1:1,127.0.0.1:2'"
    )


def test_the_service_config_retries_exactly_the_methods_that_change_nothing() -> None:
    config = service_config([EXPERIMENTS, TRACKING])
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    [method_config] = config["methodConfig"]
    assert method_config["retryPolicy"] == RETRY_POLICY
    assert RETRY_POLICY["retryableStatusCodes"] == ["UNAVAILABLE"]
    named = {f"/{name['service']}/{name['method']}" for name in method_config["name"]}
    expected = read_only_methods([EXPERIMENTS, TRACKING]) | {"/grpc.health.v1.Health/Check"}
    assert named == expected
    # The declaration the read-only tokens use: reads in, writes out.
    assert f"/{EXPERIMENTS}/GetExperiment" in named
    assert f"/{EXPERIMENTS}/CompareExperiments" in named
    for write in ("CreateExperiment", "UpdateExperiment", "DeleteExperiment", "ImportRun"):
        assert f"/{EXPERIMENTS}/{write}" not in named
    assert f"/{TRACKING}/GetRun" in named


def test_channel_options_carry_the_config_and_turn_retries_on() -> None:
    options = dict(channel_options([TRACKING]))
    assert json.loads(options["grpc.service_config"]) == service_config([TRACKING])
    assert options["grpc.enable_retries"] == 1
    assert options["grpc.service_config_disable_resolution"] == 1


class _Answering:
    """A generic handler for GetExperiment that raises `error` once per
    call and counts the calls."""

    def __init__(self, error: ServiceError | None) -> None:
        self.error = error
        self.calls = 0

    def handler(self) -> grpc.GenericRpcHandler[bytes, bytes]:
        async def get(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
            self.calls += 1
            if self.error is not None:
                raise self.error
            return b""

        method = grpc.unary_unary_rpc_method_handler(get)
        return grpc.method_handlers_generic_handler(EXPERIMENTS, {"GetExperiment": method})


@pytest.mark.parametrize(
    "error",
    [Unavailable("the database is unavailable"), NotFound("no such experiment")],
    ids=["unavailable", "not-found"],
)
async def test_a_services_own_errors_are_not_retried(error: ServiceError) -> None:
    # The service's own UNAVAILABLE (its store is down) carries a negative
    # retry pushback: it would be the same on every replica.
    code = error.code
    answering = _Answering(error)
    server = aio.server(interceptors=[ServiceInterceptor()])
    server.add_generic_rpc_handlers((answering.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        target = f"ipv4:127.0.0.1:{port}"
        async with aio.insecure_channel(target, options=channel_options([EXPERIMENTS])) as channel:
            call = channel.unary_unary(f"/{EXPERIMENTS}/GetExperiment", None, None)
            with pytest.raises(aio.AioRpcError) as raised:
                await call(b"", timeout=5)
        assert raised.value.code() == code
        assert answering.calls == 1
        trailers = str(raised.value.trailing_metadata())
        assert (RETRY_PUSHBACK_HEADER in trailers) is (code == grpc.StatusCode.UNAVAILABLE)
    finally:
        await server.stop(None)


async def test_an_unavailable_without_pushback_is_retried_on_reads_only() -> None:
    # What a replica that goes away looks like to the policy: UNAVAILABLE
    # with no pushback (here a bare handler, no interceptor).
    answering = _Answering(None)

    async def unavailable(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        answering.calls += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
        return b""

    method = grpc.unary_unary_rpc_method_handler(unavailable)
    handler = grpc.method_handlers_generic_handler(
        EXPERIMENTS, {"GetExperiment": method, "CreateExperiment": method}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        target = f"127.0.0.1:{port}"
        async with aio.insecure_channel(target, options=channel_options([EXPERIMENTS])) as channel:
            for name, attempts in (
                ("GetExperiment", RETRY_POLICY["maxAttempts"]),
                ("CreateExperiment", 1),
            ):
                answering.calls = 0
                with pytest.raises(aio.AioRpcError):
                    await channel.unary_unary(f"/{EXPERIMENTS}/{name}", None, None)(b"", timeout=5)
                assert answering.calls == attempts, name
    finally:
        await server.stop(None)
