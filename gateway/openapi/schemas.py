"""OpenAPI 3.0 schemas of protobuf messages, as the gateway writes and reads them.

Two forms of each message, because the gateway treats the two directions
differently:

- the *output* form (component `pkg.Message`) follows `gateway/rendering.py`
  exactly, so that every response validates against it: every field is
  present (`required`), no other field is (`additionalProperties: false`);
  a field with presence (a proto3 `optional` scalar, a message) is nullable,
  and so is every double, float included (NaN and ±Infinity render as null);
  64-bit integers are JSON numbers; a Timestamp is a `date-time` string; a
  Struct is a free object, a Value any JSON value; enums are their names;
  a message with the `unwrap` option is the schema of its one field (with
  the message's comment); the values of an `every_key` map are nullable (an
  id the map lacks is null);
- the *input* form (component `pkg.Message-Input`, a name no proto type can
  have) follows `gateway/parsing.py`: no field is required, each may be null
  (null leaves a field unset; in a PATCH body it clears it), and no unknown
  field is accepted.

OpenAPI 3.0 ignores the siblings of a `$ref` and has no `null` type, so a
nullable reference is `anyOf: [<ref>, <null>]`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.key_orders import every_key
from gateway.openapi.comments import Comments
from gateway.rendering import unwrap_field
from research_common.constants import WRAPPER_VALUE_TYPES

Schema = dict[str, Any]

_T = FieldDescriptor
_INT32: Schema = {"type": "integer", "format": "int32"}
_INT64: Schema = {"type": "integer", "format": "int64"}
_SCALARS: dict[int, Schema] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT32: _INT32,
    _T.TYPE_SINT32: _INT32,
    _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    # No OpenAPI format holds 0..2**64-1 (int64 stops at 2**63-1).
    _T.TYPE_UINT64: {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
    _T.TYPE_FIXED64: {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_FLOATS = {_T.TYPE_DOUBLE, _T.TYPE_FLOAT}
# Only null (the OpenAPI 3.0.3 way: `nullable` needs a `type` beside it).
NULL: Schema = {"type": "object", "nullable": True, "enum": [None]}
ANY: Schema = {"description": "Any JSON value."}
_ANNOTATIONS = {"description", "example"}

# Well-known types have a JSON form of their own and no component.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": ANY,
    "google.protobuf.ListValue": {"type": "array", "items": ANY},
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "example": "2024-01-02T03:04:05Z",
    },
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated paths."},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    **{name: _SCALARS[kind] for name, kind in WRAPPER_VALUE_TYPES.items()},
}


def nullable(schema: Schema) -> Schema:
    """`schema` or null."""
    if "type" in schema:
        return {**schema, "nullable": True}
    if set(schema) <= _ANNOTATIONS:
        return schema  # any value: null included
    return {"anyOf": [schema, NULL]}


def scalar(field: FieldDescriptor) -> Schema:
    """One value of a scalar or enum field (a path or query parameter)."""
    if field.enum_type is not None:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    return dict(_SCALARS[field.type])


class Schemas:
    """The component schemas of a document, built as messages are referred to."""

    def __init__(self, comments: Comments) -> None:
        self.comments = comments
        self.components: dict[str, Schema] = {}

    def message(self, descriptor: Descriptor, *, input: bool) -> Schema:
        """A reference to the message's component (made on first use); a
        well-known type's own schema."""
        special = WELL_KNOWN.get(descriptor.full_name)
        if special is not None:
            return dict(special)
        name = descriptor.full_name + ("-Input" if input else "")
        if name not in self.components:
            self.components[name] = {}  # taken first: a message may hold its own type
            unwrapped = None if input else unwrap_field(descriptor)
            if unwrapped is None:
                self.components[name] = self.object(descriptor, input=input)
            else:
                self.components[name] = self._unwrapped(descriptor, unwrapped)
        return {"$ref": f"#/components/schemas/{name}"}

    def _unwrapped(self, descriptor: Descriptor, field: FieldDescriptor) -> Schema:
        """An unwrapped message: its field's value, described by the
        message's comment (the field's when the message has none). Only the
        output form: a request is parsed field by field (`gateway/parsing.py`)."""
        description = self.comments.get(descriptor.full_name) or self.comments.get(field.full_name)
        return _described(self._whole(field, input=False), description)

    def object(
        self, descriptor: Descriptor, *, input: bool, without: frozenset[str] = frozenset()
    ) -> Schema:
        """The message's object schema, less the fields named in `without`."""
        properties = {
            field.name: self.field(field, input=input)
            for field in descriptor.fields
            if field.name not in without
        }
        schema: Schema = {"type": "object", "properties": properties}
        if not input and properties:
            schema["required"] = list(properties)
        schema["additionalProperties"] = False
        description = self.comments.get(descriptor.full_name)
        if description:
            schema["description"] = description
        return schema

    def field(self, field: FieldDescriptor, *, input: bool) -> Schema:
        """The JSON value of a field as a whole: an array for a repeated
        field, an object for a map, else one value; with its comment."""
        return _described(self._whole(field, input=input), self.comments.get(field.full_name))

    def _whole(self, field: FieldDescriptor, *, input: bool) -> Schema:
        """The field's value as `field` documents it, without its comment."""
        schema = self.bare_field(field, input=input)
        if input:
            return nullable(schema)  # null leaves the field unset
        if not field.is_repeated and field.has_presence:
            return nullable(schema)
        return schema

    def bare_field(self, field: FieldDescriptor, *, input: bool) -> Schema:
        """The field's value, never null unless its values can be: a request
        body bound to the field, or a `response_body` the service always sets."""
        entry = field.message_type
        if field.is_repeated and entry is not None and entry.GetOptions().map_entry:
            values = self._value(entry.fields_by_name["value"], input=input)
            if not input and every_key(field):
                values = nullable(values)  # an id the map lacks is null
            return {"type": "object", "additionalProperties": values}
        if field.is_repeated:
            return {"type": "array", "items": self._value(field, input=input)}
        return self._value(field, input=input)

    def _value(self, field: FieldDescriptor, *, input: bool) -> Schema:
        """One value of the field (an item of a repeated field, a map value)."""
        if field.message_type is not None:
            return self.message(field.message_type, input=input)
        schema = scalar(field)
        if field.type in _FLOATS and not input:
            schema["nullable"] = True  # NaN and ±Infinity render as null
        return schema


def _described(schema: Schema, description: str | None) -> Schema:
    """`schema` with `description`, when there is one."""
    if not description:
        return schema
    if "$ref" in schema:
        schema = {"allOf": [schema]}  # a sibling of $ref is ignored
    return {**schema, "description": description}
