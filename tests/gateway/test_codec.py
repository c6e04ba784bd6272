"""JSON ⇄ protobuf by the contract's rules (CONTRACT §3): strict parsing,
rendering, query parameters and replies, against the backbone's messages and
the test-time `demo.widgets.v1` messages."""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any, TypeVar

import orjson
import pytest
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bindings import Binding, bindings_for
from gateway.errors import HttpError
from gateway.parsing import FieldError, parse_field, parse_into
from gateway.rendering import _timestamp, render, render_field
from gateway.transcoding import NO_BODY, Reply, build_reply, build_request
from research.experiments.v1 import experiments_pb2 as ex
from research.tracking.v1 import tracking_pb2 as tr
from tests.gateway.widgets_proto import widgets_module

EXPERIMENT_BINDINGS = {
    b.method.name: b
    for b in bindings_for(ex.DESCRIPTOR.services_by_name["ExperimentService"], "experiments")
}


@pytest.fixture(scope="module")
def widgets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with widgets_module(tmp_path_factory.mktemp("widgets")) as module:
        yield module


@pytest.fixture(scope="module")
def widget_bindings(widgets: ModuleType) -> dict[str, Binding]:
    found: dict[str, Binding] = {}
    for binding in bindings_for(widgets.DESCRIPTOR.services_by_name["WidgetService"], "w"):
        found.setdefault(binding.method.name, binding)  # the main rule, not additional ones
    return found


M = TypeVar("M", bound=Message)


def parsed(message: M, value: Any) -> M:
    parse_into(value, message)
    return message


def field_error(message: Message, value: Any) -> tuple[str, str]:
    """(path, text) of the FieldError that parsing `value` raises."""
    with pytest.raises(FieldError) as caught:
        parse_into(value, message)
    return caught.value.path, str(caught.value)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def timestamp(text: str) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromJsonString(text)
    return message


def http_error(
    binding: Binding, variables: dict[str, str], query: dict[str, list[str]], body: Any = NO_BODY
) -> HttpError:
    with pytest.raises(HttpError) as caught:
        build_request(binding, variables, query, body)
    return caught.value


# --- parsing: names ----------------------------------------------------------


def test_unknown_field_is_named() -> None:
    assert field_error(ex.CreateExperimentRequest(), {"strategy_id": "s", "metricz": {}}) == (
        "metricz",
        "metricz is not a field of CreateExperimentRequest (unknown field)",
    )


def test_unknown_nested_field_is_named_by_its_path() -> None:
    assert field_error(ex.UpdateExperimentRequest(), {"experiment": {"metricz": {}}}) == (
        "experiment.metricz",
        "experiment.metricz is not a field of Experiment (unknown field)",
    )
    assert field_error(tr.GetMetricHistoryResponse(), {"history": [{"step": 1}, {"stepp": 2}]}) == (
        "history[1].stepp",
        "history[1].stepp is not a field of MetricPoint (unknown field)",
    )


def test_parse_field_names_errors_from_the_bound_field() -> None:
    # body: "experiment" — the body is the root of the names.
    request = ex.UpdateExperimentRequest()
    field = request.DESCRIPTOR.fields_by_name["experiment"]
    with pytest.raises(FieldError) as caught:
        parse_field({"metricz": {}}, request, field, "")
    assert (caught.value.path, str(caught.value)) == (
        "metricz",
        "metricz is not a field of Experiment (unknown field)",
    )


def test_lower_camel_json_names_are_accepted() -> None:
    assert parsed(ex.CreateExperimentRequest(), {"strategyId": "s", "mlflowRunId": "r"}) == (
        ex.CreateExperimentRequest(strategy_id="s", mlflow_run_id="r")
    )


# --- parsing: types ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "text"),
    [
        ({"limit": "ten"}, "limit", "limit must be an integer, got 'ten'"),
        ({"limit": True}, "limit", "limit must be an integer, got a boolean"),
        ({"limit": 1.5}, "limit", "limit must be an integer, got 1.5"),
        ({"limit": "1.0"}, "limit", "limit must be an integer, got '1.0'"),
        ({"limit": [1]}, "limit", "limit must be an integer, got an array"),
        ({"strategy_id": 5}, "strategy_id", "strategy_id must be a string, got a number"),
        ({"strategy_id": True}, "strategy_id", "strategy_id must be a string, got a boolean"),
        ({"strategy_id": {}}, "strategy_id", "strategy_id must be a string, got an object"),
    ],
)
def test_wrong_scalar_types(value: dict[str, Any], path: str, text: str) -> None:
    assert field_error(ex.ListExperimentsRequest(), value) == (path, text)


def test_array_for_object_and_object_for_array() -> None:
    assert field_error(ex.UpdateExperimentRequest(), {"experiment": [1]}) == (
        "experiment",
        "experiment must be a JSON object, got an array",
    )
    assert field_error(ex.CreateExperimentRequest(), {"parameters": ["a"]}) == (
        "parameters",
        "parameters must be a JSON object, got an array",
    )
    assert field_error(ex.CreateExperimentRequest(), {"artifacts": ["a"]}) == (
        "artifacts",
        "artifacts must be a JSON object, got an array",
    )
    assert field_error(ex.CompareExperimentsRequest(), {"experiment_ids": {"a": 1}}) == (
        "experiment_ids",
        "experiment_ids must be a JSON array, got an object",
    )
    assert field_error(ex.CompareExperimentsRequest(), {"experiment_ids": "a"}) == (
        "experiment_ids",
        "experiment_ids must be a JSON array, got a string",
    )
    assert field_error(ex.CompareExperimentsRequest(), {"experiment_ids": ["a", 2]}) == (
        "experiment_ids[1]",
        "experiment_ids[1] must be a string, got a number",
    )


def test_the_body_itself_must_be_an_object() -> None:
    assert field_error(ex.CreateExperimentRequest(), ["a"]) == (
        "",
        "the body must be a JSON object, got an array",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2**31 - 1, 2**31 - 1), (-(2**31), -(2**31)), (0, 0)],
)
def test_int32_limits_accepted(value: int, expected: int) -> None:
    assert parsed(ex.ListExperimentsRequest(), {"skip": value}).skip == expected


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**63])
def test_int32_out_of_range(value: int) -> None:
    assert field_error(ex.ListExperimentsRequest(), {"skip": value}) == (
        "skip",
        f"skip must be between -2147483648 and 2147483647, got {value}",
    )


def test_int64_limits() -> None:
    top, bottom = 2**63 - 1, -(2**63)
    assert parsed(tr.MetricPoint(), {"step": top, "timestamp": bottom}) == tr.MetricPoint(
        step=top, timestamp=bottom
    )
    assert field_error(tr.MetricPoint(), {"step": 2**63}) == (
        "step",
        f"step must be between {bottom} and {top}, got {2**63}",
    )
    assert field_error(tr.MetricPoint(), {"timestamp": bottom - 1}) == (
        "timestamp",
        f"timestamp must be between {bottom} and {top}, got {bottom - 1}",
    )


def test_integral_floats_and_decimal_strings_are_integers() -> None:
    assert parsed(ex.ListExperimentsRequest(), {"skip": 3.0, "limit": "25"}) == (
        ex.ListExperimentsRequest(skip=3, limit=25)
    )
    assert parsed(tr.MetricPoint(), {"step": "-9223372036854775808", "timestamp": 1e15}) == (
        tr.MetricPoint(step=-(2**63), timestamp=10**15)
    )
    assert field_error(ex.ListExperimentsRequest(), {"limit": 1e10}) == (
        "limit",
        "limit must be between -2147483648 and 2147483647, got 10000000000",
    )


def test_doubles_accept_numbers_and_proto_json_strings() -> None:
    message = parsed(tr.MetricPoint(), {"value": 2})
    assert message.value == 2.0
    assert isinstance(message.value, float)
    assert math.isnan(parsed(tr.MetricPoint(), {"value": "NaN"}).value)
    assert parsed(tr.MetricPoint(), {"value": "-Infinity"}).value == -math.inf
    assert field_error(tr.MetricPoint(), {"value": True}) == (
        "value",
        "value must be a number, got true",
    )
    assert field_error(tr.MetricPoint(), {"value": "high"}) == (
        "value",
        "value must be a number, got 'high'",
    )


def test_bools_are_strict() -> None:
    assert parsed(ex.ImportRunResponse(), {"created": True}) == ex.ImportRunResponse(created=True)
    assert field_error(ex.ImportRunResponse(), {"created": "true"}) == (
        "created",
        "created must be true or false, got a string",
    )
    assert field_error(ex.ImportRunResponse(), {"created": 1}) == (
        "created",
        "created must be true or false, got a number",
    )


def test_enums_by_name_and_number(widgets: ModuleType) -> None:
    assert parsed(widgets.Widget(), {"color": "BLUE"}) == widgets.Widget(color=widgets.BLUE)
    assert parsed(widgets.Widget(), {"color": 2}) == widgets.Widget(color=widgets.GREEN)
    choices = "COLOR_UNSPECIFIED, RED, GREEN, BLUE (demo.widgets.v1.Color)"
    assert field_error(widgets.Widget(), {"color": "PURPLE"}) == (
        "color",
        f"color must be one of {choices}, got 'PURPLE'",
    )
    assert field_error(widgets.Widget(), {"color": "blue"}) == (
        "color",
        f"color must be one of {choices}, got 'blue'",
    )
    assert field_error(widgets.Widget(), {"color": 9}) == (
        "color",
        f"color must be one of {choices}, got 9",
    )
    assert field_error(widgets.Widget(), {"color": True}) == (
        "color",
        f"color must be one of {choices}, got true",
    )


def test_bytes_are_base64(widgets: ModuleType) -> None:
    assert parsed(widgets.Widget(), {"blob": "AP8="}).blob == b"\x00\xff"
    assert parsed(widgets.Widget(), {"blob": "AP8"}).blob == b"\x00\xff"
    assert parsed(widgets.Widget(), {"blob": "-_8"}).blob == b"\xfb\xff"
    assert field_error(widgets.Widget(), {"blob": 5}) == ("blob", "blob must be base64 text")


def test_null_leaves_a_field_unset() -> None:
    message = parsed(
        ex.CreateExperimentRequest(),
        {"strategy_id": None, "dataset_version": None, "parameters": None, "artifacts": None},
    )
    assert message == ex.CreateExperimentRequest()
    assert not message.HasField("dataset_version")
    assert not message.HasField("parameters")
    assert (
        parsed(ex.UpdateExperimentRequest(), {"experiment": None}) == ex.UpdateExperimentRequest()
    )


def test_struct_with_nested_values() -> None:
    value = {
        "lr": 0.01,
        "epochs": 200,
        "name": "ridge",
        "on": True,
        "none": None,
        "layers": [64, {"kind": "dense", "drop": [0.1, None]}, "x", False],
        "nested": {"deep": {"deeper": []}},
    }
    message = parsed(ex.CreateExperimentRequest(), {"strategy_id": "s", "parameters": value})
    assert message == ex.CreateExperimentRequest(strategy_id="s", parameters=struct(value))
    assert render(message)["parameters"] == value


def test_struct_must_be_an_object() -> None:
    assert field_error(ex.CreateExperimentRequest(), {"metrics": 1.5}) == (
        "metrics",
        "metrics must be a JSON object, got a number",
    )


def test_value_holds_null() -> None:
    message = parsed(ex.MetricDiff(), {"values": {"a": None, "b": 1.5, "c": "x"}})
    values = message.values
    assert values["a"] == struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    assert values["b"] == struct_pb2.Value(number_value=1.5)
    assert values["c"] == struct_pb2.Value(string_value="x")


def test_value_field_set_to_null_is_present(widgets: ModuleType) -> None:
    message = parsed(widgets.Widget(), {"extra": None})
    assert message.HasField("extra")
    assert message.extra == struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    assert parsed(widgets.Widget(), {"extra": [1, "a"]}).extra == struct_pb2.Value(
        list_value=struct_pb2.ListValue(
            values=[struct_pb2.Value(number_value=1), struct_pb2.Value(string_value="a")]
        )
    )


def test_value_field_set_to_an_empty_object_or_list_is_that_not_null(widgets: ModuleType) -> None:
    empty_object = parsed(widgets.Widget(), {"extra": {}}).extra
    assert empty_object.WhichOneof("kind") == "struct_value"
    assert empty_object == struct_pb2.Value(struct_value=struct_pb2.Struct())
    empty_list = parsed(widgets.Widget(), {"extra": []}).extra
    assert empty_list.WhichOneof("kind") == "list_value"


def test_timestamp_rfc3339() -> None:
    message = parsed(ex.Experiment(), {"created_at": "2024-01-02T03:04:05.5+01:00"})
    assert message.created_at == timestamp_pb2.Timestamp(seconds=1704161045, nanos=500_000_000)
    message = parsed(ex.Experiment(), {"updated_at": "1970-01-01T00:00:00Z"})
    assert message.HasField("updated_at")
    assert message.updated_at == timestamp_pb2.Timestamp()


BAD_TIMESTAMP = "created_at is not a valid Timestamp: "


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            "yesterday",
            BAD_TIMESTAMP + "Failed to parse timestamp: missing valid timezone offset.",
        ),
        (
            "2024-13-02T03:04:05Z",
            BAD_TIMESTAMP
            + "time data '2024-13-02T03:04:05' does not match format '%Y-%m-%dT%H:%M:%S'",
        ),
        (
            # no offset (protobuf's own wording is odd, but it is an error)
            "2024-01-02T03:04:05",
            BAD_TIMESTAMP + "time data '2024-01' does not match format '%Y-%m-%dT%H:%M:%S'",
        ),
        (1704161045, "created_at must be a string, got a number"),
    ],
)
def test_bad_timestamp(value: Any, text: str) -> None:
    assert field_error(ex.Experiment(), {"created_at": value}) == ("created_at", text)


def test_map_values_are_typed(widgets: ModuleType) -> None:
    assert parsed(ex.CreateExperimentRequest(), {"artifacts": {"model": "s3://m"}}) == (
        ex.CreateExperimentRequest(artifacts={"model": "s3://m"})
    )
    assert field_error(ex.CreateExperimentRequest(), {"artifacts": {"model": 1}}) == (
        "artifacts.model",
        "artifacts.model must be a string, got a number",
    )
    assert parsed(tr.Run(), {"metrics": {"a": 1, "b": "NaN"}}).metrics["a"] == 1.0
    assert field_error(tr.Run(), {"metrics": {"a": "x"}}) == (
        "metrics.a",
        "metrics.a must be a number, got 'x'",
    )
    assert field_error(tr.Run(), {"metrics": {"a": None}}) == (
        "metrics.a",
        "metrics.a must be a number, got null",
    )
    assert parsed(widgets.Widget(), {"counts": {"a": 3, "b": "4"}}).counts == {"a": 3, "b": 4}
    assert field_error(widgets.Widget(), {"counts": {"a": 1.5}}) == (
        "counts.a",
        "counts.a must be an integer, got 1.5",
    )
    assert field_error(widgets.Widget(), {"counts": {"a": 2**31}}) == (
        "counts.a",
        "counts.a must be between -2147483648 and 2147483647, got 2147483648",
    )


def test_map_of_messages() -> None:
    message = parsed(
        ex.CompareExperimentsResponse(),
        {"param_diff": {"lr": {"values": {"e1": 0.1, "e2": None}, "varies": True}}},
    )
    diff = message.param_diff["lr"]
    assert diff.varies is True
    assert diff.values["e1"] == struct_pb2.Value(number_value=0.1)
    assert field_error(
        ex.CompareExperimentsResponse(), {"param_diff": {"lr": {"varies": "yes"}}}
    ) == ("param_diff.lr.varies", "param_diff.lr.varies must be true or false, got a string")


def test_recursive_message(widgets: ModuleType) -> None:
    message = parsed(
        widgets.Widget(), {"name": "a", "parent": {"name": "b", "parent": {"size": 1}}}
    )
    assert message == widgets.Widget(
        name="a", parent=widgets.Widget(name="b", parent=widgets.Widget(size=1))
    )
    assert field_error(widgets.Widget(), {"parent": {"parent": {"sise": 1}}}) == (
        "parent.parent.sise",
        "parent.parent.sise is not a field of Widget (unknown field)",
    )


# --- rendering ---------------------------------------------------------------


def test_every_field_is_present() -> None:
    assert render(ex.Experiment(id="e1", strategy_id="s1")) == {
        "id": "e1",
        "strategy_id": "s1",
        "dataset_version": None,
        "feature_version": None,
        "model_version": None,
        "git_commit_hash": None,
        "mlflow_run_id": None,
        "parameters": None,
        "metrics": None,
        "artifacts": {},
        "created_at": None,
        "updated_at": None,
        "revision": 0,
        "etag": "",
        "deleted_at": None,
    }


def test_optional_scalar_set_to_its_default_is_not_null() -> None:
    rendered = render(ex.Experiment(feature_version="", parameters=struct({})))
    assert rendered["feature_version"] == ""
    assert rendered["dataset_version"] is None
    assert rendered["parameters"] == {}
    assert render(tr.Run(end_time=0))["end_time"] == 0
    assert render(tr.Run())["end_time"] is None


def test_full_experiment() -> None:
    experiment = ex.Experiment(
        id="e1",
        strategy_id="s1",
        dataset_version="d1",
        git_commit_hash="abc",
        parameters=struct({"n_estimators": 200, "lr": 1.5, "big": 2**60, "tags": ["a", 1]}),
        metrics=struct({"sharpe": 1.25, "trades": 40.0}),
        artifacts={"model": "s3://bucket/model.pkl"},
        created_at=timestamp("2024-05-06T07:08:09Z"),
        updated_at=timestamp("2024-05-06T07:08:09.250Z"),
        revision=3,
        etag="3-5f1e",
        deleted_at=timestamp("2024-05-07T00:00:00Z"),
    )
    rendered = render(experiment)
    assert rendered == {
        "id": "e1",
        "strategy_id": "s1",
        "dataset_version": "d1",
        "feature_version": None,
        "model_version": None,
        "git_commit_hash": "abc",
        "mlflow_run_id": None,
        "parameters": {"n_estimators": 200, "lr": 1.5, "big": float(2**60), "tags": ["a", 1]},
        "metrics": {"sharpe": 1.25, "trades": 40},
        "artifacts": {"model": "s3://bucket/model.pkl"},
        "created_at": "2024-05-06T07:08:09Z",
        "updated_at": "2024-05-06T07:08:09.250Z",
        "revision": 3,
        "etag": "3-5f1e",
        "deleted_at": "2024-05-07T00:00:00Z",
    }
    assert type(rendered["parameters"]["n_estimators"]) is int
    assert type(rendered["metrics"]["trades"]) is int
    assert type(rendered["parameters"]["lr"]) is float
    # Beyond 2**53 a double is not an exact integer: it stays a float.
    assert type(rendered["parameters"]["big"]) is float
    assert orjson.loads(orjson.dumps(rendered))["parameters"] == {
        "n_estimators": 200,
        "lr": 1.5,
        "big": 1.152921504606847e18,
        "tags": ["a", 1],
    }


def test_int64_stays_an_integer() -> None:
    rendered = render(tr.Run(run_id="r", start_time=2**62 + 1, end_time=-(2**63)))
    assert rendered["start_time"] == 2**62 + 1
    assert rendered["end_time"] == -(2**63)
    assert orjson.dumps({"t": rendered["start_time"]}) == b'{"t":4611686018427387905}'


def test_non_finite_doubles_render_as_null() -> None:
    run = tr.Run(
        run_id="r", metrics={"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 0.5}
    )
    assert orjson.loads(orjson.dumps(render(run)["metrics"])) == {
        "nan": None,
        "inf": None,
        "ninf": None,
        "ok": 0.5,
    }
    point = tr.MetricPoint(step=1, timestamp=2, value=math.inf)
    assert orjson.dumps(render(point)) == b'{"step":1,"timestamp":2,"value":null}'
    value = struct_pb2.Value(number_value=math.nan)
    diff = ex.MetricDiff(values={"e1": value}, direction="maximize")
    diff.delta.values["e1"] = math.nan  # in an unwrapped message too
    assert orjson.dumps(render(diff)) == (
        b'{"values":{"e1":null},"best_id":null,"direction":"maximize","baseline":null,'
        b'"delta":{"e1":null},"change_pct":null,"verdict":null}'
    )


def test_widget_rendering(widgets: ModuleType) -> None:
    widget = widgets.Widget(
        name="w",
        color=widgets.BLUE,
        size=3,
        tags=["a", "b"],
        attributes=struct({"n": 200}),
        scores={"x": math.nan},
        serial=2**40,
        blob=b"\x00\xff",
        made_at=timestamp("2024-01-02T03:04:05.123456789Z"),
        weight=-math.inf,
        counts={"k": 7},
        extra=struct_pb2.Value(string_value="e"),
        parent=widgets.Widget(name="p"),
    )
    assert orjson.loads(orjson.dumps(render(widget))) == {
        "name": "w",
        "color": "BLUE",
        "size": 3,
        "note": None,
        "tags": ["a", "b"],
        "attributes": {"n": 200},
        "scores": {"x": None},
        "serial": 2**40,
        "blob": "AP8=",
        "made_at": "2024-01-02T03:04:05.123456789Z",
        "weight": None,
        "counts": {"k": 7},
        "extra": "e",
        "parent": {
            "name": "p",
            "color": "COLOR_UNSPECIFIED",
            "size": 0,
            "note": None,
            "tags": [],
            "attributes": None,
            "scores": {},
            "serial": 0,
            "blob": "",
            "made_at": None,
            "weight": None,
            "counts": {},
            "extra": None,
            "parent": None,
        },
    }


def test_render_field_is_the_response_body() -> None:
    response = ex.ListExperimentsResponse(
        experiments=[ex.Experiment(id="a"), ex.Experiment(id="b")]
    )
    rendered = render_field(response, "experiments")
    assert [row["id"] for row in rendered] == ["a", "b"]
    assert render_field(ex.GetExperimentResponse(), "experiment") is None


def test_empty_message_and_field_mask() -> None:
    assert render(ex.DeleteExperimentResponse()) == {}
    request = ex.UpdateExperimentRequest(
        update_mask=field_mask_pb2.FieldMask(paths=["mlflow_run_id", "metrics"])
    )
    assert render(request)["update_mask"] == "mlflowRunId,metrics"


# --- query parameters and bodies (build_request) -----------------------------


def test_query_parameters_onto_request_fields(
    widget_bindings: dict[str, Binding], widgets: ModuleType
) -> None:
    request: Any = build_request(
        widget_bindings["ListWidgets"],
        {"shelf": "s1"},
        {
            "name_prefix": ["a b"],
            "page_size": ["10"],
            "labels": ["x", "y"],
            "view": ["FULL"],
            "filter.color": ["GREEN"],
            "filter.min_size": ["0"],
            "include_hidden": ["false"],
            "since": ["-9223372036854775808"],
        },
    )
    assert request == widgets.ListWidgetsRequest(
        shelf="s1",
        name_prefix="a b",
        page_size=10,
        labels=["x", "y"],
        view=widgets.FULL,
        filter=widgets.Filter(color=widgets.GREEN, min_size=0),
        include_hidden=False,
        since=-(2**63),
    )
    assert request.filter.HasField("min_size")
    assert request.HasField("include_hidden")


def test_list_experiments_query() -> None:
    request = build_request(
        EXPERIMENT_BINDINGS["ListExperiments"],
        {},
        {"strategy_id": ["s1"], "skip": ["0"], "limit": ["1000"], "dataset_version": ["d1"]},
    )
    assert request == ex.ListExperimentsRequest(
        strategy_id="s1", skip=0, limit=1000, dataset_version="d1"
    )
    assert request.HasField("skip")
    assert not request.HasField("feature_version")


def test_repeated_query_parameter_for_the_experiments_compare() -> None:
    request = build_request(
        EXPERIMENT_BINDINGS["CompareExperiments"],
        {},
        {"maximize": ["loss", "drawdown"], "minimize": ["turnover"]},
        ["e1", "e2"],
    )
    assert request == ex.CompareExperimentsRequest(
        experiment_ids=["e1", "e2"], maximize=["loss", "drawdown"], minimize=["turnover"]
    )


def bad_request(message: str, field: str) -> dict[str, Any]:
    return {
        "code": 3,
        "message": message,
        "detail": message,
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [{"field": field, "description": message}],
            }
        ],
    }


def test_unknown_query_parameter_is_400_naming_it() -> None:
    error = http_error(EXPERIMENT_BINDINGS["ListExperiments"], {}, {"strategy": ["s1"]})
    assert error.status == 400
    assert error.body() == bad_request(
        "strategy is not a query parameter of this route (unknown parameter)", "strategy"
    )


def test_unknown_nested_query_parameter(widget_bindings: dict[str, Binding]) -> None:
    error = http_error(widget_bindings["ListWidgets"], {"shelf": "s"}, {"filter.colour": ["RED"]})
    assert error.body() == bad_request(
        "filter.colour is not a field that can be set here", "filter.colour"
    )
    error = http_error(widget_bindings["ListWidgets"], {"shelf": "s"}, {"filter": ["RED"]})
    assert error.body() == bad_request("filter is not a field that can be set here", "filter")


def test_scalar_given_twice_is_400() -> None:
    error = http_error(EXPERIMENT_BINDINGS["ListExperiments"], {}, {"limit": ["5", "6"]})
    assert error.status == 400
    assert error.body() == bad_request("limit is given more than once", "limit")


def test_query_value_of_the_wrong_type_is_400() -> None:
    error = http_error(EXPERIMENT_BINDINGS["ListExperiments"], {}, {"limit": ["ten"]})
    assert error.body() == bad_request("limit must be an integer, got 'ten'", "limit")
    error = http_error(EXPERIMENT_BINDINGS["ListExperiments"], {}, {"limit": ["2147483648"]})
    assert error.body() == bad_request(
        "limit must be between -2147483648 and 2147483647, got 2147483648", "limit"
    )


def test_query_enum_by_name_only(widget_bindings: dict[str, Binding]) -> None:
    choices = "VIEW_UNSPECIFIED, BASIC, FULL (demo.widgets.v1.View)"
    error = http_error(widget_bindings["ListWidgets"], {"shelf": "s"}, {"view": ["HUGE"]})
    assert error.body() == bad_request(f"view must be one of {choices}, got 'HUGE'", "view")
    error = http_error(widget_bindings["ListWidgets"], {"shelf": "s"}, {"include_hidden": ["1"]})
    assert error.body() == bad_request(
        "include_hidden must be true or false, got '1'", "include_hidden"
    )


@pytest.mark.parametrize(
    ("method", "variables", "query", "body", "name"),
    [
        # body-bound fields
        (
            "UpdateExperiment",
            {"experiment_id": "e1"},
            {"experiment.mlflow_run_id": ["r"]},
            {},
            "experiment.mlflow_run_id",
        ),
        ("UpdateExperiment", {"experiment_id": "e1"}, {"experiment": ["r"]}, {}, "experiment"),
        ("CompareExperiments", {}, {"experiment_ids": ["e3"]}, ["e1", "e2"], "experiment_ids"),
        ("CreateExperiment", {}, {"strategy_id": ["s1"]}, {"strategy_id": "s1"}, "strategy_id"),
        ("ImportRun", {}, {"mlflow_run_id": ["r"]}, NO_BODY, "mlflow_run_id"),
        # path-bound fields
        (
            "GetExperiment",
            {"experiment_id": "e1"},
            {"experiment_id": ["e2"]},
            NO_BODY,
            "experiment_id",
        ),
        (
            "UpdateExperiment",
            {"experiment_id": "e1"},
            {"experiment_id": ["e2"]},
            {},
            "experiment_id",
        ),
    ],
)
def test_body_or_path_bound_field_in_the_query_is_400(
    method: str, variables: dict[str, str], query: dict[str, list[str]], body: Any, name: str
) -> None:
    error = http_error(EXPERIMENT_BINDINGS[method], variables, query, body)
    assert error.status == 400
    assert error.body() == bad_request(
        f"{name} is not a query parameter of this route (unknown parameter)", name
    )


def test_nested_path_variable_and_query_onto_its_siblings(
    widget_bindings: dict[str, Binding], widgets: ModuleType
) -> None:
    binding = widget_bindings["GetWidget"]
    variables = {"shelf": "s", "widget.name": "a/b"}
    assert build_request(binding, variables, {"widget.color": ["RED"], "view": ["BASIC"]}) == (
        widgets.GetWidgetRequest(
            shelf="s", widget=widgets.Widget(name="a/b", color=widgets.RED), view=widgets.BASIC
        )
    )
    error = http_error(binding, variables, {"widget.name": ["c"]})
    assert error.body() == bad_request(
        "widget.name is not a query parameter of this route (unknown parameter)", "widget.name"
    )


def test_body_on_a_route_without_one_is_400() -> None:
    error = http_error(EXPERIMENT_BINDINGS["GetExperiment"], {"experiment_id": "e1"}, {}, {"a": 1})
    message = "the body is not allowed: GET /api/v1/experiments/{experiment_id}"
    assert error.body() == {"code": 3, "message": message, "detail": message, "details": []}


def test_body_bound_to_a_repeated_field_is_a_bare_array(
    widget_bindings: dict[str, Binding], widgets: ModuleType
) -> None:
    binding = widget_bindings["TagWidgets"]
    assert build_request(binding, {"shelf": "s"}, {"color": ["BLUE"]}, ["a", "b"]) == (
        widgets.TagWidgetsRequest(shelf="s", names=["a", "b"], color=widgets.BLUE)
    )
    error = http_error(binding, {"shelf": "s"}, {}, {"names": ["a"]})
    message = "the body must be a JSON array, got an object"
    assert error.body() == {"code": 3, "message": message, "detail": message, "details": []}
    error = http_error(binding, {"shelf": "s"}, {}, ["a", 1])
    assert error.body() == bad_request("[1] must be a string, got a number", "[1]")


def test_strict_body_error_names_the_field() -> None:
    error = http_error(
        EXPERIMENT_BINDINGS["CreateExperiment"],
        {},
        {},
        {"strategy_id": "s", "dataset_versoin": "d"},
    )
    assert error.body() == bad_request(
        "dataset_versoin is not a field of CreateExperimentRequest (unknown field)",
        "dataset_versoin",
    )


# --- PATCH: the update mask --------------------------------------------------


def test_update_mask_is_the_keys_of_the_body() -> None:
    request = build_request(
        EXPERIMENT_BINDINGS["UpdateExperiment"],
        {"experiment_id": "e1"},
        {},
        {"mlflow_run_id": "r1", "parameters": {"a": 1}, "metrics": None},
    )
    assert request == ex.UpdateExperimentRequest(
        experiment_id="e1",
        experiment=ex.Experiment(mlflow_run_id="r1", parameters=struct({"a": 1})),
        update_mask=field_mask_pb2.FieldMask(paths=["mlflow_run_id", "parameters", "metrics"]),
    )


def test_update_mask_uses_proto_names_for_camel_keys() -> None:
    request = build_request(
        EXPERIMENT_BINDINGS["UpdateExperiment"], {"experiment_id": "e1"}, {}, {"mlflowRunId": None}
    )
    assert request == ex.UpdateExperimentRequest(
        experiment_id="e1",
        experiment=ex.Experiment(),
        update_mask=field_mask_pb2.FieldMask(paths=["mlflow_run_id"]),
    )
    assert request.HasField("experiment")


def test_an_explicit_update_mask_that_matches_the_body_is_kept() -> None:
    request = build_request(
        EXPERIMENT_BINDINGS["UpdateExperiment"],
        {"experiment_id": "e1"},
        {"update_mask": ["metrics,artifacts", "mlflow_run_id"]},
        {"mlflow_run_id": None, "metrics": {"x": 1}, "artifacts": {}},
    )
    assert request == ex.UpdateExperimentRequest(
        experiment_id="e1",
        experiment=ex.Experiment(metrics=struct({"x": 1})),
        update_mask=field_mask_pb2.FieldMask(paths=["metrics", "artifacts", "mlflow_run_id"]),
    )


@pytest.mark.parametrize(
    ("mask", "body", "field", "message"),
    [
        # A body key outside the mask was dropped silently before.
        (
            "parameters",
            {"parameters": {}, "mlflow_run_id": None},
            "mlflow_run_id",
            "mlflow_run_id is in the body but update_mask (parameters) does not name it",
        ),
        (
            "parameters",
            {"parameters": {}, "dataset_version": "ds2"},
            "dataset_version",
            "dataset_version is in the body but update_mask (parameters) does not name it",
        ),
        # So was a mask path the body does not hold (it cleared nothing, or
        # everything, depending on the caller's intent).
        (
            "metrics",
            {"parameters": {"a": 1}},
            "parameters",
            "parameters is in the body but update_mask (metrics) does not name it",
        ),
        (
            "metrics,parameters",
            {"parameters": {"a": 1}},
            "update_mask",
            "update_mask names 'metrics', which the body does not hold",
        ),
    ],
)
def test_an_update_mask_and_a_body_that_disagree_are_refused(
    mask: str, body: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(HttpError) as raised:
        build_request(
            EXPERIMENT_BINDINGS["UpdateExperiment"],
            {"experiment_id": "e1"},
            {"update_mask": [mask]},
            body,
        )
    assert raised.value.status == 400
    assert raised.value.message.startswith(message), raised.value.message
    assert raised.value.details[0]["field_violations"][0]["field"] == field


def test_an_empty_update_mask_is_no_mask() -> None:
    # `?update_mask=` with {"mlflow_run_id": null} cleared nothing before.
    request = build_request(
        EXPERIMENT_BINDINGS["UpdateExperiment"],
        {"experiment_id": "e1"},
        {"update_mask": [""]},
        {"mlflow_run_id": None},
    )
    assert request == ex.UpdateExperimentRequest(
        experiment_id="e1",
        experiment=ex.Experiment(),
        update_mask=field_mask_pb2.FieldMask(paths=["mlflow_run_id"]),
    )


def test_no_body_no_mask(widget_bindings: dict[str, Binding], widgets: ModuleType) -> None:
    assert build_request(EXPERIMENT_BINDINGS["UpdateExperiment"], {"experiment_id": "e1"}, {}) == (
        ex.UpdateExperimentRequest(experiment_id="e1")
    )
    request = build_request(
        widget_bindings["UpdateWidget"],
        {"shelf": "s", "widget.name": "w"},
        {},
        {"size": 2, "note": None},
    )
    assert request == widgets.UpdateWidgetRequest(
        shelf="s",
        widget=widgets.Widget(name="w", size=2),
        update_mask=field_mask_pb2.FieldMask(paths=["size", "note"]),
    )


# --- replies (build_reply) ---------------------------------------------------


EXPERIMENT = ex.Experiment(id="e/1", strategy_id="s1")


def test_create_is_201_with_location() -> None:
    reply = build_reply(
        EXPERIMENT_BINDINGS["CreateExperiment"], ex.CreateExperimentResponse(experiment=EXPERIMENT)
    )
    assert reply == Reply(201, render(EXPERIMENT), "/api/v1/experiments/e%2F1")


def test_import_created_is_201_with_location() -> None:
    reply = build_reply(
        EXPERIMENT_BINDINGS["ImportRun"], ex.ImportRunResponse(experiment=EXPERIMENT, created=True)
    )
    assert reply == Reply(201, render(EXPERIMENT), "/api/v1/experiments/e%2F1")


def test_import_existing_is_200_without_location() -> None:
    reply = build_reply(
        EXPERIMENT_BINDINGS["ImportRun"], ex.ImportRunResponse(experiment=EXPERIMENT, created=False)
    )
    assert reply == Reply(200, render(EXPERIMENT), None)


def test_delete_is_204_without_body() -> None:
    reply = build_reply(EXPERIMENT_BINDINGS["DeleteExperiment"], ex.DeleteExperimentResponse())
    assert reply == Reply(204, None, None)


def test_list_is_a_bare_array() -> None:
    response = ex.ListExperimentsResponse(experiments=[EXPERIMENT, ex.Experiment(id="e2")])
    reply = build_reply(EXPERIMENT_BINDINGS["ListExperiments"], response)
    assert reply == Reply(200, [render(EXPERIMENT), render(ex.Experiment(id="e2"))], None)
    empty = build_reply(EXPERIMENT_BINDINGS["ListExperiments"], ex.ListExperimentsResponse())
    assert empty == Reply(200, [], None)


def test_get_and_compare_replies() -> None:
    assert build_reply(
        EXPERIMENT_BINDINGS["GetExperiment"], ex.GetExperimentResponse(experiment=EXPERIMENT)
    ) == Reply(200, render(EXPERIMENT), None)
    reply = build_reply(EXPERIMENT_BINDINGS["CompareExperiments"], ex.CompareExperimentsResponse())
    assert reply == Reply(
        200,
        {
            "experiments": [],
            "metric_diff": {},
            "param_diff": {},
            "lineage_diff": {},
            "selection": {},
        },
        None,
    )


def test_location_of_widgets(widget_bindings: dict[str, Binding], widgets: ModuleType) -> None:
    reply = build_reply(
        widget_bindings["CreateWidget"],
        widgets.CreateWidgetResponse(shelf="main shelf", widget=widgets.Widget(name="a/b")),
    )
    assert (reply.status, reply.location) == (201, "/v1/shelves/main%20shelf/widgets/a%2Fb")
    assert reply.body["shelf"] == "main shelf"
    reply = build_reply(
        widget_bindings["ImportWidget"],
        widgets.ImportWidgetResponse(widget=widgets.Widget(name="w 1"), created=True),
    )
    assert (reply.status, reply.location, reply.body["name"]) == (201, "/v1/widgets/w%201", "w 1")


def test_update_mask_that_is_not_a_field_mask_is_a_plain_parameter(
    widget_bindings: dict[str, Binding], widgets: ModuleType
) -> None:
    request = build_request(
        widget_bindings["SearchWidgets"], {"path": "shelves/a"}, {"update_mask": ["x,y"]}, {}
    )
    assert request == widgets.SearchWidgetsRequest(
        path="shelves/a", filter=widgets.Filter(), update_mask="x,y"
    )


@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(
    seconds=st.integers(-62_135_596_800, 253_402_300_799),
    nanos=st.one_of(
        st.just(0),
        st.integers(0, 999).map(lambda n: n * 1_000_000),
        st.integers(0, 999_999).map(lambda n: n * 1_000),
        st.integers(0, 999_999_999),
    ),
)
def test_a_timestamp_renders_as_protobufs_own_text(seconds: int, nanos: int) -> None:
    message = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert _timestamp(message) == message.ToJsonString()


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(-62_135_596_801, 0), (253_402_300_800, 0), (0, -1), (0, 10**9)]
)
def test_a_timestamp_out_of_range_is_refused_as_protobuf_refuses_it(
    seconds: int, nanos: int
) -> None:
    message = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(ValueError, match="Timestamp is not valid") as ours:
        _timestamp(message)
    with pytest.raises(ValueError, match="Timestamp is not valid") as theirs:
        message.ToJsonString()
    assert str(ours.value) == str(theirs.value)
