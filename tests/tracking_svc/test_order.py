"""ListRuns' order and paging over many runs (CONTRACT §10), on the
session's real `mlflow server` holding 260 runs of their own experiment:
any filter, any order and any page size page to exactly the runs of a
reference evaluation in Python and of one unpaged MLflow search, with no
duplicates; runs started while a client pages in the default order shift
nothing; the 400s name `order_by`."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from research.tracking.v1 import tracking_pb2 as pb
from research.tracking.v1 import tracking_pb2_grpc
from research_common.filters import parse
from research_common.ordering import Directions
from research_common.ordering import parse as parse_order
from research_common.server import GrpcServer
from testbed.mlflow_server import MlflowServer
from tests.fixtures.grpc import assert_invalid, rpc_error
from tests.tracking_svc.conftest import started
from tracking_svc.config import Settings
from tracking_svc.filtering import FIELDS, compile_filter
from tracking_svc.ordering import BEST_OF, mlflow_order_by
from tracking_svc.ordering import FIELDS as ORDER_FIELDS

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub

RUNS = 260
T0 = 1_600_000_000_000  # 2020: every run started now is newer
RUN_TYPES = ("training", "walk_forward", "backtest")
PARAM_VALUES = ("p1", "p2", "p10")
_MISSING = object()
Run = dict[str, Any]


class Many:
    """The runs of the experiment, as logged (a plain class: hypothesis
    prints a dataclass argument field by field, 50 kB of runs)."""

    def __init__(self, experiment_name: str, experiment_id: str, runs: list[Run]) -> None:
        self.experiment_name = experiment_name
        self.experiment_id = experiment_id
        # run_id, start_time, end_time, run_type, a, b, x
        self.runs = tuple(runs)

    def __repr__(self) -> str:
        return f"Many({self.experiment_name!r}, {len(self.runs)} runs)"


@pytest.fixture(scope="session")
def many_runs(mlflow_server: MlflowServer) -> Many:
    """260 runs: start times with ties (20 distinct), an `a` metric that is
    a number, NaN or missing, a `b` metric always a number, an `x` param
    present or missing, a run_type tag, and an end time on most."""
    client = MlflowClient(tracking_uri=mlflow_server.url)
    name = f"many-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    rng = random.Random(3)
    runs = []
    for _ in range(RUNS):
        start = T0 + rng.randrange(20) * 1000
        run_type = rng.choice(RUN_TYPES)
        a = rng.choice([_MISSING, math.nan, -1.0, 0.0, 0.5, 2.0, 2.0, 7.5])
        b = float(rng.randrange(10))
        x = rng.choice([_MISSING, *PARAM_VALUES])
        run = client.create_run(experiment_id, start_time=start, tags={"run_type": run_type})
        run_id = run.info.run_id
        metrics = [Metric("b", b, start, 0)]
        if a is not _MISSING:
            metrics.append(Metric("a", a, start, 0))  # type: ignore[arg-type]
        params = [] if x is _MISSING else [Param("x", x)]  # type: ignore[arg-type]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag("i", "1")])
        end = None
        if rng.random() < 0.8:
            end = start + rng.randrange(5) * 1000
            client.set_terminated(run_id, end_time=end)
        runs.append(
            {"run_id": run_id, "start_time": start, "end_time": end, "run_type": run_type}
            | {"a": a, "b": b, "x": x}
        )
    return Many(name, experiment_id, runs)


@pytest.fixture
async def many_stub(
    many_runs: Many, mlflow_server: MlflowServer
) -> AsyncIterator[TrackingServiceAsyncStub]:
    """tracking_svc over the experiment of the 260 runs."""
    server: GrpcServer = await started(
        Settings(tracking_uri=mlflow_server.url, experiment_name=many_runs.experiment_name)
    )
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield tracking_pb2_grpc.TrackingServiceStub(channel)
    finally:
        await server.stop(0)


# --- the reference -----------------------------------------------------------------


def _rank_and_value(run: dict[str, Any], name: str) -> tuple[int, Any]:
    """MLflow's order of one key: present values, then (metrics) NaN, then
    missing; the value is sorted only among the present ones."""
    if name in ("start_time", "end_time"):
        value = run[name]
        return (1, 0) if value is None else (0, value)
    kind, _, key = name.partition(".")
    value = run[key]
    blank = "" if kind == "params" else 0.0  # sorts with the other values
    if value is _MISSING:
        return 2, blank
    if isinstance(value, float) and math.isnan(value):
        return 1, blank
    return 0, value


def reference(runs: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[str]:
    """Stable sorts from the last part to the first: the run id (MLflow's
    final tie-break, ascending), the start time newest first unless it is a
    key, then every key's value and rank."""
    result = sorted(runs, key=lambda run: run["run_id"])
    if "start_time" not in [name for name, _ in keys]:
        result.sort(key=lambda run: run["start_time"], reverse=True)
    for name, descending in reversed(keys):
        parts = {run["run_id"]: _rank_and_value(run, name) for run in result}
        result.sort(key=lambda run: parts[run["run_id"]][1], reverse=descending)
        result.sort(key=lambda run: parts[run["run_id"]][0])
    return [run["run_id"] for run in result]


def matches(run: dict[str, Any], comparisons: list[tuple[str, str, Any]]) -> bool:
    for name, op, value in comparisons:
        stored = run[name.partition(".")[2] or name]
        if stored is _MISSING or (isinstance(stored, float) and math.isnan(stored)):
            return False
        if not {"=": stored == value, ">": stored > value, "<=": stored <= value}[op]:
            return False
    return True


# --- random queries ------------------------------------------------------------------

COMPARISONS = st.lists(
    st.one_of(
        st.tuples(st.just("run_type"), st.just("="), st.sampled_from(RUN_TYPES)),
        st.tuples(st.just("metrics.b"), st.sampled_from([">", "<="]), st.integers(0, 9)),
        st.tuples(st.just("params.x"), st.just("="), st.sampled_from(PARAM_VALUES)),
    ),
    max_size=2,
    unique_by=lambda c: c[0],
)
ORDERS = st.lists(
    st.tuples(
        st.sampled_from(["start_time", "end_time", "metrics.a", "metrics.b", "params.x"]),
        st.sampled_from(["asc", "desc", ""]),
    ),
    min_size=1,
    max_size=2,
    unique_by=lambda k: k[0],
)


def _filter_text(comparisons: list[tuple[str, str, Any]]) -> str:
    def value(v: Any) -> str:
        return f'"{v}"' if isinstance(v, str) else str(v)

    return " AND ".join(f"{name} {op} {value(v)}" for name, op, v in comparisons)


async def walk(stub: TrackingServiceAsyncStub, token: str = "", **query: Any) -> list[str]:
    """Every run of the query, page after page from `token`; fails rather
    than loops when the tokens never end."""
    seen: list[str] = []
    for _ in range(RUNS + 2):
        page = await stub.ListRuns(pb.ListRunsRequest(page_token=token, **query))
        seen += [run.run_id for run in page.runs]
        token = page.next_page_token
        if not token:
            return seen
    pytest.fail(f"more pages than runs: {query}")


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(comparisons=COMPARISONS, order=ORDERS, page_size=st.integers(5, 100))
async def test_paging_any_filter_and_order_gives_the_reference_runs(
    many_stub: TrackingServiceAsyncStub,
    many_runs: Many,
    mlflow_server: MlflowServer,
    comparisons: list[tuple[str, str, Any]],
    order: list[tuple[str, str]],
    page_size: int,
) -> None:
    text = _filter_text(comparisons)
    order_by = ", ".join(f"{name} {word}".strip() for name, word in order)
    runs = [run for run in many_runs.runs if matches(run, comparisons)]
    expected = reference(runs, [(name, word == "desc") for name, word in order])
    # One unpaged MLflow search of the same compiled query says the same.
    tree = parse(text, FIELDS)
    keys = parse_order(order_by, ORDER_FIELDS, BEST_OF, Directions("maximize"))
    unpaged = MlflowClient(tracking_uri=mlflow_server.url).search_runs(
        [many_runs.experiment_id],
        filter_string=" and ".join(compile_filter(tree)) if tree else "",
        order_by=mlflow_order_by(keys),
        max_results=1000,
    )
    assert [run.info.run_id for run in unpaged] == expected, (text, order_by)
    found = await walk(many_stub, filter=text, order_by=order_by, page_size=page_size)
    assert found == expected, (text, order_by, page_size)


async def test_the_default_order_pages_by_keyset_through_ties(
    many_stub: TrackingServiceAsyncStub, many_runs: Many
) -> None:
    expected = reference(list(many_runs.runs), [("start_time", True)])
    # 20 distinct start times for 260 runs: every page boundary cuts a tie.
    for size in (1, 7, 100):
        assert await walk(many_stub, page_size=size) == expected, size


async def test_runs_started_while_paging_shift_nothing(
    many_stub: TrackingServiceAsyncStub, many_runs: Many, mlflow_server: MlflowServer
) -> None:
    expected = reference(list(many_runs.runs), [("start_time", True)])
    client = MlflowClient(tracking_uri=mlflow_server.url)
    first = await many_stub.ListRuns(pb.ListRunsRequest(page_size=9))
    stop = threading.Event()
    started_ids: list[str] = []

    def start_runs() -> None:
        # Newer than every run: what a pipeline logging now does.
        while not stop.is_set():
            run = client.create_run(many_runs.experiment_id, tags={"run_type": "training"})
            started_ids.append(run.info.run_id)

    writer = threading.Thread(target=start_runs)
    writer.start()
    try:
        rest = await walk(many_stub, first.next_page_token, page_size=9)
    finally:
        stop.set()
        await asyncio.to_thread(writer.join)
        for run_id in started_ids:
            client.delete_run(run_id)
    assert started_ids  # runs did start while the client paged
    assert [run.run_id for run in first.runs] + rest == expected


async def test_best_orders_a_sharpe_highest_first_and_minimize_overrides(
    many_stub: TrackingServiceAsyncStub, many_runs: Many
) -> None:
    runs = list(many_runs.runs)
    highest = reference(runs, [("metrics.b", True)])
    assert await walk(many_stub, order_by="metrics.b best", page_size=100) == highest
    lowest = reference(runs, [("metrics.b", False)])
    found = await walk(many_stub, order_by="metrics.b best", minimize=["b"], page_size=100)
    assert found == lowest


async def test_a_token_is_bound_to_its_order(many_stub: TrackingServiceAsyncStub) -> None:
    first = await many_stub.ListRuns(pb.ListRunsRequest(order_by="metrics.b desc", page_size=5))
    other = pb.ListRunsRequest(order_by="metrics.b asc", page_token=first.next_page_token)
    assert_invalid(await rpc_error(many_stub.ListRuns(other)), "page_token", "another query")
    default = pb.ListRunsRequest(page_token=first.next_page_token)
    assert_invalid(await rpc_error(many_stub.ListRuns(default)), "page_token", "another query")


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ("created_at", "order_by names an unknown field 'created_at' at position 1; known"),
        ("params.x best", "order_by orders params.x by best at position 10"),
        ("metrics.a sideways", "order_by has an unknown word 'sideways' at position 11"),
        ("start_time, start_time", "order_by names 'start_time' more than once"),
    ],
)
async def test_a_bad_order_is_invalid_argument_naming_it(
    many_stub: TrackingServiceAsyncStub, order_by: str, message: str
) -> None:
    error = await rpc_error(many_stub.ListRuns(pb.ListRunsRequest(order_by=order_by)))
    assert_invalid(error, "order_by", message)
