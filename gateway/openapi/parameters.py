"""The parameters of an operation: the path template in OpenAPI's form, its
variables, the query parameters the transcoder takes (`gateway/transcoding.py`):
the fields neither the path nor the body nor a header binds, and the
conditional headers of the `research.http.v1.request` rule
(`gateway/preconditions.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.bindings import Binding
from gateway.openapi.schemas import WELL_KNOWN, Schemas, scalar
from gateway.preconditions import IF_MATCH, IF_NONE_MATCH
from gateway.templates import PathTemplate

_FIELD_MASK = "google.protobuf.FieldMask"
_UPDATE_MASK = "update_mask"


def openapi_path(template: PathTemplate) -> tuple[str, list[str]]:
    """The template in OpenAPI's form (`{experiment.id}` stays a parameter
    named `experiment.id`; `{path=shelves/**}` becomes `{path}`; a `*` that
    binds no field becomes `{_N}`) and its parameter names in order."""
    parts: list[str] = []
    names: list[str] = []
    captures = {c.start: c for c in template.captures}
    index = 0
    while index < len(template.segments):
        capture = captures.get(index)
        segment = template.segments[index]
        if capture is not None:
            names.append(capture.field)
            index = capture.end
        elif segment.kind == "literal":
            parts.append(segment.text)
            index += 1
            continue
        else:
            names.append(f"_{index}")
            index += 1
        parts.append("{" + names[-1] + "}")
    verb = f":{template.verb}" if template.verb else ""
    return "/" + "/".join(parts) + verb, names


def path_parameters(
    binding: Binding, schemas: Schemas, shown: dict[str, str]
) -> Iterator[dict[str, Any]]:
    template = binding.template
    captures = {c.field: c for c in template.captures}
    for name, shown_name in shown.items():
        parameter: dict[str, Any] = {"name": shown_name, "in": "path", "required": True}
        capture = captures.get(name)
        if capture is None:
            parameter["schema"] = {"type": "string"}
            parameter["description"] = "Any single path segment (it sets no field)."
            yield parameter
            continue
        field = _resolve(binding, name)
        parameter["schema"] = scalar(field)
        notes = [schemas.comments.get(field.full_name) or ""]
        if shown_name != name:
            notes.append(f"Sets the field `{name}`.")
        covered = template.segments[capture.start : capture.end]
        if len(covered) != 1 or covered[0].kind != "single":
            pattern = "/".join(s.text or ("*" if s.kind == "single" else "**") for s in covered)
            notes.append(f"Matches `{pattern}`: its `/` are sent as they are, not escaped.")
        description = " ".join(note for note in notes if note)
        if description:
            parameter["description"] = description
        yield parameter


def query_parameters(binding: Binding, schemas: Schemas) -> Iterator[dict[str, Any]]:
    """The fields neither the path nor the body binds, as the transcoder
    takes them: scalars, repeated scalars by repeating the parameter,
    enums by name, fields of nested messages by their dotted path."""
    if binding.body == "*":
        return  # every field is the body's; any query parameter is 400
    taken = {c.field for c in binding.template.captures} | header_fields(binding)
    skip = {binding.body} if binding.body else set()
    for name, field in _query_fields(binding.input, "", taken, skip, frozenset()):
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
        message = field.message_type
        if message is not None and message.full_name == _FIELD_MASK:
            parameter["schema"] = {"type": "string"}
            parameter["example"] = "parameters,metrics"
            notes = "Comma-separated field paths; when absent, the fields present in the body."
        elif field.is_repeated:
            parameter["schema"] = {"type": "array", "items": scalar(field)}
            parameter["style"], parameter["explode"] = "form", True
            notes = "Repeat the parameter for each value."
        else:
            parameter["schema"] = scalar(field)
            notes = ""
        description = " ".join(t for t in (schemas.comments.get(field.full_name), notes) if t)
        if description:
            parameter["description"] = description
        yield parameter


def header_fields(binding: Binding) -> frozenset[str]:
    """The request fields a header sets, which no query or body may."""
    field = binding.request.if_match_field
    return frozenset() if field is None else frozenset({field})


def header_parameters(binding: Binding, schemas: Schemas) -> Iterator[dict[str, Any]]:
    """`If-Match` and `If-None-Match` where the binding's rules take them."""
    field = binding.request.if_match_field
    if field is not None:
        comment = schemas.comments.get(_resolve(binding, field).full_name)
        notes = [
            "`*`, or one strong entity tag in its double quotes as `ETag` gives it; "
            f"its tag, without the quotes, sets the field `{field}` (empty without the header).",
            comment or "",
            "A list of tags, a weak tag or an empty value is 400.",
        ]
        yield {
            "name": IF_MATCH,
            "in": "header",
            "required": False,
            "description": " ".join(note for note in notes if note),
            "schema": {"type": "string", "pattern": '^(\\*|"[^"]*")$'},
        }
    if binding.request.if_none_match:
        yield {
            "name": IF_NONE_MATCH,
            "in": "header",
            "required": False,
            "description": (
                "`*`, or entity tags in double quotes separated by commas (`W/` is ignored: "
                "the comparison is weak): when one is the `ETag` the answer would carry, "
                "the answer is 304 Not Modified with no body."
            ),
            "schema": {"type": "string"},
        }


def _query_fields(
    descriptor: Descriptor, prefix: str, taken: set[str], skip: set[str], seen: frozenset[str]
) -> Iterator[tuple[str, FieldDescriptor]]:
    for field in descriptor.fields:
        name = prefix + field.name
        if name in taken or field.name in skip:
            continue
        message = field.message_type
        if message is None or (name == _UPDATE_MASK and message.full_name == _FIELD_MASK):
            yield name, field
        elif field.is_repeated or message.full_name in WELL_KNOWN or message.full_name in seen:
            continue  # not settable from a query string; or a recursive message
        else:
            inner = seen | {message.full_name}
            yield from _query_fields(message, name + ".", taken, set(), inner)


def _resolve(binding: Binding, path: str) -> FieldDescriptor:
    """The field a path variable sets (bindings checked that it exists)."""
    *parents, leaf = path.split(".")
    descriptor: Descriptor | None = binding.input
    for name in parents:
        descriptor = descriptor.fields_by_name[name].message_type if descriptor else None
    if descriptor is None:
        raise ValueError(f"{binding.method.full_name}: no field {path!r}")
    return descriptor.fields_by_name[leaf]
