"""The compiled renderers of gateway/rendering.py: one function per message
type, built from generated source. Fields named like Python keywords, maps
of every key kind, and times are rendered as the contract says; the times
match protobuf's own text everywhere in Timestamp's range."""

from __future__ import annotations

import linecache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rendering import _timestamp, render, render_source
from research.experiments.v1 import experiments_pb2 as ex

Field = descriptor_pb2.FieldDescriptorProto


def _keywords_message() -> type[Any]:
    """`kw.Keywords`: fields named `from`, `class` (proto3 optional) and
    `lambda` (repeated), and maps with bool, int64 and string keys."""
    file = descriptor_pb2.FileDescriptorProto(name="kw.proto", package="kw", syntax="proto3")
    message = file.message_type.add(name="Keywords")
    message.oneof_decl.add(name="_class")
    message.field.add(name="from", number=1, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL)
    message.field.add(
        name="class",
        number=2,
        type=Field.TYPE_INT64,
        label=Field.LABEL_OPTIONAL,
        oneof_index=0,
        proto3_optional=True,
    )
    message.field.add(name="lambda", number=3, type=Field.TYPE_STRING, label=Field.LABEL_REPEATED)
    for number, (name, key_type) in enumerate(
        [("flags", Field.TYPE_BOOL), ("counts", Field.TYPE_INT64), ("labels", Field.TYPE_STRING)],
        start=4,
    ):
        entry_name = f"{name.capitalize()}Entry"
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key_type, label=Field.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL)
        message.field.add(
            name=name,
            number=number,
            type=Field.TYPE_MESSAGE,
            type_name=f".kw.Keywords.{entry_name}",
            label=Field.LABEL_REPEATED,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kw.Keywords"))


def test_fields_named_like_python_keywords_render() -> None:
    keywords = _keywords_message()
    message = keywords(
        **{"from": "here", "class": 0, "lambda": ["a", "b"]},
        flags={True: "yes", False: "no"},
        counts={-3: "minus three"},
        labels={"k": "v"},
    )
    assert render(message) == {
        "from": "here",
        "class": 0,
        "lambda": ["a", "b"],
        "flags": {"true": "yes", "false": "no"},
        "counts": {"-3": "minus three"},
        "labels": {"k": "v"},
    }
    # Unset: the optional is null, the rest their defaults.
    assert render(keywords()) == {
        "from": "",
        "class": None,
        "lambda": [],
        "flags": {},
        "counts": {},
        "labels": {},
    }


def test_the_source_is_one_dict_display_in_field_order() -> None:
    source, names = render_source(ex.Experiment.DESCRIPTOR)
    keys = [line.split(":")[0].strip().strip("'") for line in source.splitlines()[2:-1]]
    assert keys == [field.name for field in ex.Experiment.DESCRIPTOR.fields]
    assert "'dataset_version': (m.dataset_version if m.HasField('dataset_version') else None)," in (
        source
    )
    # A map's keys, each looked up: upb's maps have no items() of their own.
    assert "'artifacts': {k: d[k] for d in (m.artifacts,) for k in d}," in source
    assert "'id': m.id," in source
    # The values that need a renderer of their own: two Structs, three times.
    assert sorted(names) == ["_r11", "_r12", "_r15", "_r8", "_r9"]
    # A traceback through the compiled renderer shows its lines.
    render(ex.Experiment())
    title = "<renderer of research.experiments.v1.Experiment>"
    assert linecache.getline(title, 3).strip() == "'id': m.id,"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    seconds=st.integers(min_value=-62_135_596_800, max_value=253_402_300_799),
    nanos=st.integers(min_value=0, max_value=999_999_999)
    | st.sampled_from([0, 5_000_000, 123_000, 999_000_000]),
)
def test_times_match_protobufs_own_text(seconds: int, nanos: int) -> None:
    message = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert _timestamp(message) == message.ToJsonString()


def test_rows_of_one_minute_share_its_text() -> None:
    # 59 and 60 seconds past a minute: the cached minute must not leak.
    first = timestamp_pb2.Timestamp(seconds=1_767_225_599)
    second = timestamp_pb2.Timestamp(seconds=1_767_225_600)
    assert _timestamp(first) == "2025-12-31T23:59:59Z" == first.ToJsonString()
    assert _timestamp(second) == "2026-01-01T00:00:00Z" == second.ToJsonString()
