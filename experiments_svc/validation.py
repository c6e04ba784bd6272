"""Request validation (CONTRACT §5). Each check raises InvalidArgument
naming the field; nothing malformed reaches the database."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from google.protobuf import struct_pb2

from research_common.errors import InvalidArgument, echo
from research_common.free_form import MAX_SAFE_INTEGER, unsafe_number
from research_common.page_tokens import requested_size

MAX_TEXT = 255
MIN_LIMIT, MAX_LIMIT, DEFAULT_LIMIT = 1, 1000, 100
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
# What one experiment may hold, in its protobuf encoding (the form every
# response carries it in): a compare of ten repeats each row once in
# `experiments` and its values again in the diffs, and a compare must fit in
# one 4 MiB gRPC message (CONTRACT §3: every accepted row can be read back
# through every route). Each top-level key of `parameters` and `metrics` is
# one diff entry holding ten ids, hence the bound on keys.
MAX_EXPERIMENT_BYTES = 64 * 1024
MAX_DIFF_KEYS = 256

JSON = Any  # a JSON value: None, bool, int, float, str, list, dict


def parse_uuid(field: str, value: str) -> uuid.UUID:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not _UUID.fullmatch(value):
        raise InvalidArgument.field(field, f"must be a UUID, got {echo(value)}")
    return uuid.UUID(value)


def check_text(field: str, value: str) -> str:
    """A lineage string: 1 to 255 characters, no NUL (PostgreSQL refuses it).
    An empty one is refused rather than kept: it would stand for "none"
    beside null, and as an MLflow run id it blocked every later empty one."""
    if not value:
        raise InvalidArgument.field(field, "must not be empty; leave it out (or null) for none")
    if len(value) > MAX_TEXT:
        raise InvalidArgument.field(
            field, f"must be at most {MAX_TEXT} characters, got {len(value)}"
        )
    if "\x00" in value:
        raise InvalidArgument.field(field, "must not contain NUL characters")
    return value


def check_filter(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "must not be empty when given")
    return check_text(field, value)


def paging(
    skip: int | None, limit: int | None, page_size: int | None, page_token: str
) -> tuple[int, int]:
    """(skip, page size). `limit` is the seed's name of `page_size`; `skip`
    pages by offset and cannot be combined with a token."""
    name, given = requested_size(limit, page_size)
    size = DEFAULT_LIMIT if given is None else given
    skip = 0 if skip is None else skip
    if skip < 0:
        raise InvalidArgument.field("skip", f"must be 0 or more, got {skip}")
    if skip and page_token:
        raise InvalidArgument.field(
            "skip", "cannot be combined with page_token: the token already says where to start"
        )
    if not MIN_LIMIT <= size <= MAX_LIMIT:
        raise InvalidArgument.field(
            name, f"must be between {MIN_LIMIT} and {MAX_LIMIT}, got {size}"
        )
    return skip, size


def _no_nul(field: str, text: str) -> str:
    if "\x00" in text:
        raise InvalidArgument.field(field, "must not contain NUL characters")
    return text


def value_to_json(value: struct_pb2.Value, field: str) -> JSON:
    """A protobuf Value as plain JSON, refusing what JSON documents cannot
    hold: non-finite numbers and NUL characters. Integral numbers come back
    as ints, so that `200` is stored as 200, not 200.0."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidArgument.field(field, f"must be a finite number, got {number}")
        if abs(number) > MAX_SAFE_INTEGER:
            raise InvalidArgument.field(field, unsafe_number(repr(number)))
        # 1.0 and -0.0 are the integers 1 and 0: kept and read back as such.
        return int(number) if number.is_integer() else number
    if kind == "string_value":
        return _no_nul(field, value.string_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_json(value.struct_value, field)
    if kind == "list_value":
        return [
            value_to_json(item, f"{field}[{i}]") for i, item in enumerate(value.list_value.values)
        ]
    return None  # null_value, or a Value with nothing set


def struct_to_json(struct: struct_pb2.Struct, field: str) -> dict[str, JSON]:
    return {
        _no_nul(field, key): value_to_json(item, f"{field}.{key}")
        for key, item in struct.fields.items()
    }


def check_size(experiment: Any, changed: Collection[str] = ()) -> None:
    """InvalidArgument when an experiment (a research.experiments.v1
    Experiment, as it would be stored) holds more than one may. The error
    names the largest of the `changed` fields (of every field when none is
    given): the one the caller sent."""
    keys = len(experiment.parameters.fields) + len(experiment.metrics.fields)
    if keys > MAX_DIFF_KEYS:
        raise InvalidArgument.field(
            "parameters",
            f"and metrics hold {keys} keys together; an experiment may hold at most "
            f"{MAX_DIFF_KEYS}, so that a compare of ten fits in one response",
        )
    # The caller's fields only: the id, timestamps, revision and etag the
    # service adds vary in encoded length with the clock and the revision,
    # and a row at the bound must not be accepted at one moment and refused
    # at the next.
    content = type(experiment)()
    content.CopyFrom(experiment)
    for assigned in ("id", "created_at", "updated_at", "revision", "etag", "deleted_at"):
        content.ClearField(assigned)
    size = content.ByteSize()
    if size > MAX_EXPERIMENT_BYTES:
        parts = {
            "parameters": experiment.parameters.ByteSize(),
            "metrics": experiment.metrics.ByteSize(),
            "artifacts": type(experiment)(artifacts=experiment.artifacts).ByteSize(),
        }
        named = [name for name in parts if name in changed] or list(parts)
        largest = max(named, key=lambda name: parts[name])
        shown = ", ".join(f"{name} {count}" for name, count in parts.items())
        raise InvalidArgument.field(
            largest,
            f"is too large: the experiment's fields would take {size} bytes encoded ({shown}); "
            f"one may take at most {MAX_EXPERIMENT_BYTES}, so that a compare of ten "
            "fits in one response",
        )


def check_artifacts(artifacts: Mapping[str, str]) -> dict[str, str]:
    return {
        _no_nul("artifacts", label): _no_nul(f"artifacts.{label}", uri)
        for label, uri in artifacts.items()
    }
