"""The gateway's OpenAPI 3.0.3 document, built at start-up from the bindings
the router serves: the routes, their parameters and bodies, and the answers
they give come from the `google.api.http`, `research.http.v1.response` and
`research.http.v1.request` rules, the schemas from the message descriptors
(`gateway/openapi/schemas.py`), and the descriptions from the proto comments
(`gateway/openapi/comments.py`).
Nothing here names a service: an annotated method is documented as it is routed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from gateway.bindings import Binding
from gateway.openapi.comments import Comments
from gateway.openapi.errors import error_components, error_responses
from gateway.openapi.parameters import (
    header_fields,
    header_parameters,
    openapi_path,
    path_parameters,
    query_parameters,
)
from gateway.openapi.schemas import Schema, Schemas, nullable

log = logging.getLogger("gateway.openapi")

OPENAPI_VERSION = "3.0.3"
TITLE = "Research backbone HTTP API"
# The methods an OpenAPI 3.0 path item can hold; a rule's `custom` kind
# outside them (e.g. SEARCH) is listed under `x-custom-method-routes` instead.
_OPENAPI_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_DESCRIPTION = """\
JSON over HTTP in front of gRPC services; every route is a `google.api.http`
rule of a proto method, transcoded to one gRPC call.

- Field names are the proto field names. Every field of a response object is
  present: an unset optional field or message is `null`.
- 64-bit integers are JSON numbers; timestamps are RFC 3339 UTC strings; a
  non-finite number (NaN, ±Infinity) is `null`; enums are their names.
- An object keyed by the ids a request lists (a compare's runs or
  experiments) has its keys in the request's order; where its description
  says so, every id of the request is a key, `null` where there is no value.
- Request bodies are strict: an unknown field, a wrong type or an unknown query
  parameter is 400 naming it.
- Every error has the body `Error`: `code` (the gRPC code number), `message`,
  `detail` (the same text) and `details` (each with its `@type`).
- When the gateway has API tokens, every route needs `Authorization: Bearer <token>`.
  A read-only token may call only the methods that change nothing (those whose
  proto method says `idempotency_level = NO_SIDE_EFFECTS`: the GET routes and
  the compares); any other route answers it 403 naming the token and the method.
"""


def build_document(
    bindings: Sequence[Binding],
    comments: Comments | None = None,
    *,
    title: str = TITLE,
    version: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI document of `bindings` (in their order)."""
    schemas = Schemas(comments or Comments())
    operation_ids: set[str] = set()
    paths: dict[str, dict[str, Any]] = {}
    # Templates that differ only in variable names are one OpenAPI path
    # (the spec forbids two): the first one's names are used for all.
    by_shape: dict[str, tuple[str, list[str]]] = {}
    custom: list[dict[str, str]] = []
    tags: dict[str, Schema] = {}
    for binding in bindings:
        path, names = openapi_path(binding.template)
        shape = re.sub(r"\{[^}]*\}", "{}", path)
        path, shown = by_shape.setdefault(shape, (path, names))
        operation = _operation(binding, schemas, dict(zip(names, shown, strict=True)))
        operation["operationId"] = _unique(operation["operationId"], operation_ids)
        service = binding.method.containing_service
        tags.setdefault(service.name, _described({"name": service.name}, schemas, service))
        method = binding.http_method.lower()
        if method not in _OPENAPI_METHODS:
            found = {"method": binding.http_method, "path": path}
            custom.append({**found, "operationId": operation["operationId"]})
            continue
        item = paths.setdefault(path, {})
        if method in item:  # e.g. `{name}` and `{name=**}`: one OpenAPI path
            log.warning(
                "%s %s is documented once, as %s", method, path, item[method]["operationId"]
            )
            continue
        item[method] = operation
    components: dict[str, Any] = error_components()
    components["schemas"].update(sorted(schemas.components.items()))
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version or _version(), "description": _DESCRIPTION},
        "tags": list(tags.values()),
        "paths": paths,
        "components": components,
        # Optional: without API_TOKENS no token is asked for.
        "security": [{}, {"bearerAuth": []}],
    }
    if custom:
        document["x-custom-method-routes"] = custom
    return document


def _operation(binding: Binding, schemas: Schemas, shown: dict[str, str]) -> dict[str, Any]:
    method = binding.method
    operation: dict[str, Any] = {
        "operationId": f"{method.containing_service.name}_{method.name}",
        "tags": [method.containing_service.name],
    }
    comment = schemas.comments.get(method.full_name)
    if comment:
        operation["summary"] = _summary(comment)
        operation["description"] = comment
    operation["x-grpc-method"] = method.full_name
    operation["parameters"] = [
        *path_parameters(binding, schemas, shown),
        *query_parameters(binding, schemas),
        *header_parameters(binding, schemas),
        {"$ref": "#/components/parameters/RequestId"},
        {"$ref": "#/components/parameters/GrpcTimeout"},
    ]
    if binding.body is not None:
        operation["requestBody"] = _request_body(binding, schemas)
    operation["responses"] = {
        **_success(binding, schemas),
        **error_responses(
            takes_body=binding.body is not None,
            if_match=binding.request.if_match_field is not None,
        ),
    }
    return operation


def _request_body(binding: Binding, schemas: Schemas) -> dict[str, Any]:
    body: dict[str, Any] = {}
    field = binding.body_field
    if field is None:  # body "*": the request less what the path and headers bind
        bound = frozenset(c.field for c in binding.template.captures) | header_fields(binding)
        schema = schemas.object(binding.input, input=True, without=bound)
        body["required"] = False  # no body is an empty request
    else:  # a repeated field takes a bare JSON array
        schema = schemas.bare_field(field, input=True)
        body["required"] = True
        comment = schemas.comments.get(field.full_name)
        if comment:
            body["description"] = comment
    body["content"] = {"application/json": {"schema": schema}}
    return body


def _success(binding: Binding, schemas: Schemas) -> dict[str, Any]:
    rule = binding.response
    answers: dict[str, Any] = {}
    location = rule.location.source if rule.location else None
    if rule.status == 204:
        answers["204"] = {
            "description": "Done; no content.",
            "headers": _headers(None, rule.etag_field),
        }
    else:
        created = rule.status == 201
        text = "Created." if created else "OK."
        if rule.created_field:
            text = f"{text[:-1]}: `{rule.created_field}` is false (the resource already existed)."
        answers[str(rule.status)] = _answer(
            text,
            _response_schema(binding, schemas),
            _headers(location if created else None, rule.etag_field),
        )
        if rule.next_page is not None:
            answers[str(rule.status)]["headers"]["Link"] = {
                "description": (
                    "The next page, `<{path}?{the same query with "
                    f'{rule.next_page.request_field}=...}}>; rel="next"` (RFC 8288), '
                    "sent while there is one; the token is the response's "
                    f"`{rule.next_page.token_field}`."
                ),
                "schema": {"type": "string"},
            }
    if rule.created_field:
        text = f"Created: `{rule.created_field}` is true (this call made the resource)."
        answers[str(rule.created_status)] = _answer(
            text, _response_schema(binding, schemas), _headers(location, rule.etag_field)
        )
    if binding.request.if_none_match:
        answers["304"] = {
            "description": "Not Modified: `If-None-Match` names the entity tag the answer "
            "would carry. No body.",
            "headers": _headers(None, rule.etag_field),
        }
    return answers


def _answer(text: str, schema: Schema, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": text,
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    }


def _headers(location: str | None, etag_field: str | None) -> dict[str, Any]:
    """The headers of a success answer: the request id, and `Location` and
    `ETag` where the response rule sends them."""
    headers = _request_id()
    if location:
        headers["Location"] = {
            "description": f"Path of the resource, `{location}`.",
            "schema": {"type": "string"},
        }
    if etag_field:
        headers["ETag"] = {
            "description": f"The entity tag of the answer: the response's `{etag_field}` in "
            "double quotes (RFC 9110), sent when it is set. Send it back as `If-Match` to "
            "change the resource only as it was read, or as `If-None-Match` to be answered "
            "304 while it is current, where the route takes them.",
            "schema": {"type": "string"},
        }
    return headers


def _response_schema(binding: Binding, schemas: Schemas) -> Schema:
    descriptor = binding.method.output_type
    if binding.response_body is None:
        return schemas.message(descriptor, input=False)
    field = descriptor.fields_by_name[binding.response_body]
    schema = schemas.bare_field(field, input=False)
    # A message the service always sets is shown as itself, not "or null";
    # an optional scalar left unset does render as null.
    if field.message_type is None and not field.is_repeated and field.has_presence:
        schema = nullable(schema)
    return schema


def _request_id() -> dict[str, Any]:
    return {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}


def _described(
    target: dict[str, Any], schemas: Schemas, descriptor: ServiceDescriptor
) -> dict[str, Any]:
    comment = schemas.comments.get(descriptor.full_name)
    return {**target, "description": comment} if comment else target


def _summary(comment: str) -> str:
    """The first sentence of a comment, on one line."""
    first = re.split(r"(?<=\.)\s", comment, maxsplit=1)[0]
    # Swagger UI shows a summary as plain text: Markdown's backticks would show.
    return " ".join(first.replace("`", "").split())


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`… (additional bindings share a method)."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}_{number}"
    taken.add(candidate)
    return candidate


def _version() -> str:
    try:
        return metadata.version("research-backbone")
    except metadata.PackageNotFoundError:
        return "0"
