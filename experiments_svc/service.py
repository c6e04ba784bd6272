"""ExperimentService: the RPC handlers. Validation lives in `validation`,
the update rules in `updates`, storage in `store` (and its revisions in
`revisions`), the compare in `comparing`."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from grpc import aio

from experiments_svc import validation as check
from experiments_svc.comparing import baseline_id, compare_ids, comparison
from experiments_svc.convert import (
    Record,
    first_revision,
    has_field,
    revision_to_proto,
    to_proto,
)
from experiments_svc.filtering import FIELDS
from experiments_svc.imports import TrackingClient, record_from_run
from experiments_svc.models import OPTIONAL_TEXT_FIELDS
from experiments_svc.ordering import BEST_OF
from experiments_svc.ordering import FIELDS as ORDER_FIELDS
from experiments_svc.revisions import Change
from experiments_svc.store import LIVE, ExperimentStore, RequestRepeated
from experiments_svc.updates import changes_of, update_paths
from research.experiments.v1 import experiments_pb2, experiments_pb2_grpc
from research_common import diff, ordering
from research_common import filters as filters_language
from research_common.auth import ACTOR
from research_common.errors import AlreadyExists, InvalidArgument, NotFound
from research_common.logging import REQUEST_ID
from research_common.page_tokens import PageTokens, not_a_token

Context = aio.ServicerContext[Any, Any]
Clock = Callable[[], datetime]

EXPERIMENT_TYPE = experiments_pb2.Experiment.DESCRIPTOR.full_name
# A list page stops before the experiments it holds reach this many bytes
# encoded, so that it fits in one gRPC message (4 MiB, the default of every
# gRPC client) with room to spare; `next_page_token` says where the rest is.
PAGE_BYTES = 3 * 1024 * 1024
REVISION_TYPE = experiments_pb2.ExperimentRevision.DESCRIPTOR.full_name
NOT_FOUND_MESSAGE = "Experiment not found"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _not_found(experiment_id: uuid.UUID) -> NotFound:
    return NotFound.resources(NOT_FOUND_MESSAGE, EXPERIMENT_TYPE, [str(experiment_id)])


class ExperimentService(experiments_pb2_grpc.ExperimentServiceServicer):
    def __init__(
        self,
        store: ExperimentStore,
        tracking: TrackingClient,
        page_tokens: PageTokens,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._tracking = tracking
        self._page_tokens = page_tokens
        self._clock = clock

    async def CreateExperiment(
        self, request: experiments_pb2.CreateExperimentRequest, context: Context
    ) -> experiments_pb2.CreateExperimentResponse:
        request_id, digest = _request_identity(request)
        if request_id is not None:
            first = await self._store.find_by_request_id(request_id)
            if first is not None:
                return _repeated_create(first, digest)
        now = self._clock()
        record: dict[str, Any] = {
            "id": uuid.uuid4(),
            "strategy_id": check.parse_uuid("strategy_id", request.strategy_id),
            **{
                name: check.check_text(name, getattr(request, name))
                if has_field(request, name)
                else None
                for name in OPTIONAL_TEXT_FIELDS
            },
            "parameters": check.struct_to_json(request.parameters, "parameters"),
            "metrics": check.struct_to_json(request.metrics, "metrics"),
            "artifacts": check.check_artifacts(request.artifacts),
            "created_at": now,
            "updated_at": now,
            "request_id": request_id,
            "request_digest": digest,
        }
        check.check_size(to_proto(first_revision(record)))
        try:
            row = await self._store.insert(record, _change("create", now))
        except RequestRepeated as repeated:  # a retry raced the first create
            return _repeated_create(repeated.first, digest)
        return experiments_pb2.CreateExperimentResponse(experiment=to_proto(row))

    async def ListExperiments(
        self, request: experiments_pb2.ListExperimentsRequest, context: Context
    ) -> experiments_pb2.ListExperimentsResponse:
        filters: dict[str, Any] = {}
        if request.HasField("strategy_id"):
            filters["strategy_id"] = check.parse_uuid("strategy_id", request.strategy_id)
        for name in OPTIONAL_TEXT_FIELDS:
            if has_field(request, name):
                filters[name] = check.check_filter(name, getattr(request, name))
        skip, size = check.paging(
            request.skip if request.HasField("skip") else None,
            request.limit if request.HasField("limit") else None,
            request.page_size if request.HasField("page_size") else None,
            request.page_token,
        )
        tree = filters_language.parse(request.filter, FIELDS)
        conditions = [self._store.filters.compile(tree)] if tree is not None else []
        order = self._store.order(
            ordering.parse(
                request.order_by,
                ORDER_FIELDS,
                BEST_OF,
                ordering.Directions(diff.MINIMIZE, request.maximize, request.minimize),
            )
        )
        # What a token is bound to: the filters and the order (the page size
        # may change).
        query = {name: str(value) for name, value in filters.items()}
        if tree is not None:
            query["filter"] = request.filter
        if request.show_deleted:
            query["show_deleted"] = "true"
        else:
            conditions.append(LIVE)
        if not order.is_default:
            query["order_by"] = ordering.canonical(order.keys)
        if request.page_token:
            conditions.append(order.after(self._page_tokens.decode(request.page_token, query)))
        # One row more than the page: whether there is a next page at all.
        records = await self._store.list(filters, skip, size + 1, order, conditions)
        page = _page(records[:size])
        response = experiments_pb2.ListExperimentsResponse(experiments=page)
        if len(page) < len(records):
            response.next_page_token = self._page_tokens.encode(
                query, order.position(records[len(page) - 1])
            )
        return response

    async def GetExperiment(
        self, request: experiments_pb2.GetExperimentRequest, context: Context
    ) -> experiments_pb2.GetExperimentResponse:
        experiment_id = check.parse_uuid("experiment_id", request.experiment_id)
        record = await self._store.get(experiment_id)
        if record is None or (record["deleted_at"] is not None and not request.show_deleted):
            raise _not_found(experiment_id)
        return experiments_pb2.GetExperimentResponse(experiment=to_proto(record))

    async def UpdateExperiment(
        self, request: experiments_pb2.UpdateExperimentRequest, context: Context
    ) -> experiments_pb2.UpdateExperimentResponse:
        experiment_id = check.parse_uuid("experiment_id", request.experiment_id)
        changes = changes_of(request.experiment, update_paths(request))
        record = await self._store.update(
            experiment_id,
            changes,
            _change("update", self._clock()),
            request.etag,
            check=lambda row: check.check_size(to_proto(row), changes),
        )
        if record is None:
            raise _not_found(experiment_id)
        return experiments_pb2.UpdateExperimentResponse(experiment=to_proto(record))

    async def DeleteExperiment(
        self, request: experiments_pb2.DeleteExperimentRequest, context: Context
    ) -> experiments_pb2.DeleteExperimentResponse:
        experiment_id = check.parse_uuid("experiment_id", request.experiment_id)
        change = _change("delete", self._clock())
        if not await self._store.delete(experiment_id, change, request.etag):
            raise _not_found(experiment_id)
        return experiments_pb2.DeleteExperimentResponse()

    async def UndeleteExperiment(
        self, request: experiments_pb2.UndeleteExperimentRequest, context: Context
    ) -> experiments_pb2.UndeleteExperimentResponse:
        experiment_id = check.parse_uuid("experiment_id", request.experiment_id)
        record = await self._store.undelete(experiment_id, _change("undelete", self._clock()))
        if record is None:
            raise _not_found(experiment_id)
        return experiments_pb2.UndeleteExperimentResponse(experiment=to_proto(record))

    async def ListExperimentRevisions(
        self, request: experiments_pb2.ListExperimentRevisionsRequest, context: Context
    ) -> experiments_pb2.ListExperimentRevisionsResponse:
        experiment_id = check.parse_uuid("experiment_id", request.experiment_id)
        _, size = check.paging(
            None, None, request.page_size if request.HasField("page_size") else None, ""
        )
        query = {"experiment_id": str(experiment_id)}
        before = None
        if request.page_token:
            before = _revision_position(self._page_tokens.decode(request.page_token, query))
        found = await self._store.revisions(experiment_id, size + 1, before)
        if not found and before is None and await self._store.get(experiment_id) is None:
            raise _not_found(experiment_id)
        response = experiments_pb2.ListExperimentRevisionsResponse(
            revisions=[revision_to_proto(row) for row in found[:size]]
        )
        if len(found) > size:
            response.next_page_token = self._page_tokens.encode(
                query, [found[size - 1]["revision"]]
            )
        return response

    async def GetExperimentRevision(
        self, request: experiments_pb2.GetExperimentRevisionRequest, context: Context
    ) -> experiments_pb2.GetExperimentRevisionResponse:
        experiment_id = check.parse_uuid("experiment_id", request.experiment_id)
        if request.revision < 1:
            raise InvalidArgument.field(
                "revision", f"must be a positive integer, got {request.revision}"
            )
        found = await self._store.revision(experiment_id, request.revision)
        if found is None:
            raise NotFound.resources(
                f"Revision {request.revision} of experiment {experiment_id} not found",
                REVISION_TYPE,
                [f"{experiment_id}/revisions/{request.revision}"],
            )
        return experiments_pb2.GetExperimentRevisionResponse(revision=revision_to_proto(found))

    async def CompareExperiments(
        self, request: experiments_pb2.CompareExperimentsRequest, context: Context
    ) -> experiments_pb2.CompareExperimentsResponse:
        ids = compare_ids(request.experiment_ids)
        diff.check_overrides(request.maximize, request.minimize)
        baseline = baseline_id(request.baseline, ids)
        found = await self._store.get_many(ids)
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise NotFound.resources(
                f"Experiments not found: {', '.join(missing)}", EXPERIMENT_TYPE, missing
            )
        records = [found[i] for i in ids]
        return await comparison(
            self._store, records, list(request.maximize), list(request.minimize), baseline
        )

    async def ImportRun(
        self, request: experiments_pb2.ImportRunRequest, context: Context
    ) -> experiments_pb2.ImportRunResponse:
        """Idempotent: the experiment already recording the run is returned
        as it is; otherwise the run is fetched from the tracking service and
        recorded. Racing imports of one run meet at the unique index: one
        inserts, the others find its row."""
        if not request.mlflow_run_id:
            raise InvalidArgument.field("mlflow_run_id", "is required")
        run_id = check.check_text("mlflow_run_id", request.mlflow_run_id)
        existing = await self._store.find_by_run_id(run_id)
        if existing is not None:
            return _imported(existing, created=False)
        run = await self._tracking.get_run(run_id, context.time_remaining())
        now = self._clock()
        record = record_from_run(run, now)
        check.check_size(to_proto(first_revision(record)))
        try:
            row = await self._store.insert(record, _change("import", now))
        except AlreadyExists:
            existing = await self._store.find_by_run_id(run_id)
            if existing is None:  # the other row's run id changed in between
                raise
            return _imported(existing, created=False)
        return experiments_pb2.ImportRunResponse(experiment=to_proto(row), created=True)


def _page(records: list[Record]) -> list[experiments_pb2.Experiment]:
    """The records as messages, as many as fit in PAGE_BYTES (never fewer
    than one): a page of large rows ends early instead of failing."""
    page: list[experiments_pb2.Experiment] = []
    used = 0
    for record in records:
        experiment = to_proto(record)
        # The field's tag and length prefix: a few bytes on each row.
        size = experiment.ByteSize() + 8
        if page and used + size > PAGE_BYTES:
            break
        page.append(experiment)
        used += size
    return page


def _imported(record: Record, *, created: bool) -> experiments_pb2.ImportRunResponse:
    if record["deleted_at"] is not None:
        raise AlreadyExists(
            f"MLflow run {record['mlflow_run_id']} is recorded by experiment {record['id']}, "
            "which is deleted: undelete it (POST /api/v1/experiments/"
            f"{record['id']}:undelete) rather than import the run again"
        )
    return experiments_pb2.ImportRunResponse(experiment=to_proto(record), created=created)


def _change(action: str, at: datetime) -> Change:
    """A change made now by the caller of this call (its token's name and
    its request id, as the interceptor set them)."""
    return Change(action, at, ACTOR.get(), REQUEST_ID.get())


def _request_identity(
    request: experiments_pb2.CreateExperimentRequest,
) -> tuple[uuid.UUID | None, str | None]:
    """A create's request_id (AIP-155) and the digest of the rest of the
    request, which a repeat must match."""
    if not request.request_id:
        return None, None
    request_id = check.parse_uuid("request_id", request.request_id)
    rest = experiments_pb2.CreateExperimentRequest()
    rest.CopyFrom(request)
    rest.ClearField("request_id")
    digest = hashlib.sha256(rest.SerializeToString(deterministic=True)).hexdigest()
    return request_id, digest


def _repeated_create(first: Record, digest: str | None) -> experiments_pb2.CreateExperimentResponse:
    """The answer to a create whose request_id was seen: the first one's
    experiment when it is the same request, else ALREADY_EXISTS."""
    if first["request_digest"] != digest:
        raise AlreadyExists(
            f"request_id {first['request_id']} was used by another create (experiment "
            f"{first['id']}) with a different request: use a new request_id for a new "
            "experiment"
        )
    return experiments_pb2.CreateExperimentResponse(experiment=to_proto(first))


def _revision_position(position: list[Any]) -> int:
    """The last revision number a checked page token holds."""
    if len(position) == 1 and type(position[0]) is int and position[0] > 1:
        revision: int = position[0]
        return revision
    raise not_a_token()
