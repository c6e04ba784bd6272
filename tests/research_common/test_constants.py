"""The rules the gateway and the services share (research_common.constants)."""

from __future__ import annotations

import re

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.descriptor import FieldDescriptor

from research_common.constants import (
    REQUEST_ID_PATTERN,
    WRAPPER_TYPES,
    WRAPPER_VALUE_TYPES,
    valid_request_id,
)
from research_common.interceptor import _request_id


@pytest.mark.parametrize(
    "given", ["req-77", "notebook-42.a:b", "A_b.c:d-e", "x", "7" * 128, "0" * 32]
)
def test_plain_request_ids_are_kept(given: str) -> None:
    assert valid_request_id(given)
    assert _request_id([("x-request-id", given)]) == given


@pytest.mark.parametrize(
    "given", ["", "7" * 129, "with space", "a/b", "é", "tab\there", "new\nline", "a,b"]
)
def test_other_request_ids_are_replaced_by_both_services(given: str) -> None:
    assert not valid_request_id(given)
    replaced = _request_id([("x-request-id", given)])
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_the_openapi_pattern_is_the_rule() -> None:
    # The gateway's OpenAPI document states the rule as ^pattern$.
    assert f"^{REQUEST_ID_PATTERN}$" == "^[A-Za-z0-9._:-]{1,128}$"


def test_the_wrapper_types_are_those_of_wrappers_proto() -> None:
    names = {
        message.full_name for message in wrappers_pb2.DESCRIPTOR.message_types_by_name.values()
    }
    assert {wrapper.DESCRIPTOR.full_name for wrapper in WRAPPER_TYPES} == names
    assert WRAPPER_VALUE_TYPES["google.protobuf.Int64Value"] == FieldDescriptor.TYPE_INT64
    assert WRAPPER_VALUE_TYPES["google.protobuf.BytesValue"] == FieldDescriptor.TYPE_BYTES
