"""The §7 and §11 comparisons written into response messages. Both services'
`MetricDiff` and `ValueDiff` messages have the same shape: a `values` map of
`google.protobuf.Value`, then `direction` and the best id, or `varies`; a
metric diff against a baseline also `baseline`, `delta`, `change_pct` and
`verdict`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from research_common.diff import MetricComparison, ValueComparison


def json_to_value(value: Any) -> struct_pb2.Value:
    """Plain JSON (None included) as a protobuf Value. A NaN or ±inf float
    stays a number here; the gateway renders it null."""
    message = struct_pb2.Value()
    set_value(message, value)
    return message


def set_value(message: struct_pb2.Value, value: Any) -> None:
    """Write `value` into the new, empty Value `message` (json_to_value's
    rules; an object or a list would merge into one already set). A map
    entry filled in place, rather than given a built Value to copy, costs
    half as much: a compare writes a hundred of them."""
    if value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int | float):
        message.number_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, dict):
        # Present even when empty: `{}` is not null.
        message.struct_value.SetInParent()
        message.struct_value.update(value)
    else:
        message.list_value.SetInParent()
        message.list_value.extend(value)


def write_metric_diff(
    target: Any, comparisons: Mapping[str, MetricComparison], best_field: str
) -> None:
    """Fill a `map<string, MetricDiff>`; `best_field` names the message's
    best-id field (`best_id` or `best_run_id`)."""
    for name, metric in comparisons.items():
        entry = target[name]
        entry.direction = metric.direction
        if metric.best is not None:
            setattr(entry, best_field, metric.best)
        values = entry.values
        for key, value in metric.values.items():
            set_value(values[key], value)
        against = metric.against
        if against is None:
            continue
        if against.baseline is not None:
            entry.baseline = against.baseline
        # Set even when empty: with a baseline the maps are objects, never null.
        for field, figures in (
            (entry.delta, against.delta),
            (entry.change_pct, against.change_pct),
            (entry.verdict, against.verdict),
        ):
            field.SetInParent()
            field.values.update(figures)


def write_value_diff(target: Any, comparisons: Mapping[str, ValueComparison]) -> None:
    """Fill a `map<string, ValueDiff>`."""
    for name, comparison in comparisons.items():
        entry = target[name]
        entry.varies = comparison.varies
        values = entry.values
        for key, value in comparison.values.items():
            set_value(values[key], value)
