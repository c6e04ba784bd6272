"""Request validation (CONTRACT §5). Each check raises InvalidArgument
naming the field; nothing malformed reaches the database."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from research_common.errors import InvalidArgument, echo

MAX_TEXT = 255
MIN_LIMIT, MAX_LIMIT, DEFAULT_LIMIT = 1, 1000, 100
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
# Integers beyond this lose precision as a protobuf double; keep them floats.
_EXACT_INT = 2**53

JSON = Any  # a JSON value: None, bool, int, float, str, list, dict


def parse_uuid(field: str, value: str) -> uuid.UUID:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not _UUID.fullmatch(value):
        raise InvalidArgument.field(field, f"must be a UUID, got {echo(value)}")
    return uuid.UUID(value)


def check_text(field: str, value: str) -> str:
    """A lineage string: at most 255 characters, no NUL (PostgreSQL refuses it)."""
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


def paging(skip: int | None, limit: int | None) -> tuple[int, int]:
    skip = 0 if skip is None else skip
    limit = DEFAULT_LIMIT if limit is None else limit
    if skip < 0:
        raise InvalidArgument.field("skip", f"must be 0 or more, got {skip}")
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise InvalidArgument.field(
            "limit", f"must be between {MIN_LIMIT} and {MAX_LIMIT}, got {limit}"
        )
    return skip, limit


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
        return int(number) if number.is_integer() and abs(number) <= _EXACT_INT else number
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


def check_artifacts(artifacts: Mapping[str, str]) -> dict[str, str]:
    return {
        _no_nul("artifacts", label): _no_nul(f"artifacts.{label}", uri)
        for label, uri in artifacts.items()
    }
