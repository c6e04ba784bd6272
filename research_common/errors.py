"""The error hierarchy of both gRPC services.

Handlers raise these; `research_common.interceptor` is the one place that turns
them into a gRPC status with a message and `google.rpc` details. Every error
has a non-empty message that names the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

# Longest echo of a caller's value in an error message: enough to recognise
# it, never the 10 kB someone sent.
_ECHO_LIMIT = 64


def echo(value: object) -> str:
    """A short, quoted rendering of a caller's value for an error message."""
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."


class ServiceError(Exception):
    """An error answered to the caller with `code`, `message` and `details`."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, details: Iterable[Message] = ()) -> None:
        if not message:
            raise ValueError("a ServiceError needs a message")
        super().__init__(message)
        self.message = message
        self.details = tuple(details)

    def to_status(self) -> status_pb2.Status:
        """The `google.rpc.Status` sent in the `grpc-status-details-bin` trailer."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        for detail in self.details:
            status.details.add().Pack(detail)
        return status


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def field(cls, field: str, problem: str) -> InvalidArgument:
        """`<field> <problem>`, with a `BadRequest` detail naming the field."""
        message = f"{field} {problem}"
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        return cls(message, [error_details_pb2.BadRequest(field_violations=[violation])])


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION

    @classmethod
    def violation(cls, kind: str, subject: str, description: str) -> FailedPrecondition:
        """`description`, with a `PreconditionFailure` detail naming what is wrong."""
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=kind, subject=subject, description=description
        )
        return cls(description, [error_details_pb2.PreconditionFailure(violations=[violation])])


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    @classmethod
    def resources(cls, message: str, resource_type: str, names: Iterable[str]) -> NotFound:
        """A NOT_FOUND with one `ResourceInfo` detail per missing resource."""
        details = [
            error_details_pb2.ResourceInfo(
                resource_type=resource_type, resource_name=name, description="not found"
            )
            for name in names
        ]
        return cls(message, details)


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    """The caller is known and may not do this (a read-only token writing)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL
