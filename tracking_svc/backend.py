"""The MLflow side of the façade: MLflow's own client, run on a bounded pool
of threads with a time limit per call, and its failures sorted into "not
found", "bad input" and "unavailable".

MLflow's client blocks, and by default retries a failed request for minutes.
Here (once tracking_svc.process has set MLflow's client up) each request is
one attempt whose timeout is what is left of the call's time (MLFLOW_TIMEOUT,
or the caller's deadline when nearer), and the caller's
wait is cut at that moment whatever the thread is doing: a call the caller
gave up on does not keep a thread and an MLflow connection busy after it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import requests
from mlflow.entities import Experiment, Metric, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from research_common.errors import DeadlineExceeded, InvalidArgument, ServiceError, Unavailable
from tracking_svc.config import Settings
from tracking_svc.histories import (
    HISTORY_ENDPOINT,
    History,
    bulk_query,
    history_of_answer,
    steps_of,
)
from tracking_svc.process import CALL_EXPIRES
from tracking_svc.rest_client import KeptAliveRest
from tracking_svc.run_search import (
    RunRow,
    RunsPage,
    get_with,
    rest_requests,
    row_of,
    search_body,
    search_with,
)

log = logging.getLogger("tracking.mlflow")

T = TypeVar("T")

# Leave this much of the caller's deadline for the answer to travel back.
_DEADLINE_MARGIN = 0.05
_NOT_FOUND = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
_INVALID = ErrorCode.Name(INVALID_PARAMETER_VALUE)
_EXISTS = ErrorCode.Name(RESOURCE_ALREADY_EXISTS)
_NO_ANSWER_IN_TIME = "the MLflow tracking server did not answer in time; retry later"
_DEADLINE_PASSED = "the deadline passed before MLflow answered"


class RunNotFound(Exception):
    """MLflow answered that the run does not exist (never raised for an outage)."""


def _error_code(error: MlflowException) -> str:
    return str(getattr(error, "error_code", ""))


def _timed_out(error: MlflowException) -> bool:
    """MLflow's HTTP timeout fired. With retries off, urllib3 reports a read
    timeout as a connection error, which MLflow flattens into its message;
    the cause survives only for requests' own Timeout."""
    return isinstance(error.__cause__, requests.exceptions.Timeout) or (
        "timed out" in str(error.message)
    )


def translate(error: BaseException) -> ServiceError | None:
    """What an MLflow failure means for the caller; None for a bug.

    Anything MLflow raises that is not about the request itself is
    UNAVAILABLE: refused connections, timeouts, 5xx answers, a locked store.
    It is never reported as a missing run.
    """
    if isinstance(error, MlflowException):
        if _error_code(error) == _INVALID:
            return InvalidArgument(f"MLflow rejected the request: {error.message}")
        log.warning("MLflow unavailable: %s", error.message)
        if _timed_out(error):
            return Unavailable(_NO_ANSWER_IN_TIME)
        return Unavailable("the MLflow tracking server is unavailable; retry later")
    if isinstance(error, TimeoutError):
        return Unavailable(_NO_ANSWER_IN_TIME)
    if isinstance(error, OSError):
        return Unavailable("the MLflow tracking store is unavailable; retry later")
    return None


class TrackingBackend:
    """MLflow's client behind a bounded thread pool, with the default
    experiment resolved (and created when absent) on first use."""

    def __init__(self, settings: Settings) -> None:
        _prepare_local_store(settings.tracking_uri)
        self._settings = settings
        self._client = MlflowClient(tracking_uri=settings.tracking_uri)
        # Run search and bulk histories straight over REST when MLflow is a
        # server (run_search, histories).
        self._rest = rest_requests(
            settings.tracking_uri, direct=settings.direct_http, timeout=settings.mlflow_timeout
        )
        self._post_search = None if self._rest is None else search_with(self._rest)
        self._get_run = None if self._rest is None else get_with(self._rest)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="mlflow")
        self._default_experiment_id: str | None = None

    async def call(self, fn: Callable[[], T], deadline: float | None = None) -> T:
        """Run `fn` on the pool; give up at `deadline` (a time.monotonic()
        value) or after MLFLOW_TIMEOUT, whichever comes first."""
        limit = self._settings.mlflow_timeout
        callers_limit = False
        if deadline is not None and deadline - time.monotonic() - _DEADLINE_MARGIN < limit:
            # The caller's deadline is nearer: running out of time then says
            # nothing about MLflow's health.
            limit = deadline - time.monotonic() - _DEADLINE_MARGIN
            callers_limit = True
        expires = time.monotonic() + limit

        def job() -> T:
            # A call that waited in the queue past its deadline is not run.
            if time.monotonic() >= expires:
                raise TimeoutError("the call's deadline passed while it waited for a worker")
            # Every MLflow request of `fn` times out when the call's time is
            # up (tracking_svc.process, set up by main()), so the thread is
            # free again then.
            CALL_EXPIRES.set(expires)
            return fn()

        loop = asyncio.get_running_loop()
        # The thread runs in the call's context, so its log lines carry the
        # request id.
        future = loop.run_in_executor(self._pool, contextvars.copy_context().run, job)
        try:
            return await asyncio.wait_for(future, max(limit, 0.0))
        except TimeoutError:
            if callers_limit:
                raise DeadlineExceeded(_DEADLINE_PASSED) from None
            raise TimeoutError(f"MLflow did not answer within {limit:.1f} s") from None
        except MlflowException as error:
            # The request's own timeout, cut to the caller's deadline, may
            # fire just before the wait above does: the same deadline.
            if callers_limit and _timed_out(error):
                raise DeadlineExceeded(_DEADLINE_PASSED) from None
            raise

    async def close(self) -> None:
        # Threads still waiting on MLflow finish within the HTTP timeout;
        # nothing waits for them here.
        self._pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(self._rest, KeptAliveRest):
            self._rest.close()

    # The calls below are blocking; run them through `call`.

    def ping(self) -> None:
        self._client.search_experiments(max_results=1)

    def default_experiment_id(self) -> str:
        """The id of MLFLOW_EXPERIMENT_NAME, created when absent."""
        if self._default_experiment_id is None:
            self._default_experiment_id = self._resolve_default_experiment()
        return self._default_experiment_id

    def _resolve_default_experiment(self) -> str:
        name = self._settings.experiment_name
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            experiment_id = self._client.create_experiment(
                name, artifact_location=self._settings.artifact_location
            )
            log.info("created the default experiment %r (id %s)", name, experiment_id)
            return str(experiment_id)
        except MlflowException as error:
            if _error_code(error) != _EXISTS:
                raise
        # Another process created it between our lookup and our create.
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            raise MlflowException(f"experiment {name!r} exists yet cannot be read")
        return str(experiment.experiment_id)

    def get_run(self, run_id: str) -> RunRow:
        try:
            if self._get_run is not None:
                return self._get_run(run_id)
            return row_of(self._client.get_run(run_id))
        except MlflowException as error:
            if _error_code(error) == _NOT_FOUND:
                raise RunNotFound(run_id) from None
            raise

    def search_runs(
        self,
        filter_string: str,
        max_results: int,
        order_by: Sequence[str] = ("attributes.start_time DESC",),
        page_token: str | None = None,
    ) -> RunsPage:
        """A page of runs of the default experiment in `order_by` (newest
        first by default), with MLflow's token of the next page."""
        experiment_ids = [self.default_experiment_id()]
        if self._post_search is not None:
            return self._post_search(
                search_body(experiment_ids, filter_string, max_results, order_by, page_token)
            )
        runs = self._client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=max_results,
            order_by=list(order_by),
            page_token=page_token,
        )
        return RunsPage([row_of(run) for run in runs], runs.token)

    def find_runs(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        """The runs that exist among `run_ids`, deleted ones included, in one
        search of the default experiment; ids not found there are looked for
        across every other experiment in one more search."""
        found = self._search_ids([self.default_experiment_id()], run_ids)
        missing = [run_id for run_id in run_ids if run_id not in found]
        if missing:
            others = [
                str(e.experiment_id)
                for e in self._all_experiments(ViewType.ALL)
                if str(e.experiment_id) != self.default_experiment_id()
            ]
            if others:
                found.update(self._search_ids(others, missing))
        return found

    def _search_ids(self, experiment_ids: list[str], run_ids: Sequence[str]) -> dict[str, RunRow]:
        # Run ids are checked against MLflow's own id rule before they get
        # here (letters, digits, '_' and '-'), so quoting them is safe.
        quoted = ", ".join(f"'{run_id}'" for run_id in run_ids)
        filter_string = f"attributes.run_id IN ({quoted})"
        if self._post_search is not None:
            # Over REST the rows also say at which step each metric's latest
            # value is, which tells the compare whose histories to read.
            body = search_body(experiment_ids, filter_string, len(run_ids), (), None, "ALL")
            return {row.run_id: row for row in self._post_search(body).runs}
        runs = self._client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            run_view_type=ViewType.ALL,
            max_results=len(run_ids),
        )
        return {run.info.run_id: row_of(run) for run in runs}

    def metric_histories(self, run_ids: Sequence[str], key: str) -> History:
        """One metric's steps in every run of `run_ids` that logged it: one
        request for all of them to a tracking server (MLflow's bulk
        endpoint), in-process reads over the embedded store."""
        if self._rest is not None:
            return history_of_answer(
                self._rest("GET", HISTORY_ENDPOINT, params=bulk_query(run_ids, key))
            )
        points = [
            (run_id, metric.step, metric.timestamp, metric.value)
            for run_id in run_ids
            for metric in self._client.get_metric_history(run_id, key)
        ]
        return History(steps_of(points))

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged value of one metric; RunNotFound for an unknown run
        (MLflow itself answers an empty history)."""
        history = self._client.get_metric_history(run_id, key)
        if not history:
            self.get_run(run_id)
        return sorted(history, key=lambda m: (m.step, m.timestamp))

    def list_experiments(self) -> list[Experiment]:
        return self._all_experiments(ViewType.ALL)

    def _all_experiments(self, view_type: int) -> list[Experiment]:
        experiments: list[Experiment] = []
        token: str | None = None
        while True:
            page = self._client.search_experiments(view_type=view_type, page_token=token)
            experiments.extend(page)
            token = page.token
            if not token:
                return experiments


def _prepare_local_store(tracking_uri: str) -> None:
    """MLflow creates a SQLite store's file but not its folder."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        path = tracking_uri[len(prefix) :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
