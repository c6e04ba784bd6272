"""ListRuns' filter (CONTRACT §10): compiled into MLflow's search syntax,
which MLflow's own parser reads back as exactly the comparisons written;
what MLflow cannot search is 400; and the runs found on a real store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.utils.search_utils import SearchUtils

from research.tracking.v1 import tracking_pb2 as pb
from research_common.errors import InvalidArgument
from research_common.filters import And, Comparison, Field, parse
from tests.fixtures.grpc import assert_invalid, rpc_error
from tests.fixtures.mlflow import Seeded
from tracking_svc.filtering import FIELDS, STATUSES, compile_filter

if TYPE_CHECKING:
    from research.tracking.v1.tracking_pb2_grpc import TrackingServiceAsyncStub


def test_each_field_compiles_to_quoted_mlflow_syntax() -> None:
    text = (
        'run_type = "walk_forward" AND strategy_id != "s-1" AND status = "FINISHED" AND '
        'run_name = "r 1" AND start_time >= "2026-01-01T00:00:00Z" AND start_time < 5 AND '
        'tags.desk = "fx" AND params.max_depth = "6" AND metrics.oos.sharpe > 1.25 AND '
        "metrics.tiny < 1e-7"
    )
    tree = parse(text, FIELDS)
    assert tree is not None
    assert compile_filter(tree) == [
        "tags.`run_type` = 'walk_forward'",
        "tags.`strategy_id` != 's-1'",
        "attributes.status = 'FINISHED'",
        "attributes.run_name = 'r 1'",
        "attributes.start_time >= 1767225600000",
        "attributes.start_time < 5",
        "tags.`desk` = 'fx'",
        "params.`max_depth` = '6'",
        "metrics.`oos.sharpe` > 1.25",
        "metrics.`tiny` < 1e-07",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('run_type = "a" OR run_type = "b"', "filter uses OR at position 16: MLflow searches"),
        ('NOT run_type = "a"', "filter uses NOT at position 1"),
        ('tags.x > "a"', "filter tags.x compares strings with = or != only for runs, not >"),
        ("tags.x = null", "filter tags.x cannot be compared with null for runs"),
        ('run_name = "it\'s"', "filter run_name holds a quote, backtick, backslash"),
        ('params.p = "a`b"', "filter params.p holds a quote, backtick, backslash"),
        ('metrics.m = "1"', "filter metrics.m compares with a number"),
        ('status = "DONE"', "filter status is one of RUNNING, SCHEDULED, FINISHED"),
        ("start_time > 1.5", "filter start_time compares with epoch milliseconds"),
        (
            "owner = 1",
            "filter names an unknown field 'owner' at position 1; known fields: run_type",
        ),
    ],
)
def test_what_mlflow_cannot_search_is_refused(text: str, message: str) -> None:
    def compiled() -> list[str]:
        tree = parse(text, FIELDS)
        return compile_filter(tree) if tree is not None else []

    with pytest.raises(InvalidArgument) as raised:
        compiled()
    assert raised.value.message.startswith(message), raised.value.message


# Strings MLflow can take, with the characters a filter's syntax is made of.
SAFE_TEXT = st.text(
    st.characters(codec="utf-8", blacklist_characters="'\"`\\", blacklist_categories=["Cc", "Cs"]),
    max_size=12,
)
KEYS = st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)
COMPARISONS = st.one_of(
    st.builds(
        lambda key, op, value: Comparison(Field("metrics", key), op, value, 1),
        KEYS,
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    ),
    st.builds(
        lambda name, key, op, value: Comparison(Field(name, key), op, value, 1),
        st.sampled_from(["tags", "params"]),
        KEYS,
        st.sampled_from(["=", "!="]),
        SAFE_TEXT,
    ),
    st.builds(
        lambda name, op, value: Comparison(Field(name), op, value, 1),
        st.sampled_from(["run_type", "strategy_id", "run_name"]),
        st.sampled_from(["=", "!="]),
        SAFE_TEXT,
    ),
    st.builds(
        lambda op, value: Comparison(Field("status"), op, value, 1),
        st.sampled_from(["=", "!="]),
        st.sampled_from(STATUSES),
    ),
)


def _expected(comparison: Comparison) -> dict[str, Any]:
    field = comparison.field
    if field.name == "metrics":
        return {"type": "metric", "key": field.key, "comparator": comparison.op}
    if field.name in ("tags", "params"):
        kind = "tag" if field.name == "tags" else "parameter"
        return {
            "type": kind,
            "key": field.key,
            "comparator": comparison.op,
            "value": comparison.value,
        }
    if field.name in ("run_type", "strategy_id"):
        return {
            "type": "tag",
            "key": field.name,
            "comparator": comparison.op,
            "value": comparison.value,
        }
    return {
        "type": "attribute",
        "key": field.name,
        "comparator": comparison.op,
        "value": comparison.value,
    }


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(items=st.lists(COMPARISONS, min_size=1, max_size=6))
def test_mlflow_reads_back_exactly_the_comparisons_written(items: list[Comparison]) -> None:
    tree = items[0] if len(items) == 1 else And(tuple(items))
    parsed = SearchUtils.parse_search_filter(" and ".join(compile_filter(tree)))  # type: ignore[no-untyped-call]
    assert len(parsed) == len(items)
    for found, comparison in zip(parsed, items, strict=True):
        expected = _expected(comparison)
        if comparison.field.name == "metrics":
            assert float(found.pop("value")) == comparison.value
        assert found == expected


async def test_a_filtered_list_holds_the_runs_that_match(
    stub: TrackingServiceAsyncStub, seeded: Seeded
) -> None:
    everything = (await stub.ListRuns(pb.ListRunsRequest(limit=100))).runs
    expected = [
        run.run_id
        for run in everything
        if run.tags.get("run_type") == "training" and run.metrics.get("oos_sharpe", 0) > 1.0
    ]
    assert expected  # the seed has such runs
    response = await stub.ListRuns(
        pb.ListRunsRequest(filter='run_type = "training" AND metrics.oos_sharpe > 1')
    )
    assert [run.run_id for run in response.runs] == expected
    # ANDed with the seed's own filter parameters.
    response = await stub.ListRuns(
        pb.ListRunsRequest(strategy_id="nobody", filter='run_type = "training"')
    )
    assert list(response.runs) == []


async def test_a_filter_mlflow_cannot_search_is_invalid_argument(
    stub: TrackingServiceAsyncStub,
) -> None:
    request = pb.ListRunsRequest(filter='run_type = "a" OR run_type = "b"')
    error = await rpc_error(stub.ListRuns(request))
    assert_invalid(error, "filter", "filter uses OR at position 16")
