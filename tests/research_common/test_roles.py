"""Who calls, and what a read-only token may do (CONTRACT §1): the three
forms of an API_TOKENS entry and the bad ones (one-line errors that never
show a secret), the name in ACTOR while a call is handled and on its log
line, and `:read` tokens refused by the services themselves on every method
the protos do not declare NO_SIDE_EFFECTS, before any handler runs."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc import aio
from mlflow.tracking import MlflowClient

from experiments_svc.config import Settings as ExperimentsSettings
from experiments_svc.server import create_server as create_experiments
from research.experiments.v1 import experiments_pb2 as pb
from research.experiments.v1 import experiments_pb2_grpc
from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from research_common.auth import (
    ACTOR,
    ANONYMOUS,
    Identity,
    Token,
    Tokens,
    parse_tokens,
    read_only_methods,
)
from research_common.config import ConfigError
from research_common.errors import ServiceError
from research_common.logging import JsonFormatter, TextFormatter
from research_common.server import GrpcServer, build_server
from research_common.settings import ServiceSettings
from tests.fixtures.grpc import handled, rpc_error, struct
from tracking_svc.config import Settings as TrackingSettings
from tracking_svc.lineage import Lineage, start_run
from tracking_svc.server import create_server as create_tracking

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

WRITER = "w-secret.9f2c"
READER = "r-secret.7ab1"
BARE = "bare-secret~3d"
TOKENS = f"ci-writer:{WRITER}, ci-reader:{READER}:read ,{BARE}"
SECRETS = (WRITER, READER, BARE)
STRATEGY = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
EXPERIMENTS = "research.experiments.v1.ExperimentService"
TRACKING = "research.tracking.v1.TrackingService"
WRITING = ("CreateExperiment", "UpdateExperiment", "DeleteExperiment", "UndeleteExperiment")


def _bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def _refused(method: str) -> str:
    return f"token 'ci-reader' is read-only and cannot call {EXPERIMENTS}/{method}"


# --- API_TOKENS entries ---------------------------------------------------------------


def test_the_three_forms_of_an_entry() -> None:
    tokens = Tokens.from_env({"API_TOKENS": TOKENS})
    assert tokens.required
    assert tokens.identify(f"Bearer {WRITER}") == Identity("ci-writer", read_only=False)
    assert tokens.identify(f"Bearer {READER}") == Identity("ci-reader", read_only=True)
    # A bare secret is named by its position among the entries.
    assert tokens.identify(f"bearer {BARE}") == Identity("token-3", read_only=False)
    assert tokens.identify("Bearer ci-writer") is None  # a name is no secret
    assert tokens.identify(f"Bearer {WRITER}:x") is None
    assert tokens == Tokens((f"ci-writer:{WRITER}", f"ci-reader:{READER}:read", BARE))
    assert Tokens(TOKENS) == tokens  # the whole text, as from_env reads it


def test_a_bare_secret_is_named_by_its_position_among_the_entries() -> None:
    # Blank entries are skipped and not counted, as before.
    tokens = Tokens(" , first,, n:second, third")
    assert tokens.identify("Bearer first") == Identity("token-1")
    assert tokens.identify("Bearer second") == Identity("n")
    assert tokens.identify("Bearer third") == Identity("token-3")


def test_no_tokens_is_anonymous() -> None:
    assert Tokens().identify(None) is ANONYMOUS
    assert Identity(None, read_only=False) == ANONYMOUS


def test_names_may_be_64_characters_of_a_safe_set() -> None:
    name = "A-z_0.9" + "x" * 57
    assert len(name) == 64
    assert Tokens((f"{name}:s",)).identify("Bearer s") == Identity(name)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "ok,name:SECRETX:write",
            "API_TOKENS: token #2 has a third part other than 'read';"
            " write secret, name:secret or name:secret:read",
        ),
        (
            "name:SECRETX:",
            "API_TOKENS: token #1 has a third part other than 'read';"
            " write secret, name:secret or name:secret:read",
        ),
        (
            "name:SECRETX:read:more",
            "API_TOKENS: token #1 has too many ':' parts;"
            " write secret, name:secret or name:secret:read",
        ),
        (
            ":SECRETX",
            "API_TOKENS: token #1 needs a name of 1 to 64 letters, digits, '_', '.' or '-'",
        ),
        (
            "bad name:SECRETX",
            "API_TOKENS: token #1 needs a name of 1 to 64 letters, digits, '_', '.' or '-'",
        ),
        (
            "na/me:SECRETX:read",
            "API_TOKENS: token #1 needs a name of 1 to 64 letters, digits, '_', '.' or '-'",
        ),
        (
            "x" * 65 + ":SECRETX",
            "API_TOKENS: token #1 needs a name of 1 to 64 letters, digits, '_', '.' or '-'",
        ),
        (
            "a,name:",
            "API_TOKENS: token #2 has no secret; write secret, name:secret or name:secret:read",
        ),
        ("name:SECRET X", "API_TOKENS: token #1 has characters a bearer token cannot hold"),
        ("name:SECRETé:read", "API_TOKENS: token #1 has characters a bearer token cannot hold"),
        (
            "a:SECRETX,b:other,a:SECRETY",
            "API_TOKENS: token #3 has the same name as token #1; each token needs its own",
        ),
        # A bare secret's own name counts too.
        (
            "token-2:SECRETX,SECRETY",
            "API_TOKENS: token #2 has the same name as token #1; each token needs its own",
        ),
        ("a:SECRETX,b:SECRETX:read", "API_TOKENS: token #2 has the same secret as token #1"),
    ],
)
def test_a_malformed_entry_is_one_line_that_never_shows_a_secret(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Tokens.from_env({"API_TOKENS": raw})
    assert str(raised.value) == message
    assert "\n" not in str(raised.value)
    assert "SECRET" not in str(raised.value)


def test_a_tokens_repr_shows_no_secret() -> None:
    tokens = Tokens(TOKENS)
    assert repr(tokens) == "Tokens(3 configured)"
    (token,) = parse_tokens([f"ci-reader:{READER}:read"])
    assert token == Token("ci-reader", READER, read_only=True)
    assert READER not in repr(token)
    assert token.identity == Identity("ci-reader", read_only=True)


def test_what_changes_nothing_comes_from_the_protos() -> None:
    reads = read_only_methods([EXPERIMENTS, TRACKING])
    experiments = {
        f"/{EXPERIMENTS}/{name}"
        for name in (
            "ListExperiments",
            "GetExperiment",
            "CompareExperiments",
            "ListExperimentRevisions",
            "GetExperimentRevision",
        )
    }
    service = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"]
    tracking = {f"/{TRACKING}/{method.name}" for method in service.methods}
    assert reads == experiments | tracking
    # A service the descriptor pool does not know declares nothing.
    assert read_only_methods(["test.Unknown"]) == frozenset()


# --- the interceptor, around handlers that report what they saw ----------------------


@dataclass
class _Seen:
    actors: list[str | None]


def _reporting(seen: _Seen) -> Any:
    async def handle(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        seen.actors.append(ACTOR.get())
        return b""

    return grpc.unary_unary_rpc_method_handler(handle)


@pytest.fixture
def seen() -> _Seen:
    return _Seen([])


async def _server(tokens: Tokens, seen: _Seen) -> GrpcServer:
    """A server for TrackingService's name whose ListRuns (declared
    NO_SIDE_EFFECTS) and Write (declared nowhere) record ACTOR."""

    def register(server: aio.Server) -> None:
        handlers = {"ListRuns": _reporting(seen), "Write": _reporting(seen)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(TRACKING, handlers),))

    async def probe() -> None:
        pass

    def translate(error: BaseException) -> ServiceError | None:
        return None

    built = build_server(
        ServiceSettings(address="127.0.0.1:0", health_interval=60, tokens=tokens),
        address="127.0.0.1:0",
        service_names=[TRACKING],
        register=register,
        probe=probe,
        probe_timeout=1,
        translate=translate,
    )
    await built.start()
    return built


async def test_actor_is_the_tokens_name_while_a_call_is_handled(seen: _Seen) -> None:
    server = await _server(Tokens(TOKENS), seen)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            list_runs = channel.unary_unary(f"/{TRACKING}/ListRuns", None, None)
            write = channel.unary_unary(f"/{TRACKING}/Write", None, None)
            for secret in SECRETS:
                await list_runs(b"", metadata=_bearer(secret), timeout=5)
            await write(b"", metadata=_bearer(WRITER), timeout=5)
            refused = await rpc_error(write(b"", metadata=_bearer(READER), timeout=5))
    finally:
        await server.stop(0)
    assert seen.actors == ["ci-writer", "ci-reader", "token-3", "ci-writer"]
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == f"token 'ci-reader' is read-only and cannot call {TRACKING}/Write"
    assert ACTOR.get() is None  # set for the call only


async def test_actor_is_none_without_tokens(seen: _Seen) -> None:
    server = await _server(Tokens(), seen)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await channel.unary_unary(f"/{TRACKING}/ListRuns", None, None)(b"", timeout=5)
            await channel.unary_unary(f"/{TRACKING}/Write", None, None)(b"", timeout=5)
    finally:
        await server.stop(0)
    assert seen.actors == [None, None]


async def test_a_read_token_is_refused_on_unknown_methods_too(seen: _Seen) -> None:
    server = await _server(Tokens(TOKENS), seen)
    counted = handled("unknown", "unknown", "PERMISSION_DENIED") or 0.0
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            nope = channel.unary_unary(f"/{TRACKING}/Nope", None, None)
            refused = await rpc_error(nope(b"", metadata=_bearer(READER), timeout=5))
            unknown = await rpc_error(nope(b"", metadata=_bearer(WRITER), timeout=5))
    finally:
        await server.stop(0)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert unknown.code() == grpc.StatusCode.UNIMPLEMENTED
    assert seen.actors == []
    # Counted as a method the server does not have, not by the made-up name.
    assert handled(TRACKING, "Nope", "PERMISSION_DENIED") is None
    assert handled("unknown", "unknown", "PERMISSION_DENIED") == counted + 1


# --- the real services ----------------------------------------------------------------


@dataclass
class _Services:
    experiments: ExperimentServiceAsyncStub
    tracking: TrackingServiceAsyncStub
    mlflow: MlflowClient
    mlflow_experiment_id: str


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[_Services]:
    """experiments_svc and tracking_svc (MLflow in SQLite), both with TOKENS."""
    tokens = Tokens(TOKENS)
    tracking_settings = TrackingSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        tokens=tokens,
    )
    tracking, tracking_port = await create_tracking(tracking_settings, "127.0.0.1:0")
    await tracking.start()
    experiments, port = await create_experiments(
        ExperimentsSettings(
            database_url=f"sqlite:///{tmp_path / 'experiments.db'}",
            tokens=tokens,
            tracking_address=f"127.0.0.1:{tracking_port}",
        ),
        "127.0.0.1:0",
    )
    await experiments.start()
    client = MlflowClient(tracking_uri=tracking_settings.tracking_uri)
    experiment = client.get_experiment_by_name(tracking_settings.experiment_name)
    assert experiment is not None
    try:
        async with (
            aio.insecure_channel(f"127.0.0.1:{port}") as experiments_channel,
            aio.insecure_channel(f"127.0.0.1:{tracking_port}") as tracking_channel,
        ):
            yield _Services(
                experiments_pb2_grpc.ExperimentServiceStub(experiments_channel),
                tracking_pb2_grpc.TrackingServiceStub(tracking_channel),
                client,
                experiment.experiment_id,
            )
    finally:
        await experiments.stop(0)
        await tracking.stop(0)


def _run(services: _Services) -> str:
    """A new MLflow run that ImportRun can record."""
    run = start_run(
        services.mlflow,
        services.mlflow_experiment_id,
        Lineage(strategy_id=STRATEGY, run_type="training"),
    )
    return str(run.info.run_id)


async def test_a_read_token_may_not_call_any_writing_method(services: _Services) -> None:
    stub = services.experiments
    writer, reader = _bearer(WRITER), _bearer(READER)
    created = await stub.CreateExperiment(
        pb.CreateExperimentRequest(strategy_id=STRATEGY), metadata=writer, timeout=10
    )
    experiment_id = created.experiment.id
    run_id = _run(services)
    calls: dict[str, Any] = {
        "CreateExperiment": stub.CreateExperiment(
            pb.CreateExperimentRequest(strategy_id=STRATEGY), metadata=reader, timeout=10
        ),
        "UpdateExperiment": stub.UpdateExperiment(
            pb.UpdateExperimentRequest(
                experiment_id=experiment_id, experiment=pb.Experiment(metrics=struct({"x": 1}))
            ),
            metadata=reader,
            timeout=10,
        ),
        "DeleteExperiment": stub.DeleteExperiment(
            pb.DeleteExperimentRequest(experiment_id=experiment_id), metadata=reader, timeout=10
        ),
        "UndeleteExperiment": stub.UndeleteExperiment(
            pb.UndeleteExperimentRequest(experiment_id=experiment_id), metadata=reader, timeout=10
        ),
        "ImportRun": stub.ImportRun(
            pb.ImportRunRequest(mlflow_run_id=run_id), metadata=reader, timeout=10
        ),
    }
    assert set(calls) == {*WRITING, "ImportRun"}
    for method, call in calls.items():
        error = await rpc_error(call)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            _refused(method),
        ), method
    # Nothing was written: the one experiment, as it was created.
    listed = await stub.ListExperiments(pb.ListExperimentsRequest(), metadata=reader, timeout=10)
    assert [e.id for e in listed.experiments] == [experiment_id]
    assert listed.experiments[0] == created.experiment


async def test_a_read_token_reads_everything(services: _Services) -> None:
    stub = services.experiments
    writer, reader = _bearer(WRITER), _bearer(READER)
    ids = [
        (
            await stub.CreateExperiment(
                pb.CreateExperimentRequest(strategy_id=STRATEGY), metadata=writer, timeout=10
            )
        ).experiment.id
        for _ in range(2)
    ]
    got = await stub.GetExperiment(
        pb.GetExperimentRequest(experiment_id=ids[0]), metadata=reader, timeout=10
    )
    assert got.experiment.id == ids[0]
    listed = await stub.ListExperiments(pb.ListExperimentsRequest(), metadata=reader, timeout=10)
    assert sorted(e.id for e in listed.experiments) == sorted(ids)
    compared = await stub.CompareExperiments(
        pb.CompareExperimentsRequest(experiment_ids=ids), metadata=reader, timeout=10
    )
    assert [e.id for e in compared.experiments] == ids
    revisions = await stub.ListExperimentRevisions(
        pb.ListExperimentRevisionsRequest(experiment_id=ids[0]), metadata=reader, timeout=10
    )
    assert [r.revision for r in revisions.revisions] == [1]
    revision = await stub.GetExperimentRevision(
        pb.GetExperimentRevisionRequest(experiment_id=ids[0], revision=1),
        metadata=reader,
        timeout=10,
    )
    assert revision.revision.actor == "ci-writer"

    run_id = _run(services)
    tracking = services.tracking
    runs = await tracking.ListRuns(tracking_pb2.ListRunsRequest(), metadata=reader, timeout=10)
    assert [r.run_id for r in runs.runs] == [run_id]
    run = await tracking.GetRun(
        tracking_pb2.GetRunRequest(run_id=run_id), metadata=reader, timeout=10
    )
    assert run.run.run_id == run_id
    experiments = await tracking.ListExperiments(
        tracking_pb2.ListExperimentsRequest(), metadata=reader, timeout=10
    )
    assert experiments.experiments


async def test_a_full_token_writes(services: _Services) -> None:
    stub = services.experiments
    for index, secret in enumerate((WRITER, BARE)):
        writer = _bearer(secret)
        created = await stub.CreateExperiment(
            pb.CreateExperimentRequest(strategy_id=STRATEGY), metadata=writer, timeout=10
        )
        experiment_id = created.experiment.id
        updated = await stub.UpdateExperiment(
            pb.UpdateExperimentRequest(
                experiment_id=experiment_id, experiment=pb.Experiment(mlflow_run_id=f"r{index}")
            ),
            metadata=writer,
            timeout=10,
        )
        assert updated.experiment.mlflow_run_id == f"r{index}"
        await stub.DeleteExperiment(
            pb.DeleteExperimentRequest(experiment_id=experiment_id), metadata=writer, timeout=10
        )
        undeleted = await stub.UndeleteExperiment(
            pb.UndeleteExperimentRequest(experiment_id=experiment_id), metadata=writer, timeout=10
        )
        assert undeleted.experiment.id == experiment_id
        imported = await stub.ImportRun(
            pb.ImportRunRequest(mlflow_run_id=_run(services)), metadata=writer, timeout=10
        )
        assert imported.created


def _rpc_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "research.rpc"]


async def test_the_log_line_names_the_token_and_never_shows_a_secret(
    services: _Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stub = services.experiments
    create = pb.CreateExperimentRequest(strategy_id=STRATEGY)
    await stub.CreateExperiment(create, metadata=_bearer(WRITER), timeout=10)
    await stub.ListExperiments(pb.ListExperimentsRequest(), metadata=_bearer(BARE), timeout=10)
    await rpc_error(stub.CreateExperiment(create, metadata=_bearer(READER), timeout=10))
    await rpc_error(stub.CreateExperiment(create, metadata=_bearer("wrong"), timeout=10))

    records = _rpc_lines(caplog)
    lines = [(r.getMessage(), getattr(r, "actor", "absent")) for r in records]
    assert lines == [
        (f"/{EXPERIMENTS}/CreateExperiment OK", "ci-writer"),
        (f"/{EXPERIMENTS}/ListExperiments OK", "token-3"),
        (f"/{EXPERIMENTS}/CreateExperiment PERMISSION_DENIED", "ci-reader"),
        (f"/{EXPERIMENTS}/CreateExperiment UNAUTHENTICATED", None),
    ]
    text, machine = TextFormatter("experiments_svc"), JsonFormatter("experiments_svc")
    formatted = [(text.format(r), machine.format(r)) for r in records]
    for (line, document), (_, actor) in zip(formatted[:3], lines[:3], strict=True):
        assert f"actor={actor}" in line.split(), line
        assert json.loads(document)["actor"] == actor
    assert "actor=" not in formatted[3][0]
    assert json.loads(formatted[3][1])["actor"] is None
    everything = caplog.text + "".join(a + b for a, b in formatted)
    for secret in SECRETS:
        assert secret not in everything
