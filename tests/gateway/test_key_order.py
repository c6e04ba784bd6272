"""The `key_order` and `every_key` field options and the `unwrap` message
option: a compare's objects keyed by id list the compared ids in the order of
the request (though a protobuf map keeps none), every one of them where the
map is `every_key` (null for an id it lacks), and a wrapper message protobuf
needs (a map of maps) is its one field in JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import struct_pb2
from openapi_spec_validator import validate

from gateway.bindings import Binding, bindings_for
from gateway.key_orders import KeyOrder
from gateway.openapi import build_document
from gateway.rendering import render
from gateway.templates import TemplateError
from gateway.transcoding import build_reply
from research.experiments.v1 import experiments_pb2 as pb
from research.tracking.v1 import tracking_pb2 as tr
from tests.gateway.openapi_checks import body_validator
from tests.gateway.widgets_proto import proto_module

SERVICE = pb.DESCRIPTOR.services_by_name["ExperimentService"]
COMPARE = next(
    b for b in bindings_for(SERVICE, "experiments") if b.method.name == "CompareExperiments"
)
RUNS_COMPARE = next(
    b
    for b in bindings_for(tr.DESCRIPTOR.services_by_name["TrackingService"], "tracking")
    if b.method.name == "CompareRuns"
)
IDS = [f"{n:08x}-0000-4000-8000-000000000000" for n in (9, 3, 7, 1)]


def _response() -> pb.CompareExperimentsResponse:
    response = pb.CompareExperimentsResponse()
    # Inserted in another order than the request's.
    for index, experiment_id in enumerate(sorted(IDS)):
        response.metric_diff["sharpe"].values[experiment_id].number_value = index
        response.param_diff["lr"].values[experiment_id].string_value = str(index)
        response.lineage_diff["strategy_id"].values[
            experiment_id
        ].null_value = struct_pb2.NULL_VALUE
    response.metric_diff["sharpe"].direction = "maximize"
    return response


def in_order(value: Any) -> str:
    """`value` as JSON text, which keeps the order of its keys (`==` on
    dicts does not look at it)."""
    return json.dumps(value)


def test_values_follow_the_request_order() -> None:
    request = pb.CompareExperimentsRequest(experiment_ids=IDS)
    body = build_reply(COMPARE, _response(), request).body
    for section, key in (
        ("metric_diff", "sharpe"),
        ("param_diff", "lr"),
        ("lineage_diff", "strategy_id"),
    ):
        assert list(body[section][key]["values"]) == IDS, section
    assert body["metric_diff"]["sharpe"]["values"][IDS[0]] == 3


def test_keys_the_request_does_not_name_follow_in_map_order() -> None:
    request = pb.CompareExperimentsRequest(experiment_ids=[IDS[2]])
    values = build_reply(COMPARE, _response(), request).body["metric_diff"]["sharpe"]["values"]
    assert next(iter(values)) == IDS[2]
    assert sorted(values) == sorted(IDS)


def test_the_bindings_know_which_maps_are_ordered() -> None:
    ids = "experiment_ids"
    assert COMPARE.key_orders == (
        KeyOrder(("metric_diff", "*", "values"), ids),
        # An unwrapped message adds no segment: `delta` is the map itself.
        KeyOrder(("metric_diff", "*", "delta"), ids, every_key=True),
        KeyOrder(("metric_diff", "*", "change_pct"), ids, every_key=True),
        KeyOrder(("metric_diff", "*", "verdict"), ids),
        KeyOrder(("param_diff", "*", "values"), ids),
        KeyOrder(("lineage_diff", "*", "values"), ids),
    )
    runs = "run_ids"
    assert RUNS_COMPARE.key_orders == (
        KeyOrder(("metric_diff", "*", "values"), runs),
        KeyOrder(("metric_diff", "*", "delta"), runs, every_key=True),
        KeyOrder(("metric_diff", "*", "change_pct"), runs, every_key=True),
        KeyOrder(("metric_diff", "*", "verdict"), runs),
        KeyOrder(("param_diff", "*", "values"), runs),
        KeyOrder(("lineage_diff", "*", "values"), runs),
        # map<string, MetricFoldStats>, each unwrapped to its map of runs.
        KeyOrder(("fold_stats", "*"), runs, every_key=True),
        KeyOrder(("paired", "*"), runs),
    )


# --- unwrap and every_key on the real compare of runs ----------------------------

FOLDS_A = tr.FoldStats(
    folds=3, mean=0.5, std=0.25, min=0.25, max=0.75, worst=0.25, positive_share=1.0, skipped=1
)
FOLDS_A_JSON = {
    "folds": 3,
    "mean": 0.5,
    "std": 0.25,
    "min": 0.25,
    "max": 0.75,
    "worst": 0.25,
    "positive_share": 1.0,
    "skipped": 1,
}


def _runs_response() -> tr.CompareRunsResponse:
    response = tr.CompareRunsResponse()
    m = response.metric_diff["m"]
    for run_id, value in (("c", 0.5), ("b", 2.5), ("a", 1.0)):
        m.values[run_id].number_value = value
    m.best_run_id, m.direction, m.baseline = "b", "maximize", 1.0
    # "a" has no entry (nor "c"): every_key lists them, as null.
    m.delta.values["b"] = 1.5
    m.change_pct.values["b"] = 150.0
    for run_id, verdict in (("c", "worse"), ("b", "better"), ("a", "baseline")):
        m.verdict.values[run_id] = verdict
    # No baseline figures at all: delta, change_pct and verdict stay unset.
    response.metric_diff["n"].direction = "minimize"
    # Only run "a" has two steps or more of "m".
    response.fold_stats["m"].runs["a"].CopyFrom(FOLDS_A)
    response.paired["m"].runs["c"].n = 2
    response.paired["m"].runs["b"].n = 3
    response.overfitting["m"].CopyFrom(tr.Overfitting(runs=3, steps=2, reason="too few"))
    return response


def test_unwrapped_maps_list_every_requested_run_in_request_order() -> None:
    request = tr.CompareRunsRequest(run_ids=["a", "b", "c"])
    body = build_reply(RUNS_COMPARE, _runs_response(), request).body
    expected: dict[str, Any] = {
        "runs": [],
        "metric_diff": {
            "m": {
                "values": {"a": 1, "b": 2.5, "c": 0.5},
                "best_run_id": "b",
                "direction": "maximize",
                "baseline": 1.0,
                "delta": {"a": None, "b": 1.5, "c": None},
                "change_pct": {"a": None, "b": 150.0, "c": None},
                # key_order without every_key: only the ids the map holds.
                "verdict": {"a": "baseline", "b": "better", "c": "worse"},
            },
            # An unset unwrapped message is null: nothing to order or fill.
            "n": {
                "values": {},
                "best_run_id": None,
                "direction": "minimize",
                "baseline": None,
                "delta": None,
                "change_pct": None,
                "verdict": None,
            },
        },
        "param_diff": {},
        "lineage_diff": {},
        "fold_stats": {"m": {"a": FOLDS_A_JSON, "b": None, "c": None}},
        "paired": {
            "m": {
                "b": {
                    "n": 3,
                    "wins": 0,
                    "losses": 0,
                    "ties": 0,
                    "mean_diff": None,
                    "sign_test_p": None,
                },
                "c": {
                    "n": 2,
                    "wins": 0,
                    "losses": 0,
                    "ties": 0,
                    "mean_diff": None,
                    "sign_test_p": None,
                },
            }
        },
        "overfitting": {
            "m": {
                "runs": 3,
                "steps": 2,
                "blocks": None,
                "combinations": None,
                "pbo": None,
                "reason": "too few",
            }
        },
    }
    assert body == expected
    # The maps keyed by run id, in request order (the others keep the map's).
    m, expected_m = body["metric_diff"]["m"], expected["metric_diff"]["m"]
    for figure in ("values", "delta", "change_pct", "verdict"):
        assert in_order(m[figure]) == in_order(expected_m[figure]), figure
    for section in ("fold_stats", "paired"):
        assert in_order(body[section]["m"]) == in_order(expected[section]["m"]), section


def test_every_key_follows_any_request_order() -> None:
    request = tr.CompareRunsRequest(run_ids=["c", "b", "a"])
    body = build_reply(RUNS_COMPARE, _runs_response(), request).body
    m = body["metric_diff"]["m"]
    assert in_order(m["delta"]) == in_order({"c": None, "b": 1.5, "a": None})
    assert in_order(m["verdict"]) == in_order({"c": "worse", "b": "better", "a": "baseline"})
    assert in_order(body["fold_stats"]) == in_order(
        {"m": {"c": None, "b": None, "a": FOLDS_A_JSON}}
    )
    assert list(body["paired"]["m"]) == ["c", "b"]


def test_an_id_the_request_does_not_name_follows_the_requested_ones() -> None:
    request = tr.CompareRunsRequest(run_ids=["c", "a"])
    fold_stats = build_reply(RUNS_COMPARE, _runs_response(), request).body["fold_stats"]
    assert in_order(fold_stats) == in_order({"m": {"c": None, "a": FOLDS_A_JSON}})
    request = tr.CompareRunsRequest(run_ids=["c"])
    delta = build_reply(RUNS_COMPARE, _runs_response(), request).body["metric_diff"]["m"]["delta"]
    assert in_order(delta) == in_order({"c": None, "b": 1.5})


def test_without_the_request_unwrapped_maps_hold_only_their_entries() -> None:
    body = build_reply(RUNS_COMPARE, _runs_response()).body
    assert body["metric_diff"]["m"]["delta"] == {"b": 1.5}
    assert body["fold_stats"] == {"m": {"a": FOLDS_A_JSON}}
    assert render(tr.RunNumbers(values={"x": 2.0})) == {"x": 2.0}
    assert render(tr.MetricFoldStats()) == {}


# --- any service: the options read from the descriptors ----------------------------

KEYS_PROTO = """\
syntax = "proto3";

package demo.keyorder.v1;

import "google/api/annotations.proto";
import "research/http/v1/response.proto";

service Fine {
  // The reply itself is unwrapped: the body is its map.
  rpc GetNumbers(IdsRequest) returns (Numbers) {
    option (google.api.http) = {post: "/v1/numbers" body: "*"};
  }
  // response_body on a map of unwrapped maps.
  rpc GetBoard(IdsRequest) returns (Board) {
    option (google.api.http) = {post: "/v1/board" body: "*" response_body: "scores"};
  }
  // Unwrapped messages as list items and as a message field.
  rpc GetRows(IdsRequest) returns (Rows) {
    option (google.api.http) = {post: "/v1/rows" body: "*"};
  }
}

service EveryKeyAlone {
  rpc Get(IdsRequest) returns (Alone) {
    option (google.api.http) = {get: "/v1/alone"};
  }
}

service UnwrapMissing {
  rpc Get(IdsRequest) returns (Holder) {
    option (google.api.http) = {get: "/v1/holder"};
  }
}

service KeyOrderNotString {
  rpc Get(IdsRequest) returns (NotString) {
    option (google.api.http) = {get: "/v1/not-string"};
  }
}

message IdsRequest {
  repeated string ids = 1;
  repeated int32 numbers = 2;
}

message Numbers {
  option (research.http.v1.unwrap) = "values";

  map<string, double> values = 1 [
    (research.http.v1.key_order) = "ids",
    (research.http.v1.every_key) = true
  ];
  // Never rendered: the message is its `values`.
  string note = 2;
}

message Board {
  map<string, Numbers> scores = 1 [
    (research.http.v1.key_order) = "ids",
    (research.http.v1.every_key) = true
  ];
}

message Rows {
  repeated Numbers rows = 1;
  Numbers total = 2;
}

message Alone {
  map<string, double> values = 1 [(research.http.v1.every_key) = true];
}

message Missing {
  option (research.http.v1.unwrap) = "value";

  map<string, double> values = 1;
}

message Holder {
  map<string, Missing> by_key = 1;
}

message NotString {
  map<string, double> values = 1 [(research.http.v1.key_order) = "numbers"];
}
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    directory: Path = tmp_path_factory.mktemp("keyorder")
    with proto_module(directory, "demo/keyorder/v1/keyorder.proto", KEYS_PROTO) as module:
        yield module


def _fine(keys: ModuleType) -> dict[str, Binding]:
    service = keys.DESCRIPTOR.services_by_name["Fine"]
    return {b.method.name: b for b in bindings_for(service, "keys")}


def test_an_unwrapped_reply_is_its_map(keys: ModuleType) -> None:
    binding = _fine(keys)["GetNumbers"]
    assert binding.key_orders == (KeyOrder((), "ids", every_key=True),)
    reply = keys.Numbers(values={"y": 2.0, "z": 3.0}, note="not rendered")
    body = build_reply(binding, reply, keys.IdsRequest(ids=["x", "y"])).body
    assert in_order(body) == in_order({"x": None, "y": 2.0, "z": 3.0})


def test_a_response_body_map_of_unwrapped_maps(keys: ModuleType) -> None:
    binding = _fine(keys)["GetBoard"]
    assert binding.key_orders == (
        KeyOrder((), "ids", every_key=True),
        KeyOrder(("*",), "ids", every_key=True),
    )
    reply = keys.Board()
    reply.scores["y"].values["y"] = 1.0
    reply.scores["x"].SetInParent()  # an empty map: every id null
    body = build_reply(binding, reply, keys.IdsRequest(ids=["x", "y"])).body
    expected = {"x": {"x": None, "y": None}, "y": {"x": None, "y": 1.0}}
    assert in_order(body) == in_order(expected)


def test_unwrapped_list_items_and_an_unset_one(keys: ModuleType) -> None:
    binding = _fine(keys)["GetRows"]
    assert binding.key_orders == (
        KeyOrder(("rows", "*"), "ids", every_key=True),
        KeyOrder(("total",), "ids", every_key=True),
    )
    reply = keys.Rows(rows=[keys.Numbers(values={"b": 1.0}), keys.Numbers()])
    body = build_reply(binding, reply, keys.IdsRequest(ids=["a", "b"])).body
    expected = {"rows": [{"a": None, "b": 1.0}, {"a": None, "b": None}], "total": None}
    assert in_order(body) == in_order(expected)


def test_the_document_shows_unwrapped_replies_as_they_are_answered(keys: ModuleType) -> None:
    bindings = _fine(keys)
    document = build_document(list(bindings.values()))
    validate(document)
    request = keys.IdsRequest(ids=["x", "y"])
    board = keys.Board()
    board.scores["y"].values["y"] = 1.0
    answers = {
        "/v1/numbers": (bindings["GetNumbers"], keys.Numbers(values={"y": 2.0})),
        "/v1/board": (bindings["GetBoard"], board),
        "/v1/rows": (bindings["GetRows"], keys.Rows(rows=[keys.Numbers()])),
    }
    for path, (binding, reply) in answers.items():
        body = build_reply(binding, reply, request).body
        body_validator(document, "POST", path, 200).validate(body)
    numbers = document["components"]["schemas"]["demo.keyorder.v1.Numbers"]
    assert numbers == {
        "type": "object",
        "additionalProperties": {"type": "number", "format": "double", "nullable": True},
    }


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            "EveryKeyAlone",
            "demo.keyorder.v1.Alone.values: every_key needs key_order, the request field of "
            "the ids",
        ),
        # Found through a map's values, as it would be rendered.
        ("UnwrapMissing", "demo.keyorder.v1.Missing: unwrap names 'value', which is not its field"),
        (
            "KeyOrderNotString",
            "demo.keyorder.v1.NotString.values: key_order 'numbers' is not a repeated string "
            "field of demo.keyorder.v1.IdsRequest",
        ),
    ],
)
def test_an_option_that_cannot_be_served_is_refused_at_start_up(
    keys: ModuleType, service: str, message: str
) -> None:
    with pytest.raises(TemplateError) as refused:
        bindings_for(keys.DESCRIPTOR.services_by_name[service], "keys")
    assert str(refused.value) == message
