"""The OpenAPI document (`GET /openapi.json`): a valid OpenAPI 3.0.3 document
made from the same bindings the router serves, with every route of
CONTRACT §2 and no other, descriptions from the proto comments, and schemas
that the real responses of the running backbone validate against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.api import annotations_pb2
from openapi_spec_validator import validate

import gateway.docs
from gateway.bindings import bindings_for
from gateway.config import Settings
from gateway.docs import ApiDocs
from gateway.openapi import build_document
from gateway.openapi.comments import default_descriptor_set
from gateway.openapi.parameters import openapi_path
from gateway.server import create_server, default_upstreams
from gateway.templates import parse_template
from gateway.transcoding import build_reply
from gateway.upstreams import Upstreams
from research.http.v1 import response_pb2
from research.tracking.v1 import tracking_pb2 as tr
from research_common.auth import Tokens
from tests.fixtures.stack import Stack
from tests.gateway.openapi_checks import (
    CONTRACT_ROUTES,
    EXPERIMENT,
    body_validator,
    component,
    operations,
    success_statuses,
)
from tests.gateway.widgets_proto import widgets_module

TOKEN = "docs-token.1"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document the gateway serves for the backbone's two services."""
    return ApiDocs(Upstreams(default_upstreams(Settings())).bindings).document


def test_the_document_is_valid_openapi_3_0_3(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.0.3"
    validate(document)


def test_every_contract_route_with_its_success_status(document: dict[str, Any]) -> None:
    found = operations(document)
    for method, path, statuses in CONTRACT_ROUTES:
        assert (method, path) in found, f"{method} {path} is not documented"
        assert success_statuses(found[method, path]) == statuses, (method, path)


def test_no_other_routes(document: dict[str, Any]) -> None:
    assert set(operations(document)) == {(m, p) for m, p, _ in CONTRACT_ROUTES}
    # The gateway's own paths are not part of the API it documents.
    for own in ("/openapi.json", "/docs", "/healthz", "/readyz", "/metrics"):
        assert own not in document["paths"]
    assert "x-custom-method-routes" not in document


def test_descriptions_come_from_the_proto_comments(document: dict[str, Any]) -> None:
    descriptors = default_descriptor_set()
    assert descriptors is not None
    assert descriptors.is_file(), "run `make protos` first"
    create = operations(document)["POST", "/api/v1/experiments"]
    assert create["summary"] == "Records a new experiment."
    assert "Only `strategy_id` is required." in create["description"]
    experiment = component(document, EXPERIMENT)
    assert experiment["description"].startswith("Experiment is one recorded research run")
    assert "Write-once" in experiment["properties"]["strategy_id"]["description"]
    listing = operations(document)["GET", "/api/v1/experiments"]
    limit = next(p for p in listing["parameters"] if p.get("name") == "limit")
    assert "1 to 1000, default 100" in limit["description"]
    tags = {tag["name"]: tag["description"] for tag in document["tags"]}
    assert tags["ExperimentService"].startswith("ExperimentService keeps the audit trail")
    assert tags["TrackingService"].startswith("TrackingService is the platform")


def test_the_experiments_list_is_a_bare_array(document: dict[str, Any]) -> None:
    listing = operations(document)["GET", "/api/v1/experiments"]
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"type": "array", "items": {"$ref": f"#/components/schemas/{EXPERIMENT}"}}


def test_created_answers_name_the_resource(document: dict[str, Any]) -> None:
    found = operations(document)
    create = found["POST", "/api/v1/experiments"]["responses"]["201"]
    assert "Location" in create["headers"]
    imported = found["POST", "/api/v1/experiments/import"]["responses"]
    assert "Location" in imported["201"]["headers"]
    assert "Location" not in imported["200"]["headers"]
    deleted = found["DELETE", "/api/v1/experiments/{experiment_id}"]["responses"]["204"]
    assert "content" not in deleted


def test_entity_tags_and_conditional_headers(document: dict[str, Any]) -> None:
    found = operations(document)
    one = "/api/v1/experiments/{experiment_id}"

    def headers(method: str, path: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in found[method, path]["parameters"] if p.get("in") == "header"}

    # Every answer that carries one experiment sends its ETag.
    for method, path, status in [
        ("POST", "/api/v1/experiments", "201"),
        ("GET", one, "200"),
        ("PATCH", one, "200"),
        ("POST", "/api/v1/experiments/import", "200"),
        ("POST", "/api/v1/experiments/import", "201"),
        ("POST", "/api/v1/experiments/{experiment_id}:undelete", "200"),
    ]:
        etag = found[method, path]["responses"][status]["headers"]["ETag"]
        assert "`experiment.etag` in double quotes" in etag["description"], (method, path)
    for method, path in [("GET", "/api/v1/experiments"), ("DELETE", one)]:
        for answer in found[method, path]["responses"].values():
            assert "ETag" not in answer.get("headers", {}), (method, path)
    # GET takes If-None-Match and may answer 304, with no body.
    get = found["GET", one]
    assert set(headers("GET", one)) == {"If-None-Match"}
    not_modified = get["responses"]["304"]
    assert "content" not in not_modified
    assert set(not_modified["headers"]) == {"X-Request-Id", "ETag"}
    assert get["responses"]["409"] == {"$ref": "#/components/responses/Conflict"}
    # PATCH and DELETE take If-Match onto `etag`, which is no query parameter,
    # and their 409 says what a stale tag gets.
    for method in ("PATCH", "DELETE"):
        operation = found[method, one]
        if_match = headers(method, one)["If-Match"]
        assert if_match["required"] is False
        assert "sets the field `etag`" in if_match["description"]
        assert "ABORTED" in if_match["description"]  # the field's comment
        assert "etag" not in {p.get("name") for p in operation["parameters"]}
        assert "304" not in operation["responses"]
        assert operation["responses"]["409"] == {"$ref": "#/components/responses/IfMatchConflict"}
    conflict = document["components"]["responses"]["IfMatchConflict"]
    assert conflict["description"].startswith("`If-Match` does not name the resource's current")
    assert "ABORTED" in conflict["description"]
    # Undelete: body "*" over a request whose only field is the path's.
    undelete = found["POST", "/api/v1/experiments/{experiment_id}:undelete"]
    body = undelete["requestBody"]
    assert body["required"] is False
    assert body["content"]["application/json"]["schema"]["properties"] == {}
    assert not headers("POST", "/api/v1/experiments/{experiment_id}:undelete")
    revision = found["GET", "/api/v1/experiments/{experiment_id}/revisions/{revision}"]
    path_parameters = {p["name"]: p for p in revision["parameters"] if p.get("in") == "path"}
    assert path_parameters["revision"]["schema"] == {"type": "integer", "format": "int64"}


def test_every_error_has_the_one_error_body(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message", "detail", "details"]
    assert error["properties"]["code"]["type"] == "integer"
    assert error["properties"]["details"]["items"]["required"] == ["@type"]
    for (method, path), operation in operations(document).items():
        responses = operation["responses"]
        for status in ("400", "401", "403", "404", "409", "429", "499", "500", "503", "504"):
            assert "$ref" in responses[status], (method, path, status)
        takes_body = "requestBody" in operation
        assert ("413" in responses) is takes_body
        assert ("415" in responses) is takes_body
    for answer in document["components"]["responses"].values():
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}


def test_parameters_and_bodies_follow_the_bindings(document: dict[str, Any]) -> None:
    found = operations(document)
    compare = found["POST", "/api/v1/experiments/compare"]
    body = compare["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"type": "array", "items": {"type": "string"}}  # a bare JSON array
    queries = {p["name"]: p for p in compare["parameters"] if p.get("in") == "query"}
    assert list(queries) == ["maximize", "minimize", "baseline"]
    assert queries["baseline"]["schema"] == {"type": "string"}
    assert queries["maximize"]["schema"]["type"] == "array"
    assert queries["maximize"]["explode"] is True
    listing = found["GET", "/api/v1/experiments"]
    names = {p["name"] for p in listing["parameters"] if p.get("in") == "query"}
    assert names == {
        "strategy_id",
        "skip",
        "limit",
        "page_size",
        "page_token",
        "filter",
        "order_by",
        "maximize",
        "minimize",
        "mlflow_run_id",
        "git_commit_hash",
        "dataset_version",
        "feature_version",
        "model_version",
        "show_deleted",
    }
    assert "metrics.oos_sharpe best" in next(
        p["description"] for p in listing["parameters"] if p["name"] == "order_by"
    )
    patch = found["PATCH", "/api/v1/experiments/{experiment_id}"]
    path_parameters = [p for p in patch["parameters"] if p.get("in") == "path"]
    assert [p["name"] for p in path_parameters] == ["experiment_id"]
    assert [p["name"] for p in patch["parameters"] if p.get("in") == "query"] == ["update_mask"]
    patch_body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert patch_body == {"$ref": f"#/components/schemas/{EXPERIMENT}-Input"}
    # body "*": the whole request is the body, and no query parameter is taken.
    create = found["POST", "/api/v1/experiments"]
    assert not [p for p in create["parameters"] if "name" in p]
    create_body = create["requestBody"]["content"]["application/json"]["schema"]
    assert "strategy_id" in create_body["properties"]
    assert create_body["additionalProperties"] is False


# --- unwrap and every_key ------------------------------------------------------

TRACKING = "research.tracking.v1"
NULL = {"type": "object", "nullable": True, "enum": [None]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_an_unwrapped_message_is_its_field_described_as_the_message(
    document: dict[str, Any],
) -> None:
    numbers = component(document, f"{TRACKING}.RunNumbers")
    assert numbers == {
        # every_key: a run the map lacks is null (a double is, anyway: NaN).
        "type": "object",
        "additionalProperties": {"type": "number", "format": "double", "nullable": True},
        "description": "RunNumbers maps every compared run id to a number, null where there "
        "is\nnone.",
    }
    verdicts = component(document, f"{TRACKING}.RunVerdicts")
    assert verdicts["type"] == "object"
    assert verdicts["additionalProperties"] == {"type": "string"}  # no every_key: never null
    fold_stats = component(document, f"{TRACKING}.MetricFoldStats")
    assert fold_stats == {
        "type": "object",
        "additionalProperties": {"anyOf": [ref(f"{TRACKING}.FoldStats"), NULL]},
        "description": "MetricFoldStats holds every compared run's fold statistics of one metric.",
    }
    paired = component(document, f"{TRACKING}.MetricPaired")
    assert paired["additionalProperties"] == ref(f"{TRACKING}.PairedStats")
    # A message field holding one: null when unset, like any message.
    delta = component(document, f"{TRACKING}.MetricDiff")["properties"]["delta"]
    assert delta["anyOf"] == [ref(f"{TRACKING}.RunNumbers"), NULL]
    assert delta["description"].startswith("Each run's value minus the baseline's")
    experiments = "research.experiments.v1"
    diff = component(document, f"{experiments}.MetricDiff")["properties"]
    assert diff["change_pct"]["anyOf"] == [ref(f"{experiments}.ExperimentNumbers"), NULL]
    assert diff["verdict"]["anyOf"] == [ref(f"{experiments}.ExperimentVerdicts"), NULL]


@pytest.mark.parametrize(
    ("name", "fields", "described"),
    [
        (
            f"{TRACKING}.FoldStats",
            ["folds", "mean", "std", "min", "max", "worst", "positive_share", "skipped"],
            ("mean", "Mean over the folds."),
        ),
        (
            f"{TRACKING}.PairedStats",
            ["n", "wins", "losses", "ties", "mean_diff", "sign_test_p"],
            ("n", "Number of steps both runs have."),
        ),
        (
            f"{TRACKING}.Overfitting",
            ["runs", "steps", "blocks", "combinations", "pbo", "reason"],
            ("reason", "Why `pbo` is null, e.g. fewer than 4 blocks."),
        ),
        (
            "research.experiments.v1.Selection",
            [
                "experiment_id",
                "sharpe",
                "trials",
                "sharpe_variance",
                "expected_max_sharpe",
                "deflated_sharpe",
                "reason",
            ],
            ("sharpe", "Its Sharpe ratio per observation (SR)."),
        ),
    ],
)
def test_the_compare_statistics_are_documented(
    document: dict[str, Any], name: str, fields: list[str], described: tuple[str, str]
) -> None:
    schema = component(document, name)
    assert list(schema["properties"]) == fields
    assert schema["required"] == fields
    assert schema["description"].startswith(name.rsplit(".", 1)[1])
    for field in fields:
        assert schema["properties"][field]["description"], field
    field, text = described
    assert schema["properties"][field]["description"] == text


def test_a_compare_with_every_statistic_validates(document: dict[str, Any]) -> None:
    """The gateway's own rendering of every new figure, nulls included, is
    what the document says (the real services send it in the stack test)."""
    response = tr.CompareRunsResponse()
    diff = response.metric_diff["m"]
    diff.values["a"].number_value = 1.0
    diff.direction, diff.baseline = "maximize", 1.0
    diff.delta.values["b"] = 1.5
    diff.change_pct.values["b"] = 150.0
    diff.verdict.values["a"] = "baseline"
    response.metric_diff["n"].direction = "minimize"  # unset figures: null
    response.fold_stats["m"].runs["a"].folds = 2
    response.paired["m"].runs["b"].mean_diff = 0.5
    response.overfitting["m"].reason = "too few"
    binding = next(
        b
        for b in bindings_for(tr.DESCRIPTOR.services_by_name["TrackingService"], "tracking")
        if b.method.name == "CompareRuns"
    )
    body = build_reply(binding, response, tr.CompareRunsRequest(run_ids=["a", "b"])).body
    assert body["metric_diff"]["m"]["delta"] == {"a": None, "b": 1.5}
    assert body["fold_stats"]["m"]["b"] is None
    validator = body_validator(document, "POST", "/api/v1/tracking/runs/compare", 200)
    validator.validate(body)


# --- served by the gateway ----------------------------------------------------


@pytest.fixture
async def guarded_gateway() -> AsyncIterator[tuple[httpx.AsyncClient, ApiDocs]]:
    """A gateway with API_TOKENS set (its upstreams are never called)."""
    settings = Settings(
        experiments_address="127.0.0.1:9",
        tracking_address="127.0.0.1:9",
        shutdown_grace=1,
        tokens=Tokens((TOKEN,)),
    )
    server, port = create_server(settings, "127.0.0.1:0")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http, server.app.docs
    finally:
        await server.stop()


async def test_served_from_bytes_built_once_and_open_without_a_token(
    guarded_gateway: tuple[httpx.AsyncClient, ApiDocs], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, docs = guarded_gateway

    def built_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the document is built at start-up, not per request")

    monkeypatch.setattr(gateway.docs, "build_document", built_again)
    for _ in range(2):
        response = await http.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == docs.openapi.body
    page = await http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'url: "/openapi.json"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for name, kind in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        asset = await http.get(f"/docs/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(kind)
        assert docs.folder is not None
        assert asset.content == (docs.folder / name).read_bytes()
    # The API itself still wants the token.
    assert (await http.get("/api/v1/experiments")).status_code == 401
    # Known paths, another method: 405 naming the one they have.
    for path in ("/openapi.json", "/docs", "/docs/assets/swagger-ui.css"):
        refused = await http.post(path)
        assert refused.status_code == 405, path
        assert refused.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/nothing.js",
        "/docs/assets/",
        "/docs/assets/%2e%2e/%2e%2e/gateway/app.py",
        "/docs/assets/..%2F..%2Fhandlers%2F__init__.py",
        "/docs/assets/%2Fetc%2Fpasswd",
        "/docs/assets/swagger-ui.css/",
        "/docs/assets/oauth2-redirect.html",  # a page of its own, without /docs' CSP
    ],
)
async def test_only_files_of_the_asset_folder_are_served(
    guarded_gateway: tuple[httpx.AsyncClient, ApiDocs], path: str
) -> None:
    http, _ = guarded_gateway
    response = await http.get(path)
    assert response.status_code == 404, path
    assert response.json()["code"] == 5


# --- Link on the lists that page -------------------------------------------------


def paged_routes() -> dict[tuple[str, str], response_pb2.NextPage]:
    """(METHOD, OpenAPI path) of every route whose method has a
    `research.http.v1.response` rule with `next_page`, read from the
    descriptors of the services the gateway fronts, not from its bindings."""
    found: dict[tuple[str, str], response_pb2.NextPage] = {}
    for upstream in default_upstreams(Settings()):
        for service in upstream.services:
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(response_pb2.response):
                    continue
                rule = options.Extensions[response_pb2.response]
                if not rule.HasField("next_page"):
                    continue
                http = options.Extensions[annotations_pb2.http]
                for each in (http, *http.additional_bindings):
                    kind = each.WhichOneof("pattern")
                    assert kind is not None, method.full_name
                    template = getattr(each, kind)
                    path, _ = openapi_path(parse_template(template))
                    found[kind.upper(), path] = rule.next_page
    return found


async def test_every_list_with_a_next_page_documents_its_link_header(
    guarded_gateway: tuple[httpx.AsyncClient, ApiDocs],
) -> None:
    http, _ = guarded_gateway
    served = await http.get("/openapi.json")
    assert served.status_code == 200
    found = operations(served.json())
    paged = paged_routes()
    assert set(paged) == {
        ("GET", "/api/v1/experiments"),
        ("GET", "/api/v1/tracking/runs"),
        ("GET", "/api/v1/experiments/{experiment_id}/revisions"),
    }
    for route, next_page in paged.items():
        headers = found[route]["responses"]["200"]["headers"]
        assert set(headers["Link"]) == {"description", "schema"}, route
        assert headers["Link"]["schema"] == {"type": "string"}, route
        description = headers["Link"]["description"]
        request_field = next_page.request_field or "page_token"
        assert f'{request_field}=...}}>; rel="next"` (RFC 8288)' in description, route
        assert f"`{next_page.token_field}`" in description, route
    # No other answer of any route claims a Link.
    linked = {
        route
        for route, operation in found.items()
        for answer in operation["responses"].values()
        if "Link" in answer.get("headers", {})
    }
    assert linked == set(paged)


# --- any annotated service ----------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "names"),
    [
        ("/api/v1/experiments", "/api/v1/experiments", []),
        ("/v1/{a.b}/c/{d}", "/v1/{a.b}/c/{d}", ["a.b", "d"]),
        ("/v1/{path=shelves/**}", "/v1/{path}", ["path"]),
        ("/v1/*/x/{name=w/*}:cancel", "/v1/{_1}/x/{name}:cancel", ["_1", "name"]),
    ],
)
def test_path_templates_in_openapi_form(template: str, path: str, names: list[str]) -> None:
    assert openapi_path(parse_template(template)) == (path, names)


def test_a_service_the_gateway_never_saw_gets_a_valid_document(tmp_path: Path) -> None:
    with widgets_module(tmp_path) as widgets:
        service = widgets.DESCRIPTOR.services_by_name["WidgetService"]
        document = build_document(bindings_for(service, "widgets"))
    validate(document)
    found = operations(document)
    # Same-shape templates are one OpenAPI path, named as the first one.
    item = document["paths"]["/v1/shelves/{shelf}/widgets/{widget.name}"]
    assert set(item) == {"get", "patch", "delete"}
    deleted = [p for p in item["delete"]["parameters"] if p.get("in") == "path"]
    assert deleted[1]["name"] == "widget.name"
    assert "Sets the field `name`." in deleted[1]["description"]
    assert success_statuses(item["delete"]) == {"204"}
    assert found["GET", "/v1/widgets/{widget.name}"]["operationId"] == "WidgetService_GetWidget_2"
    # A custom HTTP method has no place in OpenAPI 3.0: listed on the side.
    assert document["x-custom-method-routes"] == [
        {"method": "SEARCH", "path": "/v1/{path}", "operationId": "WidgetService_SearchWidgets"}
    ]
    tag = found["POST", "/v1/shelves/{shelf}/widgets:tag"]
    assert tag["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    listing = found["GET", "/v1/shelves/{shelf}/widgets"]
    queries = {p["name"]: p["schema"] for p in listing["parameters"] if p.get("in") == "query"}
    assert queries["labels"] == {"type": "array", "items": {"type": "string"}}
    assert queries["filter.color"]["enum"] == ["COLOR_UNSPECIFIED", "RED", "GREEN", "BLUE"]
    assert queries["since"] == {"type": "integer", "format": "int64"}
    widget = component(document, "demo.widgets.v1.Widget")
    assert widget["properties"]["parent"]["anyOf"][0] == {
        "$ref": "#/components/schemas/demo.widgets.v1.Widget"
    }
    imported = found["POST", "/v1/widgets:import"]
    assert success_statuses(imported) == {"200", "201"}
    assert "Location" in imported["responses"]["201"]["headers"]
    # Entity tags from the research.http.v1 rules, for any service.
    versioned = document["paths"]["/v1/versioned/{name}"]
    assert "ETag" in versioned["get"]["responses"]["200"]["headers"]
    assert "304" in versioned["get"]["responses"]
    assert [p["name"] for p in versioned["delete"]["parameters"] if p.get("in") == "header"] == [
        "If-Match"
    ]
    restore = found["POST", "/v1/versioned/{name}:restore"]
    assert "ETag" in restore["responses"]["200"]["headers"]
    # body "*": the field If-Match sets is not the body's.
    restore_body = restore["requestBody"]["content"]["application/json"]["schema"]
    assert set(restore_body["properties"]) == {"reason"}


# --- real answers validate against the document --------------------------------

STRATEGY = "7d9b6c1e-1111-4a2b-9c3d-0123456789ab"


async def test_the_backbone_answers_as_documented(stack: Stack) -> None:
    document = (await stack.http.get("/openapi.json")).json()
    seeded = stack.seeded
    checked: list[str] = []

    async def check(method: str, path: str, status: int, url: str, **kwargs: Any) -> Any:
        response = await stack.http.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        checked.append(f"{method} {path} {status}")
        if status == 204:
            assert response.content == b""
            return None
        body = response.json()
        body_validator(document, method, path, status).validate(body)
        return body

    full = {
        "strategy_id": STRATEGY,
        "dataset_version": "ds-1",
        "git_commit_hash": "abc1234",
        "parameters": {"lr": 0.1, "n": 200, "nested": {"a": [1, None, "x"]}},
        "metrics": {"sharpe": 1.2, "max_drawdown": -0.1},
        "artifacts": {"model": "s3://bucket/model.pkl"},
    }
    first = await check("POST", "/api/v1/experiments", 201, "/api/v1/experiments", json=full)
    second = await check(
        "POST", "/api/v1/experiments", 201, "/api/v1/experiments", json={"strategy_id": STRATEGY}
    )
    assert second["feature_version"] is None  # null, and valid as null
    one = "/api/v1/experiments/{experiment_id}"
    await check("GET", one, 200, f"/api/v1/experiments/{first['id']}")
    await check("GET", "/api/v1/experiments", 200, "/api/v1/experiments")
    await check("GET", "/api/v1/experiments", 200, f"/api/v1/experiments?strategy_id={STRATEGY}")
    patch = {"mlflow_run_id": None, "metrics": {"sharpe": 1.3}}
    await check("PATCH", one, 200, f"/api/v1/experiments/{second['id']}", json=patch)
    compare = "/api/v1/experiments/compare"
    await check("POST", compare, 200, compare, json=[first["id"], second["id"]])
    await check("POST", "/api/v1/experiments/compare", 400, compare, json=[first["id"]])
    imported = "/api/v1/experiments/import"
    run = {"mlflow_run_id": seeded.training_a}
    await check("POST", imported, 201, imported, json=run)
    await check("POST", imported, 200, imported, json=run)
    await check("GET", one, 404, "/api/v1/experiments/00000000-0000-4000-8000-000000000000")
    await check("DELETE", one, 204, f"/api/v1/experiments/{second['id']}")
    undelete = "/api/v1/experiments/{experiment_id}:undelete"
    await check("POST", undelete, 200, f"/api/v1/experiments/{second['id']}:undelete")
    revisions = "/api/v1/experiments/{experiment_id}/revisions"
    await check("GET", revisions, 200, f"/api/v1/experiments/{second['id']}/revisions")
    revision = f"{revisions}/{{revision}}"
    await check("GET", revision, 200, f"/api/v1/experiments/{second['id']}/revisions/1")
    await check("GET", revision, 404, f"/api/v1/experiments/{second['id']}/revisions/99")

    runs = "/api/v1/tracking/runs"
    await check("GET", runs, 200, runs)
    await check("GET", runs, 200, f"{runs}?run_type=backtest&limit=5")
    # NaN metrics (cpcv_b), ±Infinity (backtest_b), no end time (backtest_a).
    for run_id in (seeded.cpcv_b, seeded.backtest_b, seeded.backtest_a, seeded.training_a):
        await check("GET", f"{runs}/{{run_id}}", 200, f"{runs}/{run_id}")
        await check("GET", f"{runs}/{{run_id}}/metrics", 200, f"{runs}/{run_id}/metrics")
        await check("GET", f"{runs}/{{run_id}}/params", 200, f"{runs}/{run_id}/params")
    history = f"{runs}/{{run_id}}/metrics/{{metric_key}}/history"
    await check("GET", history, 200, f"{runs}/{seeded.cpcv_b}/metrics/oos_sharpe/history")
    await check("GET", f"{runs}/{{run_id}}", 404, f"{runs}/{'f' * 32}")
    ids = [seeded.training_a, seeded.cpcv_b, seeded.backtest_b]
    await check("POST", f"{runs}/compare", 200, f"{runs}/compare", json={"run_ids": ids})
    experiments = "/api/v1/tracking/experiments"
    await check("GET", experiments, 200, experiments)
    # Every documented success answer of every route was seen at least once.
    for method, path, statuses in CONTRACT_ROUTES:
        for status in statuses:
            assert f"{method} {path} {status}" in checked
