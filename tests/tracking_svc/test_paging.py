"""ListRuns' page tokens (CONTRACT §10): keyset positions in the default
order (the last start_time and the runs seen at it), bound to the query,
on a real `mlflow server` and on the embedded store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2 as pb
from tests.fixtures.grpc import assert_invalid, rpc_error
from tests.fixtures.mlflow import Seeded
from tests.tracking_svc.conftest import Backend

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub


async def pages(stub: TrackingServiceAsyncStub, **query: object) -> list[list[str]]:
    found: list[list[str]] = []
    token = ""
    while True:
        response = await stub.ListRuns(pb.ListRunsRequest(page_token=token, **query))  # type: ignore[arg-type]
        found.append([run.run_id for run in response.runs])
        assert response.total == len(response.runs)
        token = response.next_page_token
        if not token:
            return found


async def test_pages_of_every_size_read_every_run_once_in_order(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    everything = seeded.newest_first
    for size in (1, 2, 3, len(everything), len(everything) + 1):
        found = await pages(stub, page_size=size)
        assert [run for page in found for run in page] == everything, size
        assert all(len(page) == size for page in found[:-1])


async def test_a_filter_holds_across_pages(stub: TrackingServiceAsyncStub, seeded: Seeded) -> None:
    expected = [
        run.run_id
        for run in (await stub.ListRuns(pb.ListRunsRequest(run_type="training", limit=100))).runs
    ]
    found = await pages(stub, filter='run_type = "training"', limit=1)
    assert [run for page in found for run in page] == expected
    assert len(found) == len(expected)


async def test_runs_started_while_paging_shift_nothing(
    stub: TrackingServiceAsyncStub, seeded: Seeded, backend: Backend
) -> None:
    first = await stub.ListRuns(pb.ListRunsRequest(page_size=2))
    client = MlflowClient(tracking_uri=backend.settings.tracking_uri)
    newer = client.create_run(seeded.experiment_id)
    try:
        rest = await stub.ListRuns(
            pb.ListRunsRequest(page_size=100, page_token=first.next_page_token)
        )
        assert [r.run_id for r in first.runs] + [r.run_id for r in rest.runs] == (
            seeded.newest_first
        )
    finally:
        client.delete_run(newer.info.run_id)


async def test_a_token_of_another_query_is_refused(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    first = await stub.ListRuns(pb.ListRunsRequest(page_size=1))
    request = pb.ListRunsRequest(run_type="training", page_token=first.next_page_token)
    error = await rpc_error(stub.ListRuns(request))
    assert_invalid(error, "page_token", "page_token belongs to another query")
    error = await rpc_error(stub.ListRuns(pb.ListRunsRequest(page_token="abc")))
    assert_invalid(error, "page_token", "page_token ")
    error = await rpc_error(stub.ListRuns(pb.ListRunsRequest(limit=2, page_size=3)))
    assert_invalid(error, "page_size", "and limit name the same thing")
