"""Errors over HTTP: the one gRPC→HTTP status table (CONTRACT §4), and the
body every error has, whether the gateway or an upstream raised it:

    {"code": <gRPC code number>, "message": "...", "detail": "<same text>",
     "details": [<google.rpc details, each with its "@type">]}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from research_common.auth import refusal
from research_common.constants import STATUS_DETAILS_KEY

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
BEARER_CHALLENGE = 'Bearer realm="research"'

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC status; anything unlisted is a bug: 500."""
    return HTTP_STATUS.get(code, 500)


class HttpError(Exception):
    """An error answered over HTTP with `status`, the gRPC `code` of the
    contract's body, a message naming the problem, and optional details."""

    def __init__(
        self,
        status: int,
        code: grpc.StatusCode,
        message: str,
        details: Iterable[Message] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        if not message:
            raise ValueError("an HttpError needs a message")
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = [_render_detail(d) for d in details]
        self.headers = headers or {}

    @classmethod
    def bad_request(cls, message: str, field: str | None = None) -> HttpError:
        """400 INVALID_ARGUMENT; with a `BadRequest` detail when a field is named."""
        details: list[Message] = []
        if field:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=field, description=message
            )
            details.append(error_details_pb2.BadRequest(field_violations=[violation]))
        return cls(400, grpc.StatusCode.INVALID_ARGUMENT, message, details)

    @classmethod
    def from_rpc(cls, error: aio.AioRpcError, upstream: str, timeout: float) -> HttpError:
        """The HTTP form of a failed call to `upstream`.

        The services attach a `google.rpc.Status` to every error they raise
        themselves; an error without one came from the gRPC transport (the
        service is down, or the deadline passed before it answered), and its
        message says so in words rather than in gRPC's."""
        code = error.code()
        message = error.details() or code.name
        details: list[Any] = []
        status = _status_details(error.trailing_metadata())
        if status is not None:
            details = list(status.details)
        elif code == grpc.StatusCode.UNAVAILABLE:
            message = f"the {upstream} service is unavailable: {message}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"the {upstream} service did not answer within {timeout:g} s"
        elif code == grpc.StatusCode.CANCELLED:
            message = f"the call to the {upstream} service was cancelled"
        headers = {"www-authenticate": BEARER_CHALLENGE} if code == UNAUTHENTICATED else None
        result = cls(http_status(code), code, message, headers=headers)
        result.details = [_render_any(d) for d in details]
        return result

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code.value[0],
            "message": self.message,
            "detail": self.message,
            "details": self.details,
        }


def unauthorized(authorization: str | None) -> HttpError:
    """401 for a missing or wrong bearer token (RFC 6750 challenge)."""
    challenge = BEARER_CHALLENGE
    if authorization is not None:
        challenge += ', error="invalid_token"'
    return HttpError(
        401, UNAUTHENTICATED, refusal(authorization), headers={"www-authenticate": challenge}
    )


def not_found_route(method: str, path: str) -> HttpError:
    return HttpError(404, grpc.StatusCode.NOT_FOUND, f"no route for {method} {_clip(path)}")


def wrong_method(method: str, path: str, allowed: Iterable[str]) -> HttpError:
    allow = ", ".join(allowed)
    return HttpError(
        405,
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not allowed on {_clip(path)}; allowed: {allow}",
        headers={"allow": allow},
    )


def _clip(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def _status_details(metadata: Any) -> status_pb2.Status | None:
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def _render_detail(detail: Message) -> dict[str, Any]:
    rendered: dict[str, Any] = json_format.MessageToDict(detail, preserving_proto_field_name=True)
    return {"@type": f"type.googleapis.com/{detail.DESCRIPTOR.full_name}", **rendered}


def _render_any(detail: Any) -> dict[str, Any]:
    try:
        rendered: dict[str, Any] = json_format.MessageToDict(
            detail, preserving_proto_field_name=True
        )
    except (TypeError, KeyError):  # a detail type this process does not know
        rendered = {"@type": detail.type_url}
    return rendered
