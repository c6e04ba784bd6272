"""A record that can be trusted (CONTRACT §9), over gRPC on PostgreSQL and
SQLite: every change leaves a revision that nothing rewrites; etags guard
updates and deletes (one of twenty racing PATCHes wins); deletion is soft
and undone by UndeleteExperiment; a create retried with its request_id
makes one experiment, even when eight race."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2

from research.experiments.v1 import experiments_pb2 as pb
from tests.experiments_svc.conftest import STRATEGY
from tests.experiments_svc.test_paging import create
from tests.fixtures.grpc import assert_invalid, rpc_error, struct

if TYPE_CHECKING:
    from research.experiments.v1.experiments_pb2_grpc import ExperimentServiceAsyncStub


async def revisions(
    stub: ExperimentServiceAsyncStub, experiment_id: str
) -> list[pb.ExperimentRevision]:
    """Every revision, newest first, through the pages."""
    found: list[pb.ExperimentRevision] = []
    token = ""
    while True:
        page = await stub.ListExperimentRevisions(
            pb.ListExperimentRevisionsRequest(
                experiment_id=experiment_id, page_size=2, page_token=token
            )
        )
        found += page.revisions
        token = page.next_page_token
        if not token:
            return found


async def patch(
    stub: ExperimentServiceAsyncStub, experiment_id: str, etag: str = "", **fields: object
) -> pb.Experiment:
    request = pb.UpdateExperimentRequest(
        experiment_id=experiment_id,
        experiment=pb.Experiment(**fields),  # type: ignore[arg-type]
        etag=etag,
    )
    return (await stub.UpdateExperiment(request)).experiment


async def test_two_patches_leave_three_readable_revisions(
    stub: ExperimentServiceAsyncStub,
) -> None:
    created = await stub.CreateExperiment(
        pb.CreateExperimentRequest(
            strategy_id=STRATEGY, dataset_version="ds-1", metrics=struct({"sharpe": 1.0})
        ),
        metadata=[("x-request-id", "create-1")],
    )
    experiment_id = created.experiment.id
    assert (created.experiment.revision, created.experiment.HasField("deleted_at")) == (1, False)
    first = await patch(stub, experiment_id, metrics=struct({"sharpe": 1.5}))
    second = await stub.UpdateExperiment(
        pb.UpdateExperimentRequest(
            experiment_id=experiment_id,
            experiment=pb.Experiment(
                artifacts={"model": "s3://m"}, metrics=struct({"sharpe": 1.5})
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["artifacts", "metrics"]),
        ),
        metadata=[("x-request-id", "patch-2")],
    )
    assert (first.revision, second.experiment.revision) == (2, 3)
    assert len({created.experiment.etag, first.etag, second.experiment.etag}) == 3
    found = await revisions(stub, experiment_id)
    assert [r.revision for r in found] == [3, 2, 1]
    assert [r.action for r in found] == ["update", "update", "create"]
    # Only what changed: the unchanged metrics of the second PATCH are not named.
    assert [list(r.changed_fields) for r in found] == [
        ["artifacts"],
        ["metrics"],
        ["strategy_id", "dataset_version", "metrics"],
    ]
    assert [r.experiment for r in found] == [second.experiment, first, created.experiment]
    assert not any(r.HasField("actor") for r in found)  # no token configured
    assert (found[0].request_id, found[2].request_id) == ("patch-2", "create-1")
    one = await stub.GetExperimentRevision(
        pb.GetExperimentRevisionRequest(experiment_id=experiment_id, revision=2)
    )
    assert one.revision == found[1]


async def test_a_patch_that_changes_nothing_writes_no_revision(
    stub: ExperimentServiceAsyncStub,
) -> None:
    experiment_id = await create(stub, metrics=struct({"sharpe": 1.0}))
    same = await patch(stub, experiment_id, metrics=struct({"sharpe": 1.0}))
    assert same.revision == 1
    assert len(await revisions(stub, experiment_id)) == 1


async def test_a_stale_etag_changes_nothing_and_names_the_current_revision(
    stub: ExperimentServiceAsyncStub,
) -> None:
    experiment_id = await create(stub, metrics=struct({"sharpe": 1.0}))
    before = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id))
    ).experiment
    now = await patch(stub, experiment_id, before.etag, metrics=struct({"sharpe": 2.0}))
    for call in (
        patch(stub, experiment_id, before.etag, metrics=struct({"sharpe": 3.0})),
        stub.DeleteExperiment(
            pb.DeleteExperimentRequest(experiment_id=experiment_id, etag=before.etag)
        ),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.ABORTED
        assert f'is at revision 2 (etag "{now.etag}"); nothing was written' in (
            error.details() or ""
        )
    assert len(await revisions(stub, experiment_id)) == 2
    current = await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id))
    assert current.experiment == now
    # The current etag, and "*", both match.
    assert (await patch(stub, experiment_id, now.etag, metrics=struct({"x": 1}))).revision == 3
    assert (await patch(stub, experiment_id, "*", metrics=struct({"x": 2}))).revision == 4


async def test_of_twenty_racing_patches_with_one_etag_exactly_one_wins(
    stub: ExperimentServiceAsyncStub,
) -> None:
    experiment_id = await create(stub, metrics=struct({"sharpe": 1.0}))
    etag = (
        await stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id))
    ).experiment.etag
    # Every PATCH changes the row (none sets the 1.0 it holds): one that
    # changed nothing would succeed with the etag too, without a revision.
    results = await asyncio.gather(
        *(patch(stub, experiment_id, etag, metrics=struct({"sharpe": n + 2})) for n in range(20)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, pb.Experiment)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert len(lost) == 19
    assert {error.code() for error in lost} == {grpc.StatusCode.ABORTED}
    found = await revisions(stub, experiment_id)
    assert [r.revision for r in found] == [2, 1]
    assert found[0].experiment == won[0]


async def test_delete_is_soft_and_undelete_brings_it_back(
    stub: ExperimentServiceAsyncStub,
) -> None:
    experiment_id = await create(stub, mlflow_run_id="run-deleted", metrics=struct({"a": 1}))
    other = await create(stub)
    await stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=experiment_id))
    get = pb.GetExperimentRequest(experiment_id=experiment_id)
    assert (await rpc_error(stub.GetExperiment(get))).code() == grpc.StatusCode.NOT_FOUND
    deleted = (
        await stub.GetExperiment(
            pb.GetExperimentRequest(experiment_id=experiment_id, show_deleted=True)
        )
    ).experiment
    assert deleted.HasField("deleted_at")
    assert deleted.revision == 2
    listed = await stub.ListExperiments(pb.ListExperimentsRequest())
    assert [e.id for e in listed.experiments] == [other]
    everything = await stub.ListExperiments(pb.ListExperimentsRequest(show_deleted=True))
    assert [e.id for e in everything.experiments] == [other, experiment_id]
    # Deleted is unknown to every other method.
    for call in (
        patch(stub, experiment_id, metrics=struct({"a": 2})),
        stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=experiment_id)),
        stub.CompareExperiments(
            pb.CompareExperimentsRequest(experiment_ids=[other, experiment_id])
        ),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.NOT_FOUND
    # Its run cannot be imported again: the experiment is named.
    error = await rpc_error(stub.ImportRun(pb.ImportRunRequest(mlflow_run_id="run-deleted")))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"experiment {experiment_id}, which is deleted" in (error.details() or "")
    # Its revisions stay readable.
    assert [r.action for r in await revisions(stub, experiment_id)] == ["delete", "create"]
    back = await stub.UndeleteExperiment(pb.UndeleteExperimentRequest(experiment_id=experiment_id))
    assert back.experiment.revision == 3
    assert not back.experiment.HasField("deleted_at")
    assert (await stub.GetExperiment(get)).experiment == back.experiment
    found = await revisions(stub, experiment_id)
    assert [(r.action, list(r.changed_fields)) for r in found[:2]] == [
        ("undelete", ["deleted_at"]),
        ("delete", ["deleted_at"]),
    ]
    error = await rpc_error(
        stub.UndeleteExperiment(pb.UndeleteExperimentRequest(experiment_id=experiment_id))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    unknown = pb.UndeleteExperimentRequest(experiment_id=str(uuid.uuid4()))
    assert (await rpc_error(stub.UndeleteExperiment(unknown))).code() == grpc.StatusCode.NOT_FOUND


async def test_a_create_retried_with_its_request_id_makes_one_experiment(
    stub: ExperimentServiceAsyncStub,
) -> None:
    request_id = str(uuid.uuid4())
    request = pb.CreateExperimentRequest(
        strategy_id=STRATEGY, metrics=struct({"sharpe": 1.2}), request_id=request_id
    )
    first = await stub.CreateExperiment(request)
    again = await stub.CreateExperiment(request)
    assert again.experiment == first.experiment
    listed = await stub.ListExperiments(pb.ListExperimentsRequest())
    assert [e.id for e in listed.experiments] == [first.experiment.id]
    assert len(await revisions(stub, first.experiment.id)) == 1
    different = pb.CreateExperimentRequest(
        strategy_id=STRATEGY, metrics=struct({"sharpe": 9.9}), request_id=request_id
    )
    error = await rpc_error(stub.CreateExperiment(different))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"request_id {request_id} was used by another create" in (error.details() or "")
    bad = pb.CreateExperimentRequest(strategy_id=STRATEGY, request_id="not-a-uuid")
    assert_invalid(await rpc_error(stub.CreateExperiment(bad)), "request_id", "request_id ")


async def test_eight_racing_creates_with_one_request_id_make_one_row(
    stub: ExperimentServiceAsyncStub,
) -> None:
    request = pb.CreateExperimentRequest(
        strategy_id=STRATEGY, dataset_version="ds-race", request_id=str(uuid.uuid4())
    )
    answers = await asyncio.gather(*(stub.CreateExperiment(request) for _ in range(8)))
    assert len({answer.experiment.id for answer in answers}) == 1
    listed = await stub.ListExperiments(pb.ListExperimentsRequest(dataset_version="ds-race"))
    assert len(listed.experiments) == 1


async def test_revisions_page_newest_first_and_refuse_bad_input(
    stub: ExperimentServiceAsyncStub,
) -> None:
    experiment_id = await create(stub)
    for n in range(4):
        await patch(stub, experiment_id, metrics=struct({"n": n}))
    first = await stub.ListExperimentRevisions(
        pb.ListExperimentRevisionsRequest(experiment_id=experiment_id, page_size=2)
    )
    assert [r.revision for r in first.revisions] == [5, 4]
    assert [r.revision for r in await revisions(stub, experiment_id)] == [5, 4, 3, 2, 1]
    other = await create(stub)
    stolen = pb.ListExperimentRevisionsRequest(
        experiment_id=other, page_token=first.next_page_token
    )
    assert_invalid(
        await rpc_error(stub.ListExperimentRevisions(stolen)), "page_token", "another query"
    )
    for number in (0, -1):
        request = pb.GetExperimentRevisionRequest(experiment_id=experiment_id, revision=number)
        error = await rpc_error(stub.GetExperimentRevision(request))
        assert_invalid(error, "revision", f"revision must be a positive integer, got {number}")
    missing = pb.GetExperimentRevisionRequest(experiment_id=experiment_id, revision=6)
    error = await rpc_error(stub.GetExperimentRevision(missing))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert f"Revision 6 of experiment {experiment_id} not found" == error.details()
    unknown = pb.ListExperimentRevisionsRequest(experiment_id=str(uuid.uuid4()))
    assert (
        await rpc_error(stub.ListExperimentRevisions(unknown))
    ).code() == grpc.StatusCode.NOT_FOUND


async def test_no_method_rewrites_a_revision(stub: ExperimentServiceAsyncStub) -> None:
    """Every method, one after another: each revision, once written, reads
    back the same ever after, and the history only grows."""
    experiment_id = await create(stub, mlflow_run_id="run-kept", metrics=struct({"a": 1}))
    other = await create(stub)
    seen: list[pb.ExperimentRevision] = []

    async def unchanged_and_grown() -> None:
        now = await revisions(stub, experiment_id)
        assert now[len(now) - len(seen) :] == seen
        seen[:] = now

    # Each step is made when it runs: a gRPC stub call starts when it is made.
    steps: list[Callable[[], Awaitable[object]]] = [
        lambda: patch(stub, experiment_id, metrics=struct({"a": 2})),
        lambda: stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id)),
        lambda: stub.ListExperiments(pb.ListExperimentsRequest(show_deleted=True)),
        lambda: stub.CompareExperiments(
            pb.CompareExperimentsRequest(experiment_ids=[experiment_id, other])
        ),
        lambda: stub.ImportRun(pb.ImportRunRequest(mlflow_run_id="run-kept")),
        lambda: stub.GetExperimentRevision(
            pb.GetExperimentRevisionRequest(experiment_id=experiment_id, revision=1)
        ),
        lambda: stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=experiment_id)),
        lambda: stub.UndeleteExperiment(pb.UndeleteExperimentRequest(experiment_id=experiment_id)),
        lambda: patch(stub, experiment_id, "*", mlflow_run_id="run-kept-2"),
    ]
    await unchanged_and_grown()
    for step in steps:
        await step()
        await unchanged_and_grown()
    assert [(r.action, list(r.changed_fields)) for r in seen] == [
        ("update", ["mlflow_run_id"]),
        ("undelete", ["deleted_at"]),
        ("delete", ["deleted_at"]),
        ("update", ["metrics"]),
        ("create", ["strategy_id", "mlflow_run_id", "metrics"]),
    ]


@pytest.mark.parametrize("field", ["revision", "etag", "deleted_at"])
async def test_the_record_keeping_fields_are_output_only(
    stub: ExperimentServiceAsyncStub, field: str
) -> None:
    experiment_id = await create(stub)
    request = pb.UpdateExperimentRequest(
        experiment_id=experiment_id, update_mask=field_mask_pb2.FieldMask(paths=[field])
    )
    error = await rpc_error(stub.UpdateExperiment(request))
    assert_invalid(error, field, f"{field} is output only and cannot be updated")
    assert len(await revisions(stub, experiment_id)) == 1
