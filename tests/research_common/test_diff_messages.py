"""The comparisons written into response messages: each value of a diff is
the Value protobuf's own Struct conversion makes of it, whatever its JSON
kind."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from research.experiments.v1 import experiments_pb2
from research_common.diff import MetricComparison, ValueComparison
from research_common.diff_messages import json_to_value, write_metric_diff, write_value_diff

# One value of each JSON kind, nested ones included.
VALUES: dict[str, Any] = {
    "number": 1.5,
    "integer": 7,
    "zero": 0,
    "text": "mv-2",
    "empty text": "",
    "missing": None,
    "true": True,
    "false": False,
    "object": {"depth": [3, 5], "on": True, "none": None},
    "empty object": {},
    "list": [1, "two", None, {"three": 3.0}],
    "empty list": [],
}


def _protobufs_own(value: Any) -> struct_pb2.Value:
    holder = struct_pb2.Struct()
    holder.update({"v": value})
    return holder.fields["v"]


def test_a_value_diff_holds_each_value_as_protobuf_converts_it() -> None:
    response = experiments_pb2.CompareExperimentsResponse()
    write_value_diff(response.param_diff, {"grid": ValueComparison(VALUES, varies=True)})
    entry = response.param_diff["grid"]
    assert entry.varies is True
    assert sorted(entry.values) == sorted(VALUES)
    for key, value in VALUES.items():
        assert entry.values[key] == _protobufs_own(value), key
        assert json_to_value(value) == _protobufs_own(value), key


def test_a_metric_diff_holds_each_value_and_the_best() -> None:
    response = experiments_pb2.CompareExperimentsResponse()
    values = {"a": 1.25, "b": None, "c": 3}
    comparison = MetricComparison(values, best="c", direction="maximize")
    write_metric_diff(response.metric_diff, {"sharpe": comparison}, "best_id")
    entry = response.metric_diff["sharpe"]
    assert (entry.best_id, entry.direction) == ("c", "maximize")
    assert {key: entry.values[key] for key in entry.values} == {
        key: _protobufs_own(value) for key, value in values.items()
    }
