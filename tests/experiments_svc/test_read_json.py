"""The service reads stored JSON documents with experiments_svc.db.read_json:
orjson where it reads as json.loads does, json.loads where it would not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments_svc.db import read_json

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _exactly(value: Any) -> str:
    """`value` with each number's kind kept (1 and 1.0 differ here)."""
    return repr(value)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.dictionaries(st.text(), _DOCUMENTS, max_size=6))
def test_reads_every_document_as_json_loads_does(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert _exactly(read_json(text)) == _exactly(json.loads(text))


# Numbers as PostgreSQL's numeric writes them into JSON built in SQL
# (`(i % 300) / 100.0` is 1.2300000000000000): more digits than a double
# holds, in fractions and exponents both.
_LONG_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(
    lambda value: format(value, "f") if abs(value.adjusted()) < 30 else str(value)
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(_LONG_DECIMALS, min_size=1, max_size=8))
def test_reads_long_decimals_as_json_loads_does(numbers: list[str]) -> None:
    text = "{" + ", ".join(f'"k{i}": {number}' for i, number in enumerate(numbers)) + "}"
    assert _exactly(read_json(text)) == _exactly(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"big": 1180591620717411303424}',  # 2**70: orjson would read a float
        '{"low": -9223372036854775809}',  # below int64: orjson would read a float
        '{"top": 18446744073709551615}',
        '{"far": 1e400}',  # json.loads: infinity; orjson refuses it
        '{"lone": "\\ud800"}',  # a lone surrogate; orjson refuses it
        '{"digits": 0.1000000000000000055511151231257827}',
        '{"numeric": 1.23000000000000000000, "n": -0.00000000000000000000012}',
        '{"int_then_fraction": 12345678901234567890.5}',
        '{"deep": {"in": [1, {"x": [99999999999999999999]}]}}',  # a big integer, nested
        "[18446744073709551616, 1.5]",  # a document that is a list
        "18446744073709551616",  # a document that is one number
        '{"float": 1e19, "nan": NaN}',  # a big float, and NaN, which orjson refuses
        '{"a": [1, 1.0, -0.0, 1E+2, "x", null, true]}',
    ],
)
def test_reads_what_orjson_alone_would_not_as_json_loads_does(text: str) -> None:
    assert _exactly(read_json(text)) == _exactly(json.loads(text))


def test_a_big_integer_reads_back_an_integer() -> None:
    assert read_json('{"n": 1180591620717411303424}') == {"n": 2**70}
    assert type(read_json('{"n": 1180591620717411303424}')["n"]) is int
