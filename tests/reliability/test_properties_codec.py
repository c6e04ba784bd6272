"""Property-based tests of the JSON <-> protobuf transcoding of the gateway
(gateway/parsing.py, gateway/rendering.py, gateway/transcoding.py): what
parses renders back to the same JSON, and no JSON body of any shape makes
any route's request builder fail other than with a 400 naming a field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.bindings import Binding, bindings_for
from gateway.errors import HttpError
from gateway.parsing import FieldError, parse_into
from gateway.rendering import render
from gateway.transcoding import build_request
from research.experiments.v1 import experiments_pb2 as ex
from research.tracking.v1 import tracking_pb2 as tr
from research_common.free_form import MAX_SAFE_INTEGER, unsafe_number

# The same examples on every run (CI must not turn red at random); 200 each.
PROPERTIES = settings(max_examples=200, deadline=None, database=None, derandomize=True)
BINDINGS: list[Binding] = [
    *bindings_for(ex.DESCRIPTOR.services_by_name["ExperimentService"], "experiments"),
    *bindings_for(tr.DESCRIPTOR.services_by_name["TrackingService"], "tracking"),
]
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
# What a Struct holds exactly, and so what the gateway accepts in one:
# numbers within ±(2^53 - 1) (beyond, a double cannot tell one integer from
# the next: CONTRACT §3), strings, booleans, null, and nesting (kept shallow).
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.floats(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
    TEXT,
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
OPTIONAL_TEXT = st.one_of(st.none(), TEXT)
ANY_JSON = st.recursive(
    st.one_of(SCALARS, st.floats()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            TEXT
            | st.sampled_from(
                ["strategy_id", "parameters", "metrics", "run_ids", "mlflow_run_id", "artifacts"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=10,
)


@PROPERTIES
@given(
    strategy_id=TEXT,
    lineage=st.fixed_dictionaries(
        {},
        optional={
            name: OPTIONAL_TEXT
            for name in (
                "dataset_version",
                "feature_version",
                "model_version",
                "git_commit_hash",
                "mlflow_run_id",
            )
        },
    ),
    parameters=st.dictionaries(TEXT, DOCUMENTS, max_size=5),
    metrics=st.dictionaries(TEXT, DOCUMENTS, max_size=5),
    artifacts=st.dictionaries(TEXT, TEXT, max_size=5),
)
def test_a_parsed_experiment_renders_back_to_the_same_json(
    strategy_id: str,
    lineage: dict[str, str | None],
    parameters: dict[str, Any],
    metrics: dict[str, Any],
    artifacts: dict[str, str],
) -> None:
    body = {
        "strategy_id": strategy_id,
        **lineage,
        "parameters": parameters,
        "metrics": metrics,
        "artifacts": artifacts,
    }
    request = ex.CreateExperimentRequest()
    parse_into(body, request)
    rendered = render(request)
    # Every field is present; an unset optional is null; values keep their
    # kind and value through the Struct (orjson sees what a client sees).
    assert set(rendered) == {f.name for f in ex.CreateExperimentRequest.DESCRIPTOR.fields}
    # request_id is a plain string (AIP-155): empty, not null, when unset.
    expected = {**{name: None for name in rendered}, "request_id": "", **body}
    assert orjson.loads(orjson.dumps(rendered)) == orjson.loads(orjson.dumps(expected))
    # Parsing the rendering again renders the same (not always the same
    # message: -0.0 renders as the integer 0, equal as a number).
    again = ex.CreateExperimentRequest()
    parse_into({k: v for k, v in rendered.items() if v is not None}, again)
    assert render(again) == rendered


@PROPERTIES
@given(
    number=st.integers(MAX_SAFE_INTEGER + 1, 2**80).map(lambda n: n * (1 if n % 2 else -1))
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) > MAX_SAFE_INTEGER),
    nested=st.booleans(),
)
def test_a_number_a_double_cannot_keep_is_refused_by_its_path(number: float, nested: bool) -> None:
    parameters = {"outer": [0, {"n": number}]} if nested else {"n": number}
    with pytest.raises(FieldError) as raised:
        parse_into({"parameters": parameters}, ex.CreateExperimentRequest())
    assert raised.value.path == ("parameters.outer[1].n" if nested else "parameters.n")
    assert raised.value.problem == unsafe_number(str(number))


def outcome(build: Callable[[], Message]) -> Message | HttpError:
    """The message built, or the HttpError raised (anything else fails)."""
    try:
        return build()
    except HttpError as error:
        return error


@PROPERTIES
@given(body=ANY_JSON, data=st.data())
def test_any_json_body_is_a_message_or_a_400(body: Any, data: st.DataObject) -> None:
    binding = data.draw(st.sampled_from([b for b in BINDINGS if b.body is not None]))
    variables = {capture.field: "0" * 32 for capture in binding.template.captures}
    message = outcome(lambda: build_request(binding, variables, {}, body))
    if isinstance(message, HttpError):
        assert message.status == 400
        assert message.body()["code"] == 3
        assert message.body()["message"]
    else:
        assert message.DESCRIPTOR == binding.request_class.DESCRIPTOR
        orjson.dumps(render(message))  # and it renders


@PROPERTIES
@given(
    query=st.dictionaries(TEXT, st.lists(TEXT, min_size=1, max_size=3), max_size=4), data=st.data()
)
def test_any_query_is_a_message_or_a_400(query: dict[str, list[str]], data: st.DataObject) -> None:
    binding = data.draw(st.sampled_from(BINDINGS))
    variables = {capture.field: "0" * 32 for capture in binding.template.captures}
    message = outcome(lambda: build_request(binding, variables, query))
    if isinstance(message, HttpError):
        assert message.status == 400
        assert message.body()["code"] == 3
    else:
        assert message.DESCRIPTOR == binding.request_class.DESCRIPTOR
