"""The error answers of the OpenAPI document: one `Error` schema (the body of
every error, `gateway/errors.py`) and one shared response per HTTP status the
gateway answers with, each naming the gRPC codes behind it (from the same
table `HttpError` uses, so the two cannot drift apart)."""

from __future__ import annotations

from typing import Any

from gateway.errors import HTTP_STATUS
from research_common.constants import REQUEST_ID_PATTERN

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The body of every error, from any route.",
    "required": ["code", "message", "detail", "details"],
    "properties": {
        "code": {
            "type": "integer",
            "format": "int32",
            "description": "The gRPC status code number (e.g. 5 for NOT_FOUND).",
        },
        "message": {"type": "string", "description": "What went wrong."},
        "detail": {
            "type": "string",
            "description": "The same text as `message` (clients of the earlier service read it).",
        },
        "details": {
            "type": "array",
            "description": "The `google.rpc.Status` details, e.g. a `BadRequest` naming fields.",
            "items": {
                "type": "object",
                "required": ["@type"],
                "properties": {"@type": {"type": "string"}},
                "additionalProperties": True,
            },
        },
    },
}

# status: (component name, when). The gRPC codes behind each are added.
_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "A malformed id or body, a wrong type, an unknown field or query parameter, "
        "a value out of range.",
    ),
    401: ("Unauthorized", "A token is configured and the bearer token is missing or wrong."),
    403: ("Forbidden", "Permission denied."),
    404: ("NotFound", "No such resource (or no such route)."),
    409: ("Conflict", "The resource already exists, or the call was aborted."),
    413: ("PayloadTooLarge", "The request body is larger than the gateway's limit."),
    415: ("UnsupportedMediaType", "The request body is not sent as `application/json`."),
    429: ("TooManyRequests", "A resource is exhausted."),
    499: ("ClientClosedRequest", "The client went away first (logged; never seen by it)."),
    500: ("InternalError", "A bug: logged with the request id, which the message names."),
    501: ("NotImplemented", "The method is not implemented."),
    503: ("Unavailable", "An upstream service, or a store behind it, is unreachable."),
    504: ("GatewayTimeout", "The upstream service did not answer within the deadline."),
}
# The 409 of a method that takes `If-Match`, in place of the shared one.
_IF_MATCH_CONFLICT = (
    "IfMatchConflict",
    "`If-Match` does not name the resource's current entity tag, and nothing was written; "
    "or the resource already exists.",
)
# Answered by the gateway itself, for a request that has a body.
_BODY_ERRORS = {413, 415}
_GATEWAY_CODES = {413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT"}


def _codes(status: int) -> str:
    names = sorted(code.name for code, http in HTTP_STATUS.items() if http == status)
    if status == 500:
        names.append("any other")
    names = names or [_GATEWAY_CODES.get(status, "")]
    return ", ".join(name for name in names if name)


def _response(status: int, when: str) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": 'The bearer challenge, `Bearer realm="research"`.',
            "schema": {"type": "string"},
        }
    return {
        "description": f"{when} (gRPC {_codes(status)})",
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def error_components() -> dict[str, Any]:
    """The `components` the error answers, parameters and security refer to."""
    return {
        "schemas": {"Error": ERROR_SCHEMA},
        "responses": {
            **{name: _response(status, when) for status, (name, when) in _ERRORS.items()},
            _IF_MATCH_CONFLICT[0]: _response(409, _IF_MATCH_CONFLICT[1]),
        },
        "parameters": {
            "RequestId": {
                "name": "X-Request-Id",
                "in": "header",
                "required": False,
                "description": "Echoed back and logged by every process; one is made if absent.",
                "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
            },
            "GrpcTimeout": {
                "name": "Grpc-Timeout",
                "in": "header",
                "required": False,
                "description": "Deadline of the gRPC call: 1 to 8 digits and a unit "
                "(H, M, S, m, u, n), e.g. `2S`; capped by the gateway.",
                "schema": {"type": "string", "pattern": "^[0-9]{1,8}[HMSmun]$"},
            },
        },
        "headers": {
            "RequestId": {
                "description": "The request id (the caller's, or one made for it).",
                "schema": {"type": "string"},
            }
        },
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    }


def error_responses(*, takes_body: bool, if_match: bool = False) -> dict[str, Any]:
    """An operation's error answers, by status; `if_match`: its 409 also
    says what a stale `If-Match` gets."""
    names = {status: name for status, (name, _) in _ERRORS.items()}
    if if_match:
        names[409] = _IF_MATCH_CONFLICT[0]
    return {
        str(status): {"$ref": f"#/components/responses/{name}"}
        for status, name in names.items()
        if takes_body or status not in _BODY_ERRORS
    }
