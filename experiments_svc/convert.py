"""Stored rows to protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy import RowMapping

from experiments_svc.models import OPTIONAL_TEXT_FIELDS
from research.experiments.v1 import experiments_pb2

# One row of the experiments table, as read or as about to be written.
Record = RowMapping | Mapping[str, Any]


def has_field(message: Message, name: str) -> bool:
    """HasField by a name known only at run time (the stubs want literals)."""
    return message.HasField(name)


def _timestamp(value: Any) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def to_proto(record: Record) -> experiments_pb2.Experiment:
    message = experiments_pb2.Experiment(
        id=str(record["id"]),
        strategy_id=str(record["strategy_id"]),
        artifacts=record["artifacts"],
        created_at=_timestamp(record["created_at"]),
        updated_at=_timestamp(record["updated_at"]),
    )
    for name in OPTIONAL_TEXT_FIELDS:
        if record[name] is not None:
            setattr(message, name, record[name])
    # SetInParent: an empty dict is still a present `{}`, not an absent field.
    message.parameters.SetInParent()
    message.parameters.update(record["parameters"])
    message.metrics.SetInParent()
    message.metrics.update(record["metrics"])
    return message
