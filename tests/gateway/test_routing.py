"""The Router over bindings read from real descriptors: the backbone's two
services and the test-time `demo.widgets.v1.WidgetService`."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from gateway.bindings import Binding, bindings_for
from gateway.routing import Match, PathError, Router, WrongMethod
from research.experiments.v1 import experiments_pb2
from research.tracking.v1 import tracking_pb2
from tests.gateway.widgets_proto import widgets_module

EXPERIMENTS = experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"]
TRACKING = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"]


def backbone_bindings() -> list[Binding]:
    return [*bindings_for(EXPERIMENTS, "experiments"), *bindings_for(TRACKING, "tracking")]


@pytest.fixture(scope="module")
def widgets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with widgets_module(tmp_path_factory.mktemp("widgets")) as module:
        yield module


@pytest.fixture(scope="module")
def widget_bindings(widgets: ModuleType) -> list[Binding]:
    return bindings_for(widgets.DESCRIPTOR.services_by_name["WidgetService"], "widgets")


@pytest.fixture(scope="module")
def router() -> Router[Binding]:
    return Router(backbone_bindings())


def routed(router: Router[Binding], method: str, path: str) -> tuple[str, dict[str, str]]:
    """(gRPC method full name, variables) of a path that must match."""
    found = router.match(method, path)
    assert isinstance(found, Match), found
    return found.route.method.full_name, found.variables


# --- the backbone's routes -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "rpc", "variables"),
    [
        ("POST", "/api/v1/experiments", "CreateExperiment", {}),
        ("GET", "/api/v1/experiments", "ListExperiments", {}),
        ("GET", "/api/v1/experiments/e1", "GetExperiment", {"experiment_id": "e1"}),
        ("PATCH", "/api/v1/experiments/e1", "UpdateExperiment", {"experiment_id": "e1"}),
        ("DELETE", "/api/v1/experiments/e1", "DeleteExperiment", {"experiment_id": "e1"}),
        ("POST", "/api/v1/experiments/compare", "CompareExperiments", {}),
        ("POST", "/api/v1/experiments/import", "ImportRun", {}),
        ("POST", "/api/v1/experiments/e1:undelete", "UndeleteExperiment", {"experiment_id": "e1"}),
        ("POST", "/api/v1/experiments/e1:undelete/", "UndeleteExperiment", {"experiment_id": "e1"}),
        # Without the verb's method the ':' is the id's (GetExperiment says 400).
        (
            "GET",
            "/api/v1/experiments/e1:undelete",
            "GetExperiment",
            {"experiment_id": "e1:undelete"},
        ),
        (
            "DELETE",
            "/api/v1/experiments/e1:undelete",
            "DeleteExperiment",
            {"experiment_id": "e1:undelete"},
        ),
        (
            "GET",
            "/api/v1/experiments/e1/revisions",
            "ListExperimentRevisions",
            {"experiment_id": "e1"},
        ),
        (
            "GET",
            "/api/v1/experiments/e1/revisions/2",
            "GetExperimentRevision",
            {"experiment_id": "e1", "revision": "2"},
        ),
    ],
)
def test_experiment_routes(
    router: Router[Binding], method: str, path: str, rpc: str, variables: dict[str, str]
) -> None:
    assert routed(router, method, path) == (
        f"research.experiments.v1.ExperimentService.{rpc}",
        variables,
    )


@pytest.mark.parametrize(
    ("method", "path", "rpc", "variables"),
    [
        ("GET", "/api/v1/tracking/runs", "ListRuns", {}),
        ("GET", "/api/v1/tracking/runs/r1", "GetRun", {"run_id": "r1"}),
        ("GET", "/api/v1/tracking/runs/r1/metrics", "GetRunMetrics", {"run_id": "r1"}),
        (
            "GET",
            "/api/v1/tracking/runs/r1/metrics/sharpe/history",
            "GetMetricHistory",
            {"run_id": "r1", "metric_key": "sharpe"},
        ),
        ("GET", "/api/v1/tracking/runs/r1/params", "GetRunParams", {"run_id": "r1"}),
        ("POST", "/api/v1/tracking/runs/compare", "CompareRuns", {}),
        ("GET", "/api/v1/tracking/experiments", "ListExperiments", {}),
    ],
)
def test_tracking_routes(
    router: Router[Binding], method: str, path: str, rpc: str, variables: dict[str, str]
) -> None:
    assert routed(router, method, path) == (
        f"research.tracking.v1.TrackingService.{rpc}",
        variables,
    )


def test_every_annotated_method_is_routed(router: Router[Binding]) -> None:
    assert sorted(f"{b.http_method} {b.template.source}" for b in router.routes) == [
        "DELETE /api/v1/experiments/{experiment_id}",
        "GET /api/v1/experiments",
        "GET /api/v1/experiments/{experiment_id}",
        "GET /api/v1/experiments/{experiment_id}/revisions",
        "GET /api/v1/experiments/{experiment_id}/revisions/{revision}",
        "GET /api/v1/tracking/experiments",
        "GET /api/v1/tracking/runs",
        "GET /api/v1/tracking/runs/{run_id}",
        "GET /api/v1/tracking/runs/{run_id}/metrics",
        "GET /api/v1/tracking/runs/{run_id}/metrics/{metric_key}/history",
        "GET /api/v1/tracking/runs/{run_id}/params",
        "PATCH /api/v1/experiments/{experiment_id}",
        "POST /api/v1/experiments",
        "POST /api/v1/experiments/compare",
        "POST /api/v1/experiments/import",
        "POST /api/v1/experiments/{experiment_id}:undelete",
        "POST /api/v1/tracking/runs/compare",
    ]


def test_a_custom_verb_is_a_route_of_its_own(router: Router[Binding]) -> None:
    # The verb's route has POST only; the plain route of that shape has no
    # POST: each reading says what it has.
    assert router.match("PUT", "/api/v1/experiments/e1:undelete") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH", "POST"), "/api/v1/experiments/{experiment_id}:undelete"
    )
    assert router.match("POST", "/api/v1/experiments/e1") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH"), "/api/v1/experiments/{experiment_id}"
    )
    assert router.match("POST", "/api/v1/experiments/e1:delete") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH"), "/api/v1/experiments/{experiment_id}"
    )


@pytest.mark.parametrize("reverse", [False, True])
def test_literal_segment_wins_over_variable_in_any_binding_order(reverse: bool) -> None:
    bindings = backbone_bindings()
    router = Router(list(reversed(bindings)) if reverse else bindings)
    assert routed(router, "POST", "/api/v1/experiments/compare") == (
        "research.experiments.v1.ExperimentService.CompareExperiments",
        {},
    )
    assert routed(router, "POST", "/api/v1/tracking/runs/compare") == (
        "research.tracking.v1.TrackingService.CompareRuns",
        {},
    )
    assert routed(router, "GET", "/api/v1/experiments/comparison") == (
        "research.experiments.v1.ExperimentService.GetExperiment",
        {"experiment_id": "comparison"},
    )
    # The literal route decides the path: another method there is 405, not
    # GetExperiment("compare").
    assert router.match("GET", "/api/v1/experiments/compare") == WrongMethod(
        ("POST",), "/api/v1/experiments/compare"
    )


def test_trailing_slash_matches_the_same_route(router: Router[Binding]) -> None:
    assert routed(router, "GET", "/api/v1/experiments/") == (
        "research.experiments.v1.ExperimentService.ListExperiments",
        {},
    )
    assert routed(router, "GET", "/api/v1/tracking/runs/r1/metrics/") == (
        "research.tracking.v1.TrackingService.GetRunMetrics",
        {"run_id": "r1"},
    )
    assert routed(router, "POST", "/api/v1/experiments/compare/") == (
        "research.experiments.v1.ExperimentService.CompareExperiments",
        {},
    )


def test_two_trailing_slashes_do_not_match(router: Router[Binding]) -> None:
    assert router.match("GET", "/api/v1/experiments//") is None


def test_encoded_slash_stays_inside_the_variable(router: Router[Binding]) -> None:
    assert routed(router, "GET", "/api/v1/tracking/runs/r1/metrics/a%2Fb/history") == (
        "research.tracking.v1.TrackingService.GetMetricHistory",
        {"run_id": "r1", "metric_key": "a/b"},
    )
    # An encoded slash is not a separator: this is no route.
    assert router.match("GET", "/api/v1/experiments%2Fe1") is None


def test_variables_are_percent_decoded(router: Router[Binding]) -> None:
    assert routed(
        router, "GET", "/api/v1/tracking/runs/r%201/metrics/caf%C3%A9%3A%E2%82%AC/history"
    )[1] == {"run_id": "r 1", "metric_key": "café:€"}
    assert routed(router, "GET", "/api/v1/experiments/%7Bx%7D") == (
        "research.experiments.v1.ExperimentService.GetExperiment",
        {"experiment_id": "{x}"},
    )


def test_encoded_literal_segments_match_decoded(router: Router[Binding]) -> None:
    assert routed(router, "GET", "/api/v1/experiment%73") == (
        "research.experiments.v1.ExperimentService.ListExperiments",
        {},
    )


@pytest.mark.parametrize("path", ["/api/v1/experiments/%FF", "/api/v1/experiments/%C3%28"])
def test_invalid_utf8_is_a_path_error(router: Router[Binding], path: str) -> None:
    with pytest.raises(PathError) as caught:
        router.match("GET", path)
    assert str(caught.value) == "the path is not valid UTF-8 once percent-decoded"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1//experiments",
        "/api//v1/experiments/e1",
        "/api/v1/experiments//e1",
        "/api/v1/tracking/runs//metrics",
        "//api/v1/experiments",
    ],
)
def test_empty_segment_matches_nothing(router: Router[Binding], path: str) -> None:
    assert router.match("GET", path) is None


def test_wrong_method_lists_the_allowed_methods_sorted(router: Router[Binding]) -> None:
    assert router.match("PUT", "/api/v1/experiments/e1") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH"), "/api/v1/experiments/{experiment_id}"
    )
    assert router.match("DELETE", "/api/v1/experiments") == WrongMethod(
        ("GET", "HEAD", "POST"), "/api/v1/experiments"
    )
    assert router.match("POST", "/api/v1/tracking/runs/r1") == WrongMethod(
        ("GET", "HEAD"), "/api/v1/tracking/runs/{run_id}"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/v1",
        "/api/v2/experiments",
        "/api/v1/experiments/e1/extra",
        "/api/v1/tracking/runs/r1/metrics/m",
        "api/v1/experiments",
    ],
)
def test_unknown_path_is_none(router: Router[Binding], path: str) -> None:
    assert router.match("GET", path) is None


def test_duplicate_binding_is_rejected() -> None:
    bindings = bindings_for(EXPERIMENTS, "experiments")
    with pytest.raises(ValueError, match="bound twice") as caught:
        Router([*bindings, *bindings_for(EXPERIMENTS, "copy")])
    assert str(caught.value) == (
        "POST /api/v1/experiments is bound twice: "
        "research.experiments.v1.ExperimentService.CreateExperiment and "
        "research.experiments.v1.ExperimentService.CreateExperiment"
    )


def test_same_shape_with_other_variable_names_is_a_duplicate(
    widget_bindings: list[Binding],
) -> None:
    # GET /v1/shelves/{shelf}/widgets/{widget.name} and the same path with
    # other names match exactly the same requests.
    get = next(b for b in widget_bindings if b.method.name == "GetWidget")
    delete = next(b for b in widget_bindings if b.method.name == "DeleteWidget")
    renamed = Binding(
        upstream=delete.upstream,
        http_method="GET",
        template=delete.template,
        rpc_path=delete.rpc_path,
        method=delete.method,
        request_class=delete.request_class,
        response_class=delete.response_class,
        body=delete.body,
        response_body=delete.response_body,
        response=delete.response,
    )
    with pytest.raises(ValueError, match="bound twice") as caught:
        Router([get, renamed])
    assert str(caught.value) == (
        "GET /v1/shelves/{shelf}/widgets/{name} is bound twice: "
        "demo.widgets.v1.WidgetService.GetWidget and "
        "demo.widgets.v1.WidgetService.DeleteWidget"
    )


# --- a service the gateway has never seen ------------------------------------


def test_widget_bindings_come_from_the_annotations(widget_bindings: list[Binding]) -> None:
    assert [
        (b.http_method, b.template.source, b.method.name, b.body, b.response_body)
        for b in widget_bindings
    ] == [
        ("GET", "/v1/shelves/{shelf}/widgets/{widget.name}", "GetWidget", None, "widget"),
        ("GET", "/v1/widgets/{widget.name}", "GetWidget", None, None),
        ("PATCH", "/v1/shelves/{shelf}/widgets/{widget.name}", "UpdateWidget", "widget", None),
        ("DELETE", "/v1/shelves/{shelf}/widgets/{name}", "DeleteWidget", None, None),
        ("GET", "/v1/shelves/{shelf}/widgets/featured", "ListFeatured", None, None),
        ("GET", "/v1/shelves/{shelf}/widgets", "ListWidgets", None, "widgets"),
        ("POST", "/v1/shelves/{shelf}/widgets", "CreateWidget", "*", None),
        ("POST", "/v1/shelves/{shelf}/widgets:tag", "TagWidgets", "names", None),
        ("POST", "/v1/shelves/{shelf}/widgets/{name}:cancel", "CancelWidget", "*", None),
        ("SEARCH", "/v1/{path=shelves/**}", "SearchWidgets", "filter", None),
        ("POST", "/v1/widgets:import", "ImportWidget", "*", "widget"),
        ("POST", "/v1/failures", "Fail", "*", None),
        ("GET", "/v1/versioned/{name}", "GetVersioned", None, "versioned"),
        ("PATCH", "/v1/versioned/{versioned.name}", "UpdateVersioned", "versioned", None),
        ("DELETE", "/v1/versioned/{name}", "DeleteVersioned", None, None),
        ("POST", "/v1/versioned/{name}:restore", "RestoreVersioned", "*", None),
        ("GET", "/v1/versioned/{name}/versions/{version}", "GetVersion", None, None),
    ]
    assert {b.rpc_path for b in widget_bindings if b.method.name == "GetWidget"} == {
        "/demo.widgets.v1.WidgetService/GetWidget"
    }


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    ("method", "path", "rpc", "variables"),
    [
        ("GET", "/v1/shelves/s1/widgets/w1", "GetWidget", {"shelf": "s1", "widget.name": "w1"}),
        ("GET", "/v1/widgets/w1", "GetWidget", {"widget.name": "w1"}),
        (
            "PATCH",
            "/v1/shelves/s1/widgets/w1",
            "UpdateWidget",
            {"shelf": "s1", "widget.name": "w1"},
        ),
        ("DELETE", "/v1/shelves/s1/widgets/w1", "DeleteWidget", {"shelf": "s1", "name": "w1"}),
        ("GET", "/v1/shelves/s1/widgets/featured", "ListFeatured", {"shelf": "s1"}),
        ("GET", "/v1/shelves/s1/widgets", "ListWidgets", {"shelf": "s1"}),
        ("POST", "/v1/shelves/s1/widgets", "CreateWidget", {"shelf": "s1"}),
        ("POST", "/v1/shelves/s1/widgets:tag", "TagWidgets", {"shelf": "s1"}),
        ("POST", "/v1/shelves/s1/widgets/w1:cancel", "CancelWidget", {"shelf": "s1", "name": "w1"}),
        # Without the verb's method, the ':' is part of the name.
        (
            "GET",
            "/v1/shelves/s1/widgets/w1:cancel",
            "GetWidget",
            {"shelf": "s1", "widget.name": "w1:cancel"},
        ),
        # An encoded ':' is never a verb separator.
        ("POST", "/v1/shelves/s1/widgets/w1%3Acancel", None, None),
        ("SEARCH", "/v1/shelves/a/b/c", "SearchWidgets", {"path": "shelves/a/b/c"}),
        ("SEARCH", "/v1/shelves", "SearchWidgets", {"path": "shelves"}),
        ("POST", "/v1/widgets:import", "ImportWidget", {}),
        ("POST", "/v1/failures", "Fail", {}),
    ],
)
def test_widget_routes(
    widget_bindings: list[Binding],
    reverse: bool,
    method: str,
    path: str,
    rpc: str | None,
    variables: dict[str, str] | None,
) -> None:
    router = Router(list(reversed(widget_bindings)) if reverse else widget_bindings)
    if rpc is None:
        found = router.match(method, path)
        assert isinstance(found, WrongMethod)
        assert found.allowed == ("DELETE", "GET", "HEAD", "PATCH")
    else:
        assert routed(router, method, path) == (f"demo.widgets.v1.WidgetService.{rpc}", variables)


def test_widget_wrong_methods(widget_bindings: list[Binding]) -> None:
    router = Router(widget_bindings)
    assert router.match("PUT", "/v1/shelves/s1/widgets/w1") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH"), "/v1/shelves/{shelf}/widgets/{widget.name}"
    )
    assert router.match("DELETE", "/v1/shelves/s1/widgets/featured") == WrongMethod(
        ("GET", "HEAD"), "/v1/shelves/{shelf}/widgets/featured"
    )
    # Both readings of "w1:cancel" exist; neither has PUT: every method of both.
    assert router.match("PUT", "/v1/shelves/s1/widgets/w1:cancel") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH", "POST"), "/v1/shelves/{shelf}/widgets/{name}:cancel"
    )
    assert router.match("GET", "/v1/widgets:import") == WrongMethod(("POST",), "/v1/widgets:import")
    assert router.match("GET", "/v1/shelves/a/b") == WrongMethod(
        ("SEARCH",), "/v1/{path=shelves/**}"
    )


def test_widget_unknown_paths(widget_bindings: list[Binding]) -> None:
    router = Router(widget_bindings)
    assert router.match("GET", "/v1/shelf/s1/widgets") is None
    # The `**` route covers everything under /v1/shelves, for SEARCH only.
    assert router.match("GET", "/v1/shelves/s1/gadgets") == WrongMethod(
        ("SEARCH",), "/v1/{path=shelves/**}"
    )
    assert router.match("POST", "/v1/widgets:export") is None
    # No route has the verb "archive": the ':' is part of the name.
    assert router.match("POST", "/v1/shelves/s1/widgets/w1:archive") == WrongMethod(
        ("DELETE", "GET", "HEAD", "PATCH"), "/v1/shelves/{shelf}/widgets/{widget.name}"
    )
    assert router.match("GET", "/v1/widgets") is None
