"""Names, limits and rules that the gateway and both services must agree on.
Each is written here once: two copies drift (the request-id rule did, the
gateway keeping ids the services replaced)."""

from __future__ import annotations

import re

from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

# Default addresses of the three processes (CONTRACT §1). Each is also the
# default of the processes that dial it: experiments_svc dials tracking_svc,
# the gateway dials both.
EXPERIMENTS_ADDRESS = "127.0.0.1:50051"
TRACKING_ADDRESS = "127.0.0.1:50052"
GATEWAY_ADDRESS = "127.0.0.1:8080"

# The request id travels as this HTTP header and gRPC metadata key, and is
# echoed in every answer and log line (CONTRACT §4).
REQUEST_ID_HEADER = "x-request-id"
# A caller's request id is kept when it is short and plain, so that it is
# safe in a header, a log line and a URL; otherwise a new one is made. (The
# hyphen is last in the class: the same text serves as an OpenAPI pattern.)
REQUEST_ID_PATTERN = "[A-Za-z0-9._:-]{1,128}"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)

# The trailer carrying the google.rpc.Status of an error (details included).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# gRFC A6: the trailer by which a server tells a client's retry policy
# when to retry, or (negative) not to.
RETRY_PUSHBACK_HEADER = "grpc-retry-pushback-ms"

# Largest request or response a service accepts, and the gateway's channels
# send or receive; larger messages are RESOURCE_EXHAUSTED before any handler.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# The MLflow run tag that says what kind of run it is (CONTRACT §6).
RUN_TYPE_TAG = "run_type"
# The resource type NotFound names for a missing MLflow run.
MLFLOW_RUN_RESOURCE = "mlflow.Run"

# google/protobuf/wrappers.proto: each holds one `value` field, and its JSON
# form is that value (null when the field is absent).
WRAPPER_TYPES: tuple[type[Message], ...] = (
    wrappers_pb2.DoubleValue,
    wrappers_pb2.FloatValue,
    wrappers_pb2.Int64Value,
    wrappers_pb2.UInt64Value,
    wrappers_pb2.Int32Value,
    wrappers_pb2.UInt32Value,
    wrappers_pb2.BoolValue,
    wrappers_pb2.StringValue,
    wrappers_pb2.BytesValue,
)
# Full name ("google.protobuf.Int64Value") -> FieldDescriptor.TYPE_* of its value.
WRAPPER_VALUE_TYPES: dict[str, int] = {
    wrapper.DESCRIPTOR.full_name: wrapper.DESCRIPTOR.fields_by_name["value"].type
    for wrapper in WRAPPER_TYPES
}


def valid_request_id(text: str) -> bool:
    """Whether a caller's request id is kept as given (else a new one is made)."""
    return _REQUEST_ID.fullmatch(text) is not None
