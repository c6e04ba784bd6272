"""Stored rows to protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy import RowMapping

from experiments_svc.models import OPTIONAL_TEXT_FIELDS
from research.experiments.v1 import experiments_pb2

# One row of the experiments table, as read or as about to be written.
Record = RowMapping | Mapping[str, Any]


def has_field(message: Message, name: str) -> bool:
    """HasField by a name known only at run time (the stubs want literals)."""
    return message.HasField(name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    # The same seconds and nanos as Timestamp.FromDatetime (which also reads
    # a naive datetime as UTC), without its detour through a time tuple and
    # calendar.timegm: a third of the cost, twice per row of every list.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def _fill(struct: struct_pb2.Struct, values: Mapping[str, Any]) -> None:
    """`struct.update(values)`, with the common flat values (numbers and
    strings, exactly `int`, `float` or `str`) set directly: Struct.update
    sends each value through a chain of isinstance checks, which cost as
    much as the rest of a row. Anything else (None, a bool, a nested dict or
    list) still goes through Struct.update, key by key in the same order, so
    the result is the same message."""
    fields = struct.fields
    for key, value in values.items():
        kind = type(value)
        if kind is float or kind is int:
            fields[key].number_value = value
        elif kind is str:
            fields[key].string_value = value
        else:
            struct.update({key: value})


def to_proto(record: Record) -> experiments_pb2.Experiment:
    # Every scalar in one constructor call: cheaper than setting them after.
    message = experiments_pb2.Experiment(
        id=str(record["id"]),
        strategy_id=str(record["strategy_id"]),
        artifacts=record["artifacts"],
        created_at=_timestamp(record["created_at"]),
        updated_at=_timestamp(record["updated_at"]),
        **{name: record[name] for name in OPTIONAL_TEXT_FIELDS if record[name] is not None},
    )
    # SetInParent: an empty dict is still a present `{}`, not an absent field.
    message.parameters.SetInParent()
    _fill(message.parameters, record["parameters"])
    message.metrics.SetInParent()
    _fill(message.metrics, record["metrics"])
    return message
