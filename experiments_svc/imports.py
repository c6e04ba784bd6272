"""ImportRun's two halves: the call to the tracking service (service to
service, with a deadline and the caller's request id), and the mapping of an
MLflow run onto an experiment record (CONTRACT §5)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from research_common.auth import AUTHORIZATION, AUTHORIZATION_HEADER
from research_common.constants import MLFLOW_RUN_RESOURCE, REQUEST_ID_HEADER
from research_common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    Unavailable,
    echo,
)
from research_common.logging import REQUEST_ID
from research_common.targets import channel_options
from research_common.tls import TlsSettings

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

MAX_TAG = 255
# MLflow's lifecycle stage of a deleted run (tracking_pb2.Run.lifecycle_stage).
DELETED = "deleted"
# Leave this much of the caller's deadline for our own answer.
_DEADLINE_MARGIN = 0.1
# Run tag -> experiment column (CONTRACT §5: `git_commit` -> `git_commit_hash`).
VERSION_TAGS = {
    "dataset_version": "dataset_version",
    "feature_version": "feature_version",
    "model_version": "model_version",
    "git_commit": "git_commit_hash",
}


class TrackingClient:
    """One long-lived channel to TrackingService."""

    def __init__(self, address: str, timeout: float, tls: TlsSettings | None = None) -> None:
        # round_robin over the target's addresses; GetRun changes nothing,
        # so a replica that goes away costs it a retry, not a failure.
        service = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name
        self._channel = (tls or TlsSettings()).channel(address, channel_options([service]))
        self._stub: TrackingServiceAsyncStub = tracking_pb2_grpc.TrackingServiceStub(self._channel)
        self._timeout = timeout

    async def get_run(self, run_id: str, time_remaining: float | None) -> tracking_pb2.Run:
        """The run, or NotFound / InvalidArgument / Unavailable /
        DeadlineExceeded. The call gets TRACKING_TIMEOUT or what is left of
        our caller's deadline, whichever is shorter, and carries our caller's
        request id and credentials (tracking_svc checks the same API_TOKENS)."""
        timeout = self._timeout
        callers_limit = False
        if time_remaining is not None and time_remaining - _DEADLINE_MARGIN < timeout:
            # The caller's deadline is nearer; it travels on to tracking_svc
            # (and from there to MLflow) as this call's timeout.
            timeout = time_remaining - _DEADLINE_MARGIN
            callers_limit = True
        if timeout <= 0:
            # Spent already: a call now could only time out.
            raise _deadline_ran_out(run_id)
        metadata = [(REQUEST_ID_HEADER, REQUEST_ID.get() or uuid.uuid4().hex)]
        authorization = AUTHORIZATION.get()
        if authorization is not None:
            metadata.append((AUTHORIZATION_HEADER, authorization))
        try:
            response = await self._stub.GetRun(
                tracking_pb2.GetRunRequest(run_id=run_id), timeout=timeout, metadata=metadata
            )
        except aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and callers_limit:
                # Whether tracking_svc said so or the channel did, what ran
                # out is the caller's own deadline: it says nothing about
                # tracking's health, and retrying with the same deadline
                # would not help (CONTRACT §4: 504, not 503).
                raise _deadline_ran_out(run_id) from None
            raise _translate(error, run_id) from None
        return response.run

    async def close(self) -> None:
        await self._channel.close(None)


def _deadline_ran_out(run_id: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the deadline ran out while reading MLflow run {run_id} from the tracking service"
    )


def _translate(error: aio.AioRpcError, run_id: str) -> ServiceError:
    code = error.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound.resources(f"MLflow run not found: {run_id}", MLFLOW_RUN_RESOURCE, [run_id])
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # The tracking service names its field `run_id`; ours is mlflow_run_id.
        problem = (error.details() or "is not a valid MLflow run id").removeprefix("run_id ")
        return InvalidArgument.field("mlflow_run_id", problem)
    # Down, overloaded, failing, or not answering within TRACKING_TIMEOUT
    # (our own bound, not the caller's deadline): the import can be retried.
    return Unavailable(f"the tracking service is unavailable ({code.name}); retry later")


def _tag(run: tracking_pb2.Run, tag: str) -> str | None:
    value = run.tags.get(tag)
    if value is None:
        return None
    if len(value) > MAX_TAG or "\x00" in value:
        raise FailedPrecondition.violation(
            "TAG",
            tag,
            f"MLflow run {run.run_id} has a {tag} tag that an experiment cannot hold "
            f"(at most {MAX_TAG} characters, no NUL): {echo(value)}",
        )
    return value


def _check_not_deleted(run: tracking_pb2.Run) -> None:
    # MLflow serves a deleted run by id until it is garbage collected; an
    # experiment recorded from it would point at a run MLflow may drop.
    if run.lifecycle_stage == DELETED:
        raise FailedPrecondition.violation(
            "LIFECYCLE_STAGE",
            run.run_id,
            f"MLflow run {run.run_id} is deleted; restore it in MLflow before importing it",
        )


def _strategy_id(run: tracking_pb2.Run) -> uuid.UUID:
    value = run.tags.get("strategy_id")
    if not value:
        raise FailedPrecondition.violation(
            "TAG",
            "strategy_id",
            f"MLflow run {run.run_id} has no strategy_id tag; tag it with its strategy's UUID",
        )
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FailedPrecondition.violation(
            "TAG",
            "strategy_id",
            f"MLflow run {run.run_id} has a strategy_id tag that is not a UUID: {echo(value)}",
        ) from None


def _metric(value: float) -> float | None:
    # A JSON document cannot hold NaN or ±inf; the experiment records null
    # for them (MLflow keeps the value itself).
    return value if math.isfinite(value) else None


def record_from_run(run: tracking_pb2.Run, now: datetime) -> dict[str, Any]:
    """The experiment row for an MLflow run; FailedPrecondition when the
    run is deleted or its lineage tags cannot make one."""
    _check_not_deleted(run)
    record: dict[str, Any] = {
        "id": uuid.uuid4(),
        "strategy_id": _strategy_id(run),
        "mlflow_run_id": run.run_id,
        "parameters": dict(run.params),
        "metrics": {key: _metric(value) for key, value in run.metrics.items()},
        "artifacts": {"mlflow": run.artifact_uri} if run.artifact_uri else {},
        "created_at": now,
        "updated_at": now,
    }
    for tag, column in VERSION_TAGS.items():
        record[column] = _tag(run, tag)
    return record
