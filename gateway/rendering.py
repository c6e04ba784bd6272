"""Protobuf messages to JSON values, by the rules of CONTRACT §3.

- proto field names, and every field present: an unset field with presence
  (a proto3 `optional` scalar, a message) is `null`, never absent;
- 64-bit integers are JSON numbers, not the strings of proto3's JSON mapping;
- a `Struct` number that is a whole number comes back as an integer, since
  `Struct` holds every number as a double (`200`, not `200.0`);
- NaN and ±Infinity become `null` (orjson writes non-finite floats as null);
- `Timestamp` is an RFC 3339 UTC string; enums are their names;
- a message with the option `(research.http.v1.unwrap) = "<field>"` is that
  one field's value (a map of maps needs a wrapper message in protobuf, not
  in JSON); unset, it is `null` like any unset message.

A renderer is compiled once per message type from its descriptor into one
Python function, a dict display with an entry per field (`render_source`
shows it), which costs far less per call than walking the descriptor each
time (`json_format.MessageToDict`) or calling a closure per field.
"""

from __future__ import annotations

import base64
import datetime
import functools
import keyword
import linecache
from collections.abc import Callable
from functools import cache
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from research.http.v1 import response_pb2
from research_common.constants import WRAPPER_VALUE_TYPES

Render = Callable[[Any], Any]

# Beyond 2**53 a double no longer holds every integer exactly: leave it a float.
_EXACT_INT = 2**53


class UnwrapError(ValueError):
    """An `unwrap` option that names no field of its message."""


def render(message: Message) -> Any:
    """`message` as a JSON-ready dict (an unwrapped message: its field's value)."""
    return message_renderer(message.DESCRIPTOR)(message)


def render_field(message: Message, name: str) -> Any:
    """One field of `message` as a JSON-ready value (a `response_body`)."""
    return field_renderer(message.DESCRIPTOR.fields_by_name[name])(message)


@cache
def message_renderer(descriptor: Descriptor) -> Render:
    special = _WELL_KNOWN.get(descriptor.full_name)
    if special is not None:
        return special
    unwrapped = unwrap_field(descriptor)
    if unwrapped is not None:
        # The field's own renderer takes the message: no wrapper call per value.
        return field_renderer(unwrapped)
    return _compiled_renderer(descriptor)


def _compiled_renderer(descriptor: Descriptor) -> Render:
    """One function per message type whose body is a single dict display,
    one entry per field, in the descriptor's order: `render_source` shows
    it. A call per field (a list of closures, each an attribute and a test)
    cost as much again as the values themselves, and a list of 100 rows
    renders some 1,500 fields."""
    source, names = render_source(descriptor)
    return _compiled(source, names, f"<renderer of {descriptor.full_name}>")


def _compiled(source: str, names: dict[str, Any], title: str) -> Render:
    """The function `render` that `source` defines, with `names` as its globals.
    The source is ours, built from a descriptor's field names, which
    protobuf restricts to identifiers."""
    namespace = dict(names)
    # Known to linecache, a traceback through a renderer shows its line.
    linecache.cache[title] = (len(source), None, source.splitlines(keepends=True), title)
    exec(compile(source, title, "exec"), namespace)
    renderer: Render = namespace["render"]
    return renderer


def render_source(descriptor: Descriptor) -> tuple[str, dict[str, Any]]:
    """The Python source of `descriptor`'s renderer, and the names it uses
    (the values' renderers, by field number)."""
    names: dict[str, Any] = {}
    entries = []
    for field in descriptor.fields:
        expression = _field_expression(field, names)
        entries.append(f"        {field.name!r}: {expression},")
    body = "\n".join(entries)
    return f"def render(m):\n    return {{\n{body}\n    }}\n", names


def _field_expression(field: FieldDescriptor, names: dict[str, Any]) -> str:
    """`field`'s JSON value as an expression of the message `m`."""
    # getattr for a field named like a Python keyword (`m.from` would not parse).
    value = f"getattr(m, {field.name!r})" if keyword.iskeyword(field.name) else f"m.{field.name}"
    renderer = f"_r{field.number}"
    entry = _map_entry(field)
    if entry is not None:
        key = "k"
        if entry.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING:
            key, names["_key"] = "_key(k)", _any_key
        entry_value = _value_renderer(entry.fields_by_name["value"])
        if entry_value is None:
            return f"{{{key}: d[k] {_MAP_KEYS.format(value)}}}"
        names[renderer] = entry_value
        return f"{{{key}: {renderer}(d[k]) {_MAP_KEYS.format(value)}}}"
    render_value = _value_renderer(field)
    if render_value is not None:
        names[renderer] = render_value
    if field.is_repeated:
        return f"list({value})" if render_value is None else f"[{renderer}(v) for v in {value}]"
    rendered = value if render_value is None else f"{renderer}({value})"
    if field.has_presence:
        return f"({rendered} if m.HasField({field.name!r}) else None)"
    return rendered


# A map's keys `k` in a comprehension, with the map as `d` to look each
# value up in. upb's maps have no items() or keys() of their own: the
# Mapping mixin's are generators in Python, and items() took twice as long
# on a Struct of three, dict() 1.6 times as long on two artifacts.
_MAP_KEYS = "for d in ({},) for k in d"


def _any_key(key: Any) -> str:
    if key is True or key is False:
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def unwrap_field(descriptor: Descriptor) -> FieldDescriptor | None:
    """The field `(research.http.v1.unwrap)` names, which stands for the
    message in JSON; None without the option. UnwrapError when the message
    has no such field (bindings refuse it at start-up)."""
    options = descriptor.GetOptions()
    if not options.HasExtension(response_pb2.unwrap):
        return None
    name = options.Extensions[response_pb2.unwrap]
    field = descriptor.fields_by_name.get(name)
    if field is None:
        raise UnwrapError(f"{descriptor.full_name}: unwrap names {name!r}, which is not its field")
    return field


@cache
def field_renderer(field: FieldDescriptor) -> Render:
    """A function from the containing message to this field's JSON value."""
    names: dict[str, Any] = {}
    source = f"def render(m):\n    return {_field_expression(field, names)}\n"
    return _compiled(source, names, f"<renderer of {field.full_name}>")


def _value_renderer(field: FieldDescriptor) -> Render | None:
    """How one value of `field` renders; None when it is JSON as it is
    (strings, bools, integers, and doubles, which orjson nulls when not finite)."""
    if field.message_type is not None:
        descriptor = field.message_type
        if descriptor.full_name in _WELL_KNOWN:
            return _WELL_KNOWN[descriptor.full_name]
        # Looked up when first called: building it here recursed forever for
        # a message that holds its own type (a tree).
        return lambda v: message_renderer(descriptor)(v)
    if field.enum_type is not None:
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda v: names.get(v, v)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda v: base64.b64encode(v).decode("ascii")
    return None


def _map_entry(field: FieldDescriptor) -> Descriptor | None:
    """The entry type of a map field; None for any other field."""
    entry = field.message_type
    if field.is_repeated and entry is not None and entry.GetOptions().map_entry:
        return entry
    return None


# --- well-known types --------------------------------------------------------


def _number(value: float) -> float | int:
    if value.is_integer() and -_EXACT_INT <= value <= _EXACT_INT:
        return int(value)
    return value  # NaN and ±inf included: orjson writes them as null


def _value(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind == "number_value":
        return _number(message.number_value)
    if kind == "string_value":
        return message.string_value
    if kind == "bool_value":
        return message.bool_value
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return [_value(v) for v in message.list_value.values]
    return None  # null_value, or no kind set


def _struct(message: Any) -> dict[str, Any]:
    # `_value` written out for the two kinds nearly every value is: a call
    # per value was a fifth of a Struct's time. Its keys, then a lookup
    # each, for the reason _MAP_KEYS gives.
    rendered: dict[str, Any] = {}
    fields = message.fields
    for key in fields:
        value = fields[key]
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            number = value.number_value
            exact = number.is_integer() and -_EXACT_INT <= number <= _EXACT_INT
            rendered[key] = int(number) if exact else number
        elif kind == "string_value":
            rendered[key] = value.string_value
        else:
            rendered[key] = _value(value)
    return rendered


def _list(message: Any) -> list[Any]:
    return [_value(v) for v in message.values]


def _wrapper(message: Any) -> Any:
    value = message.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _any(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _json_string(message: Any) -> str:
    text: str = message.ToJsonString()
    return text


# Timestamp's valid range (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z).
_FIRST_SECOND = -62_135_596_800
_LAST_SECOND = 253_402_300_799
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    """The date `days` after 1970-01-01, as YYYY-MM-DD."""
    return datetime.date.fromordinal(_EPOCH_DAY + days).isoformat()


@functools.lru_cache(maxsize=4096)
def _minute(minutes: int) -> str:
    """The minute `minutes` after the epoch, as YYYY-MM-DDTHH:MM: (rows
    written together share their minutes: half the cost of a time)."""
    days, minute = divmod(minutes, 1_440)
    return f"{_day(days)}T{minute // 60:02d}:{minute % 60:02d}:"


def _timestamp(message: Any) -> str:
    """Timestamp.ToJsonString's text (RFC 3339, Z, 0/3/6/9 fractional
    digits), without its datetime and validity check per value: that was a
    tenth of the gateway's CPU on a list of 100 (bench.profile). Outside
    the valid range, protobuf's own says why."""
    seconds, nanos = message.seconds, message.nanos
    if not (_FIRST_SECOND <= seconds <= _LAST_SECOND and 0 <= nanos < 1_000_000_000):
        return _json_string(message)
    minutes, second = divmod(seconds, 60)
    text = f"{_minute(minutes)}{second:02d}"
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


_WELL_KNOWN: dict[str, Render] = {
    "google.protobuf.Struct": _struct,
    "google.protobuf.Value": _value,
    "google.protobuf.ListValue": _list,
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _json_string,
    "google.protobuf.FieldMask": _json_string,
    "google.protobuf.Empty": lambda m: {},
    "google.protobuf.Any": _any,
    **{name: _wrapper for name in WRAPPER_VALUE_TYPES},
}
