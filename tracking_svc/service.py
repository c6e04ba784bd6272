"""TrackingService: the RPC handlers. MLflow is reached only through
`backend`; inputs are checked by `validation` first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from grpc import aio

from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from research_common import diff, ordering
from research_common import filters as filters_language
from research_common.constants import MLFLOW_RUN_RESOURCE
from research_common.diff_messages import write_metric_diff, write_value_diff
from research_common.errors import NotFound
from research_common.page_tokens import PageTokens, not_a_token
from tracking_svc import convert
from tracking_svc import validation as check
from tracking_svc.backend import RunNotFound, TrackingBackend
from tracking_svc.filtering import FIELDS, compile_filter
from tracking_svc.folds import write_fold_statistics
from tracking_svc.histories import keys_with_steps
from tracking_svc.lineage import LINEAGE_TAGS
from tracking_svc.ordering import BEST_OF, mlflow_order_by
from tracking_svc.ordering import DEFAULT as DEFAULT_ORDER
from tracking_svc.ordering import FIELDS as ORDER_FIELDS
from tracking_svc.run_search import RunRow

Context = aio.ServicerContext[Any, Any]
T = TypeVar("T")

RUN_NOT_FOUND = "Run not found"
# Marks a position that is MLflow's own page token (orders other than the
# default).
_MLFLOW = "mlflow"


def _deadline(context: Context) -> float | None:
    """The call's deadline on the time.monotonic() clock, if it has one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _run_not_found(run_ids: list[str]) -> NotFound:
    message = f"{RUN_NOT_FOUND}: {', '.join(run_ids)}"
    return NotFound.resources(message, MLFLOW_RUN_RESOURCE, run_ids)


def _position(position: list[Any]) -> tuple[int, list[str]]:
    """(start_time, run ids seen at it) from a checked page token."""
    try:
        before, seen = position
        if not isinstance(before, int) or not all(isinstance(i, str) for i in seen):
            raise ValueError("not a runs position")
        return before, list(seen)
    except (TypeError, ValueError):
        raise not_a_token() from None


def _mlflow_token(position: list[Any]) -> str:
    """MLflow's page token from a checked page token of ours."""
    if len(position) == 2 and position[0] == _MLFLOW and isinstance(position[1], str):
        return position[1]
    raise not_a_token()


def _runs(runs: list[RunRow]) -> tracking_pb2.ListRunsResponse:
    return tracking_pb2.ListRunsResponse(
        runs=[convert.summary(run) for run in runs], total=len(runs)
    )


class TrackingService(tracking_pb2_grpc.TrackingServiceServicer):
    def __init__(self, backend: TrackingBackend, page_tokens: PageTokens) -> None:
        self._backend = backend
        self._page_tokens = page_tokens

    async def _call(self, context: Context, fn: Callable[[], T]) -> T:
        return await self._backend.call(fn, _deadline(context))

    async def ListRuns(
        self, request: tracking_pb2.ListRunsRequest, context: Context
    ) -> tracking_pb2.ListRunsResponse:
        clauses = []
        for name in ("run_type", "strategy_id"):
            if request.HasField(name):
                value = check.filter_value(name, getattr(request, name))
                # Safe to quote: the value is a plain token (FILTER_VALUE).
                clauses.append(f"tags.{name} = '{value}'")
        tree = filters_language.parse(request.filter, FIELDS)
        if tree is not None:
            clauses += compile_filter(tree)
        keys = ordering.parse(
            request.order_by,
            ORDER_FIELDS,
            BEST_OF,
            ordering.Directions(diff.MAXIMIZE, request.maximize, request.minimize),
        )
        size = check.page_size(
            request.limit if request.HasField("limit") else None,
            request.page_size if request.HasField("page_size") else None,
        )
        # What a token is bound to: the filters and the order (the page size
        # may change).
        query: dict[str, Any] = {"clauses": clauses}
        if keys in ((), DEFAULT_ORDER):
            return await self._newest_first(context, request.page_token, query, clauses, size)
        query["order_by"] = ordering.canonical(keys)
        mlflow_token = None
        if request.page_token:
            mlflow_token = _mlflow_token(self._page_tokens.decode(request.page_token, query))
        found = await self._call(
            context,
            lambda: self._backend.search_runs(
                " and ".join(clauses), size, mlflow_order_by(keys), mlflow_token
            ),
        )
        response = _runs(found.runs)
        if found.token:
            # MLflow's own token (an offset into its order), bound to the
            # query like every token of ours.
            response.next_page_token = self._page_tokens.encode(query, [_MLFLOW, found.token])
        return response

    async def _newest_first(
        self,
        context: Context,
        page_token: str,
        query: dict[str, Any],
        clauses: list[str],
        size: int,
    ) -> tracking_pb2.ListRunsResponse:
        """A page of the default order, by keyset: the runs started at or
        before the last one seen, less those already seen at that very
        time; runs started meanwhile are newer, so they never shift a page."""
        before: int | None = None
        seen: list[str] = []
        if page_token:
            before, seen = _position(self._page_tokens.decode(page_token, query))
            clauses = [*clauses, f"attributes.start_time <= {before}"]
        # One more than the page says whether there is a next.
        wanted = size + len(seen) + 1
        found = await self._call(
            context, lambda: self._backend.search_runs(" and ".join(clauses), wanted)
        )
        runs = [run for run in found.runs if run.run_id not in seen]
        page = runs[:size]
        response = _runs(page)
        if len(runs) > size:
            last = page[-1].start_time
            at_last = [run.run_id for run in page if run.start_time == last]
            if last == before:
                at_last = [*seen, *at_last]
            response.next_page_token = self._page_tokens.encode(query, [last, at_last])
        return response

    async def GetRun(
        self, request: tracking_pb2.GetRunRequest, context: Context
    ) -> tracking_pb2.GetRunResponse:
        run_id = check.run_id(request.run_id)
        try:
            run = await self._call(context, lambda: self._backend.get_run(run_id))
        except RunNotFound:
            raise _run_not_found([run_id]) from None
        return tracking_pb2.GetRunResponse(run=convert.detail(run))

    async def GetRunMetrics(
        self, request: tracking_pb2.GetRunMetricsRequest, context: Context
    ) -> tracking_pb2.GetRunMetricsResponse:
        run_id = check.run_id(request.run_id)
        try:
            run = await self._call(context, lambda: self._backend.get_run(run_id))
        except RunNotFound:  # documented: an unknown run has no metrics
            return tracking_pb2.GetRunMetricsResponse(run_id=run_id)
        return tracking_pb2.GetRunMetricsResponse(run_id=run_id, metrics=run.metrics)

    async def GetRunParams(
        self, request: tracking_pb2.GetRunParamsRequest, context: Context
    ) -> tracking_pb2.GetRunParamsResponse:
        run_id = check.run_id(request.run_id)
        try:
            run = await self._call(context, lambda: self._backend.get_run(run_id))
        except RunNotFound:  # documented: an unknown run has no parameters
            return tracking_pb2.GetRunParamsResponse(run_id=run_id)
        return tracking_pb2.GetRunParamsResponse(run_id=run_id, params=run.params)

    async def GetMetricHistory(
        self, request: tracking_pb2.GetMetricHistoryRequest, context: Context
    ) -> tracking_pb2.GetMetricHistoryResponse:
        run_id = check.run_id(request.run_id)
        key = check.metric_key(request.metric_key)
        try:
            history = await self._call(context, lambda: self._backend.metric_history(run_id, key))
        except RunNotFound:
            raise _run_not_found([run_id]) from None
        return tracking_pb2.GetMetricHistoryResponse(
            run_id=run_id, metric_key=key, history=[convert.metric_point(m) for m in history]
        )

    async def CompareRuns(
        self, request: tracking_pb2.CompareRunsRequest, context: Context
    ) -> tracking_pb2.CompareRunsResponse:
        run_ids = check.compare_ids(request.run_ids)
        diff.check_overrides(request.maximize, request.minimize)
        baseline = request.baseline_run_id or None
        if baseline is not None:
            diff.check_baseline("baseline_run_id", baseline, run_ids)
        found = await self._call(context, lambda: self._backend.find_runs(run_ids))
        missing = [run_id for run_id in run_ids if run_id not in found]
        if missing:
            raise _run_not_found(missing)
        rows = [found[run_id] for run_id in run_ids]
        metrics = diff.compare_metrics(
            [(row.run_id, row.metrics) for row in rows],
            maximize=request.maximize,
            minimize=request.minimize,
            default=diff.MAXIMIZE,  # as the tracking API document's example shows
            baseline=baseline,
        )
        response = _comparison(rows, metrics)
        # One request per metric that may have folds, all runs together, in
        # parallel on the backend's pool.
        keys = keys_with_steps(rows)
        histories = await asyncio.gather(
            *(
                self._call(context, partial(self._backend.metric_histories, run_ids, key))
                for key in keys
            )
        )
        directions = {key: metrics[key].direction for key in keys}
        # PBO tries up to 12,870 splits per metric: off the event loop.
        await asyncio.to_thread(
            write_fold_statistics,
            response,
            dict(zip(keys, histories, strict=True)),
            directions,
            run_ids,
            baseline,
        )
        return response

    async def ListExperiments(
        self, request: tracking_pb2.ListExperimentsRequest, context: Context
    ) -> tracking_pb2.ListExperimentsResponse:
        experiments = await self._call(context, self._backend.list_experiments)
        return tracking_pb2.ListExperimentsResponse(
            experiments=[convert.experiment(e) for e in experiments]
        )


def _comparison(
    rows: list[RunRow], metrics: dict[str, diff.MetricComparison]
) -> tracking_pb2.CompareRunsResponse:
    params = diff.compare_values([(row.run_id, row.params) for row in rows])
    lineage = diff.compare_values([(row.run_id, row.tags) for row in rows], LINEAGE_TAGS)
    response = tracking_pb2.CompareRunsResponse(runs=[convert.comparison_row(row) for row in rows])
    write_metric_diff(response.metric_diff, metrics, "best_run_id")
    write_value_diff(response.param_diff, params)
    write_value_diff(response.lineage_diff, lineage)
    return response
