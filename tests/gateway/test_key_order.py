"""The `key_order` field option: a compare's `values` objects list the
compared ids in the order of the request, though a protobuf map keeps none."""

from __future__ import annotations

from google.protobuf import struct_pb2

from gateway.bindings import bindings_for
from gateway.transcoding import build_reply
from research.experiments.v1 import experiments_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ExperimentService"]
COMPARE = next(
    b for b in bindings_for(SERVICE, "experiments") if b.method.name == "CompareExperiments"
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
    assert COMPARE.key_orders == (
        (("metric_diff", "*", "values"), "experiment_ids"),
        (("param_diff", "*", "values"), "experiment_ids"),
        (("lineage_diff", "*", "values"), "experiment_ids"),
    )
