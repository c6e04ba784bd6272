"""How MLflow's failures reach the caller: `translate` on the exceptions
MLflow's client really raises."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from research_common.errors import DeadlineExceeded
from tracking_svc.backend import TrackingBackend, translate
from tracking_svc.config import Settings

IN_TIME = "the MLflow tracking server did not answer in time; retry later"
UNAVAILABLE = "the MLflow tracking server is unavailable; retry later"


def test_a_read_timeout_flattened_by_mlflow_says_it_did_not_answer_in_time() -> None:
    # With retries off, urllib3's read timeout arrives as a connection error
    # whose text MLflow copies into its own message, with no cause attached.
    error = MlflowException(
        "API request to http://127.0.0.1:1/api/2.0/mlflow/runs/get failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded (Caused by "
        "ReadTimeoutError(\"HTTPConnectionPool(host='127.0.0.1', port=1): Read timed out. "
        '(read timeout=1)"))'
    )
    translated = translate(error)
    assert translated is not None
    assert (translated.code, translated.message) == (grpc.StatusCode.UNAVAILABLE, IN_TIME)


def test_requests_own_timeout_as_the_cause_says_it_did_not_answer_in_time() -> None:
    error = MlflowException("API request failed with timeout exception.")
    error.__cause__ = requests.exceptions.ReadTimeout("slow")
    translated = translate(error)
    assert translated is not None
    assert translated.message == IN_TIME


def test_a_refused_connection_is_unavailable() -> None:
    error = MlflowException(
        "API request to http://127.0.0.1:1/api/2.0/mlflow/runs/get failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded (Caused by "
        "NewConnectionError('Failed to establish a new connection: [Errno 111] "
        "Connection refused'))"
    )
    translated = translate(error)
    assert translated is not None
    assert (translated.code, translated.message) == (grpc.StatusCode.UNAVAILABLE, UNAVAILABLE)


def test_the_bounded_wait_running_out_says_it_did_not_answer_in_time() -> None:
    translated = translate(TimeoutError("MLflow did not answer within 1.0 s"))
    assert translated is not None
    assert (translated.code, translated.message) == (grpc.StatusCode.UNAVAILABLE, IN_TIME)


def test_an_invalid_parameter_is_the_callers_mistake() -> None:
    translated = translate(MlflowException("bad key", error_code=INVALID_PARAMETER_VALUE))
    assert translated is not None
    assert translated.code == grpc.StatusCode.INVALID_ARGUMENT
    assert translated.message == "MLflow rejected the request: bad key"


def test_anything_else_is_a_bug() -> None:
    assert translate(ValueError("boom")) is None


def _timed_out_request() -> None:
    error = MlflowException("API request failed with timeout exception.")
    error.__cause__ = requests.exceptions.ReadTimeout("slow")
    raise error


async def test_a_request_timed_out_at_the_callers_deadline_is_deadline_exceeded(
    tmp_path: Path,
) -> None:
    # Each MLflow request's timeout is cut to the caller's deadline, so the
    # request may give up a hair before the wait on it does: that is the
    # caller's deadline running out, not MLflow failing.
    backend = TrackingBackend(Settings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    try:
        with pytest.raises(DeadlineExceeded) as caught:
            await backend.call(_timed_out_request, deadline=time.monotonic() + 2.0)
        assert caught.value.message == "the deadline passed before MLflow answered"
        # Under MLFLOW_TIMEOUT alone the same timeout is MLflow's slowness.
        with pytest.raises(MlflowException) as raw:
            await backend.call(_timed_out_request)
        translated = translate(raw.value)
        assert translated is not None
        assert (translated.code, translated.message) == (grpc.StatusCode.UNAVAILABLE, IN_TIME)
    finally:
        await backend.close()
