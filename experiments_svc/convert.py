"""Stored rows to protobuf messages."""

from __future__ import annotations

import hashlib
import uuid
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


def _timestamp_fields(value: datetime) -> Any:
    """A Timestamp's fields, for a message constructor: given as a dict, the
    field is filled in place, where a built Timestamp would be built and
    then copied (half the cost, per time of every row). Typed Any: the stubs
    know only the Timestamp form of the argument."""
    # The same seconds and nanos as Timestamp.FromDatetime (which also reads
    # a naive datetime as UTC), without its detour through a time tuple and
    # calendar.timegm: a third of the cost.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return {"seconds": delta.days * 86400 + delta.seconds, "nanos": delta.microseconds * 1000}


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    fields: dict[str, int] = _timestamp_fields(value)
    return timestamp_pb2.Timestamp(**fields)


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
        created_at=_timestamp_fields(record["created_at"]),
        updated_at=_timestamp_fields(record["updated_at"]),
        revision=record["revision"],
        etag=etag_of(record["id"], record["revision"]),
        **{name: record[name] for name in OPTIONAL_TEXT_FIELDS if record[name] is not None},
    )
    if record["deleted_at"] is not None:
        message.deleted_at.CopyFrom(_timestamp(record["deleted_at"]))
    # SetInParent: an empty dict is still a present `{}`, not an absent field.
    message.parameters.SetInParent()
    _fill(message.parameters, record["parameters"])
    message.metrics.SetInParent()
    _fill(message.metrics, record["metrics"])
    return message


def first_revision(record: Record) -> dict[str, Any]:
    """A new row as it is stored: at revision 1, not deleted."""
    return {**record, "revision": 1, "deleted_at": None}


def etag_of(experiment_id: uuid.UUID, revision: int) -> str:
    """The entity tag of one revision of one experiment: opaque, different
    for every revision (ids and revision numbers are never reused)."""
    digest = hashlib.blake2b(experiment_id.bytes + revision.to_bytes(8, "big"), digest_size=8)
    return digest.hexdigest()


# The fields of a record that a snapshot keeps, in the message's order.
SNAPSHOT_FIELDS = (
    "id",
    "strategy_id",
    *OPTIONAL_TEXT_FIELDS,
    "parameters",
    "metrics",
    "artifacts",
    "created_at",
    "updated_at",
    "revision",
    "deleted_at",
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def snapshot(record: Record) -> dict[str, Any]:
    """A record as a JSON document (a revision's `experiment`): ids as
    strings, times as RFC 3339 strings; `from_snapshot` reads it back."""
    document: dict[str, Any] = {}
    for name in SNAPSHOT_FIELDS:
        value = record.get(name)
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = _utc(value).isoformat()
        document[name] = value
    return document


def from_snapshot(document: Mapping[str, Any]) -> dict[str, Any]:
    """The record a snapshot was written from."""
    record = dict(document)
    record["id"] = uuid.UUID(record["id"])
    record["strategy_id"] = uuid.UUID(record["strategy_id"])
    for name in ("created_at", "updated_at", "deleted_at"):
        if record[name] is not None:
            record[name] = datetime.fromisoformat(record[name])
    return record


def every_set_field(record: Record) -> list[str]:
    """The fields a create or an import set: the changed_fields of its
    revision (a lineage field left null, or a map left empty, is not set)."""
    names = ["strategy_id", *OPTIONAL_TEXT_FIELDS, "parameters", "metrics", "artifacts"]
    return [name for name in names if record.get(name) not in (None, {})]


def revision_to_proto(row: Record) -> experiments_pb2.ExperimentRevision:
    """A row of experiment_revisions as its message."""
    message = experiments_pb2.ExperimentRevision(
        revision=row["revision"],
        action=row["action"],
        experiment=to_proto(from_snapshot(row["experiment"])),
        changed_fields=row["changed_fields"],
        recorded_at=_timestamp_fields(row["recorded_at"]),
    )
    for name in ("actor", "request_id"):
        if row[name] is not None:
            setattr(message, name, row[name])
    return message
