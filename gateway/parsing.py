"""JSON values and query strings into protobuf messages, strictly.

An unknown field, a value of the wrong type, an integer out of range, a
malformed timestamp: each is a `FieldError` naming the field by its path
(`experiment.parameters`, `limit`), which the gateway answers with 400. A
mistyped field is never dropped silently (CONTRACT §3).

Names are the proto field names; the lowerCamelCase JSON names that proto3
JSON also allows are accepted as well. A JSON `null` leaves a field unset.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from research_common.constants import WRAPPER_TYPES
from research_common.diff_messages import json_to_value
from research_common.free_form import MAX_SAFE_INTEGER, unsafe_number

_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = {_T.TYPE_DOUBLE, _T.TYPE_FLOAT}
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Well-known types that arrive as a JSON string and parse with FromJsonString.
_FROM_STRING = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


class FieldError(ValueError):
    """A value that does not fit its field; `path` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}" if path else f"the body {problem}")
        self.path = path
        self.problem = problem


def parse_into(value: Any, message: Message, path: str = "") -> None:
    """Merge the JSON object `value` into `message`."""
    _message_parser(message.DESCRIPTOR)(value, message, path)


def parse_field(value: Any, message: Message, field: FieldDescriptor, path: str) -> None:
    """Set one field of `message` from its JSON `value` (a `body: "field"`)."""
    if value is not None:
        _field_setter(field)(value, message, path)


def set_from_text(message: Message, path: str, texts: list[str], name: str) -> None:
    """Set the scalar (or repeated scalar) field at dotted `path` of `message`
    from query-string or path texts; `name` is how the caller named it."""
    *parents, leaf = path.split(".")
    target = message
    for parent in parents:
        field = target.DESCRIPTOR.fields_by_name.get(parent)
        if field is None or field.message_type is None or field.is_repeated:
            raise FieldError(name, "is not a field that can be set here")
        target = getattr(target, parent)
    scalar = cast(FieldDescriptor | None, target.DESCRIPTOR.fields_by_name.get(leaf))
    if scalar is None or scalar.message_type is not None:
        raise FieldError(name, "is not a field that can be set here")
    values = [_from_text(scalar, text, name) for text in texts]
    if scalar.is_repeated:
        getattr(target, leaf).extend(values)
    elif len(values) > 1:
        raise FieldError(name, "is given more than once")
    else:
        setattr(target, leaf, values[0])


def _from_text(field: FieldDescriptor, text: str, name: str) -> Any:
    kind = field.type
    if kind == _T.TYPE_STRING:
        return text
    if kind == _T.TYPE_BOOL:
        if text in ("true", "false"):
            return text == "true"
        raise FieldError(name, f"must be true or false, got {_echo(text)}")
    return _scalar(field)(text, name)


@cache
def _message_parser(descriptor: Descriptor) -> Callable[[Any, Message, str], None]:
    special = _WELL_KNOWN.get(descriptor.full_name)
    if special is not None:
        return special
    by_name: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        by_name[field.name] = field
        by_name.setdefault(field.json_name, field)
    setters = {key: _field_setter(field) for key, field in by_name.items()}
    null_values = {
        key
        for key, field in by_name.items()
        if not field.is_repeated
        and field.message_type is not None
        and field.message_type.full_name == "google.protobuf.Value"
    }

    def parse_message(value: Any, message: Message, path: str) -> None:
        if not isinstance(value, dict):
            raise FieldError(path, f"must be a JSON object, got {_kind(value)}")
        for key, item in value.items():
            setter = setters.get(key)
            if setter is None:
                raise FieldError(
                    _join(path, key), f"is not a field of {descriptor.name} (unknown field)"
                )
            if item is not None:
                setter(item, message, _join(path, key))
            elif key in null_values:  # a Value field holds null itself
                getattr(message, by_name[key].name).null_value = 0
        message.SetInParent()

    return parse_message


@cache
def _field_setter(field: FieldDescriptor) -> Callable[[Any, Message, str], None]:
    name = field.name
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        key_of = _map_key(key_field)
        if value_field.message_type is not None:
            parse_value = _lazy_parser(value_field.message_type)

            def set_message_map(value: Any, message: Message, path: str) -> None:
                target = getattr(message, name)
                for key, item in _object(value, path).items():
                    parse_value(item, target[key_of(key, path)], _join(path, key))

            return set_message_map
        scalar = _scalar(value_field)

        def set_map(value: Any, message: Message, path: str) -> None:
            target = getattr(message, name)
            for key, item in _object(value, path).items():
                target[key_of(key, path)] = scalar(item, _join(path, key))

        return set_map
    if field.message_type is not None:
        parse = _lazy_parser(field.message_type)
        if field.is_repeated:

            def set_messages(value: Any, message: Message, path: str) -> None:
                target = getattr(message, name)
                for index, item in enumerate(_array(value, path)):
                    parse(item, target.add(), f"{path}[{index}]")

            return set_messages

        def set_message(value: Any, message: Message, path: str) -> None:
            parse(value, getattr(message, name), path)

        return set_message
    scalar = _scalar(field)
    if field.is_repeated:

        def set_scalars(value: Any, message: Message, path: str) -> None:
            items = _array(value, path)
            getattr(message, name).extend(
                scalar(item, f"{path}[{index}]") for index, item in enumerate(items)
            )

        return set_scalars

    def set_scalar(value: Any, message: Message, path: str) -> None:
        setattr(message, name, scalar(value, path))

    return set_scalar


def _lazy_parser(descriptor: Descriptor) -> Callable[[Any, Message, str], None]:
    """`_message_parser(descriptor)`, looked up when first called: building it
    eagerly recursed forever for a message that holds its own type (a tree)."""

    def parse(value: Any, message: Message, path: str) -> None:
        _message_parser(descriptor)(value, message, path)

    return parse


@cache
def _scalar(field: FieldDescriptor) -> Callable[[Any, str], Any]:
    """The converter of one JSON value (or query text) of a scalar field."""
    kind = field.type
    if kind == _T.TYPE_STRING:
        return _string
    if kind == _T.TYPE_BOOL:
        return _bool
    if kind in _FLOATS:
        return _float
    if kind == _T.TYPE_BYTES:
        return _bytes
    if field.enum_type is not None:
        by_name = {v.name: v.number for v in field.enum_type.values}
        numbers = set(by_name.values())
        enum = field.enum_type.full_name

        def convert_enum(value: Any, path: str) -> int:
            if isinstance(value, str) and value in by_name:
                return by_name[value]
            if isinstance(value, int) and not isinstance(value, bool) and value in numbers:
                return value
            choices = ", ".join(by_name)
            raise FieldError(path, f"must be one of {choices} ({enum}), got {_echo(value)}")

        return convert_enum
    low, high = _INT_RANGES[kind]

    def convert_int(value: Any, path: str) -> int:
        if isinstance(value, bool):
            raise FieldError(path, f"must be an integer, got {_kind(value)}")
        integral_float = isinstance(value, float) and value.is_integer()
        if integral_float or (isinstance(value, str) and _INTEGER_TEXT.fullmatch(value)):
            value = int(value)
        if not isinstance(value, int):
            raise FieldError(path, f"must be an integer, got {_echo(value)}")
        if not low <= value <= high:
            raise FieldError(path, f"must be between {low} and {high}, got {value}")
        return value

    return convert_int


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise FieldError(path, f"must be a string, got {_kind(value)}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(path, f"must be true or false, got {_kind(value)}")
    return value


def _float(value: Any, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise FieldError(path, f"must be a number, got {_echo(value)}")


def _bytes(value: Any, path: str) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_")
        except (binascii.Error, ValueError):
            pass
    raise FieldError(path, "must be base64 text")


def _map_key(field: FieldDescriptor) -> Callable[[str, str], Any]:
    if field.type == _T.TYPE_STRING:
        return lambda key, path: key
    if field.type == _T.TYPE_BOOL:
        return lambda key, path: _bool({"true": True, "false": False}.get(key, key), path)
    convert = _scalar(field)
    return lambda key, path: convert(key, _join(path, key))


# --- well-known types --------------------------------------------------------


# A field the body names is present even when its value is empty (`{}`,
# `[]`, a wrapper holding 0): update() / extend() / assigning a default do
# not mark the field set in its parent, so `{"parameters": {}}` came back
# as `"parameters": null`, unlike every other message field.


def _parse_struct(value: Any, message: Any, path: str) -> None:
    message.update(_free_form(_object(value, path), path))
    message.SetInParent()


def _parse_list(value: Any, message: Any, path: str) -> None:
    message.extend(_free_form(_array(value, path), path))
    message.SetInParent()


def _parse_value(value: Any, message: Any, path: str) -> None:
    message.CopyFrom(json_to_value(_free_form(value, path)))


def _free_form(value: Any, path: str) -> Any:
    """`value`, once every number in it is known to fit a double exactly:
    a free-form number beyond ±(2^53 - 1) is refused naming its path (the
    service would see only the double it became, 2^53 for 2^53 + 1)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _free_form(item, _join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _free_form(item, f"{path}[{index}]")
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) > MAX_SAFE_INTEGER
    ):
        raise FieldError(path, unsafe_number(str(value)))
    return value


def _parse_from_string(value: Any, message: Any, path: str) -> None:
    if not isinstance(value, str):
        raise FieldError(path, f"must be a string, got {_kind(value)}")
    try:
        message.FromJsonString(value)
    except ValueError as error:
        raise FieldError(path, f"is not a valid {message.DESCRIPTOR.name}: {error}") from None


def _wrapper(converter: Callable[[Any, str], Any]) -> Callable[[Any, Any, str], None]:
    def parse(value: Any, message: Any, path: str) -> None:
        message.value = converter(value, path)
        message.SetInParent()

    return parse


_WELL_KNOWN: dict[str, Callable[[Any, Any, str], None]] = {
    "google.protobuf.Struct": _parse_struct,
    "google.protobuf.ListValue": _parse_list,
    "google.protobuf.Value": _parse_value,
    **{name: _parse_from_string for name in _FROM_STRING},
}


for _type in WRAPPER_TYPES:
    _WELL_KNOWN[_type.DESCRIPTOR.full_name] = _wrapper(
        _scalar(_type.DESCRIPTOR.fields_by_name["value"])
    )


# --- helpers -----------------------------------------------------------------


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldError(path, f"must be a JSON object, got {_kind(value)}")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise FieldError(path, f"must be a JSON array, got {_kind(value)}")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _echo(value: Any) -> str:
    if isinstance(value, dict | list):
        return _kind(value)
    # JSON's spelling, not Python's: the caller sent `null`/`true`, not None/True.
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."
