"""Reading an OpenAPI document in tests: its operations, their success
statuses, and a validator of a response body against the document's schema."""

from __future__ import annotations

from typing import Any

from openapi_schema_validator import OAS30Validator

EXPERIMENT = "research.experiments.v1.Experiment"
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")

# CONTRACT §2: method, path (OpenAPI form), success statuses.
CONTRACT_ROUTES: list[tuple[str, str, set[str]]] = [
    ("POST", "/api/v1/experiments", {"201"}),
    ("GET", "/api/v1/experiments", {"200"}),
    ("GET", "/api/v1/experiments/{experiment_id}", {"200"}),
    ("PATCH", "/api/v1/experiments/{experiment_id}", {"200"}),
    ("DELETE", "/api/v1/experiments/{experiment_id}", {"204"}),
    ("POST", "/api/v1/experiments/compare", {"200"}),
    ("POST", "/api/v1/experiments/import", {"200", "201"}),
    ("GET", "/api/v1/tracking/runs", {"200"}),
    ("GET", "/api/v1/tracking/runs/{run_id}", {"200"}),
    ("GET", "/api/v1/tracking/runs/{run_id}/metrics", {"200"}),
    ("GET", "/api/v1/tracking/runs/{run_id}/metrics/{metric_key}/history", {"200"}),
    ("GET", "/api/v1/tracking/runs/{run_id}/params", {"200"}),
    ("POST", "/api/v1/tracking/runs/compare", {"200"}),
    ("GET", "/api/v1/tracking/experiments", {"200"}),
    ("GET", "/api/v1/experiments/{experiment_id}/revisions", {"200"}),
    ("GET", "/api/v1/experiments/{experiment_id}/revisions/{revision}", {"200"}),
    ("POST", "/api/v1/experiments/{experiment_id}:undelete", {"200"}),
]


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation by (METHOD, path)."""
    return {
        (method.upper(), path): item[method]
        for path, item in document["paths"].items()
        for method in _METHODS
        if method in item
    }


def success_statuses(operation: dict[str, Any]) -> set[str]:
    return {status for status in operation["responses"] if status.startswith("2")}


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def body_validator(document: dict[str, Any], method: str, path: str, status: int) -> OAS30Validator:
    """A validator (formats checked) of the JSON body `method path` answers
    with `status`, by the document's schema for it; `$ref`s resolve in it."""
    answer = operations(document)[method, path]["responses"][str(status)]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = answer["content"]["application/json"]["schema"]
    return OAS30Validator(
        {**schema, "components": document["components"]},
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )
