"""Maps of a response whose JSON keys follow a field of the request.

A protobuf map keeps no order, and an absent entry is how a service says "no
value" over gRPC. Two field options make such a map read well in JSON:

- `(research.http.v1.key_order) = "run_ids"`: the object's keys come in the
  order of that repeated field of the request, then any others as they were;
- `(research.http.v1.every_key) = true`, beside `key_order`: every id of that
  field is a key, `null` for an id the map lacks.

The bindings find every such map of a response once, at start-up
(`key_orders`), as a path in the rendered JSON; the transcoder rewrites those
objects of each answer (`order_keys`). A message with the `unwrap` option is
rendered as its one field (`gateway/rendering.py`), so it adds no segment to a
path, and its other fields are never rendered, so they are not looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.rendering import UnwrapError, unwrap_field
from gateway.templates import TemplateError
from research.http.v1 import response_pb2

# A path segment standing for every value of a map, or every item of a list.
ANY = "*"


@dataclass(frozen=True, slots=True)
class KeyOrder:
    """One ordered map of a response."""

    # Where the map's object is in the rendered JSON; ANY for any map key or
    # list item.
    path: tuple[str, ...]
    # The request's repeated string field whose ids order the keys.
    field: str
    # Every id of `field` is a key, null where the map has none.
    every_key: bool = False


def every_key(field: FieldDescriptor) -> bool:
    """Whether the map `field` lists every id of its `key_order` field."""
    return bool(field.GetOptions().Extensions[response_pb2.every_key])


def key_orders(
    reply: Descriptor, request: Descriptor, response_body: str | None = None
) -> tuple[KeyOrder, ...]:
    """Every ordered map of what a binding answers: the whole `reply`, or
    its `response_body` field; TemplateError for an option that cannot be
    served (a `key_order` naming no repeated string field of `request`, `every_key`
    without `key_order`, an `unwrap` naming no field)."""
    if response_body is None:
        return tuple(_message(reply, request, (), frozenset()))
    field = reply.fields_by_name.get(response_body)
    if field is None:  # a path "a.b", which the renderer does not answer either
        return ()
    return tuple(_field(field, request, (), frozenset()))


def order_keys(body: Any, orders: Sequence[KeyOrder], request: Message) -> Any:
    """`body` with the objects at each order's path rewritten (in place
    where they are nested; the body itself may be replaced)."""
    for order in orders:
        ids = list(getattr(request, order.field))
        body = _reorder(body, order.path, ids, order.every_key)
    return body


def _reorder(node: Any, path: tuple[str, ...], ids: list[str], every: bool) -> Any:
    """`node` with the object at `path` in the order of `ids`. Anything that
    is not an object where one was expected, `null` above all (an unset
    message), is left as it is: there is nothing to order, nor to fill."""
    if not path:
        if not isinstance(node, dict):
            return node
        if every:
            ordered = {key: node.get(key) for key in ids}
        else:
            ordered = {key: node[key] for key in ids if key in node}
        ordered.update((key, value) for key, value in node.items() if key not in ordered)
        return ordered
    head, rest = path[0], path[1:]
    if head == ANY:
        if isinstance(node, dict):
            for key, child in node.items():  # values only: the keys stay
                node[key] = _reorder(child, rest, ids, every)
        elif isinstance(node, list):
            node[:] = [_reorder(child, rest, ids, every) for child in node]
    elif isinstance(node, dict) and head in node:
        node[head] = _reorder(node[head], rest, ids, every)
    return node


def _message(
    message: Descriptor, request: Descriptor, prefix: tuple[str, ...], seen: frozenset[str]
) -> list[KeyOrder]:
    """The ordered maps under `message`, rendered at `prefix`."""
    if message.full_name in seen:  # a recursive message: each type once
        return []
    seen = seen | {message.full_name}
    try:
        unwrapped = unwrap_field(message)
    except UnwrapError as error:
        raise TemplateError(str(error)) from None
    if unwrapped is not None:
        return _field(unwrapped, request, prefix, seen)
    found: list[KeyOrder] = []
    for field in message.fields:
        found += _field(field, request, (*prefix, field.name), seen)
    return found


def _field(
    field: FieldDescriptor, request: Descriptor, path: tuple[str, ...], seen: frozenset[str]
) -> list[KeyOrder]:
    """The ordered maps of `field`, rendered at `path`: itself, and any
    inside its values."""
    found: list[KeyOrder] = []
    order = _own_order(field, request)
    if order is not None:
        found.append(KeyOrder(path, *order))
    nested = field.message_type
    if nested is None:
        return found
    if nested.GetOptions().map_entry:
        value = nested.fields_by_name["value"].message_type
        if value is not None:
            found += _message(value, request, (*path, ANY), seen)
    else:
        found += _message(nested, request, (*path, ANY) if field.is_repeated else path, seen)
    return found


def _own_order(field: FieldDescriptor, request: Descriptor) -> tuple[str, bool] | None:
    """The request field ordering `field`, and whether every id is a key."""
    options = field.GetOptions()
    every = every_key(field)
    if not options.HasExtension(response_pb2.key_order):
        if every:
            raise TemplateError(
                f"{field.full_name}: every_key needs key_order, the request field of the ids"
            )
        return None
    order = options.Extensions[response_pb2.key_order]
    source = request.fields_by_name.get(order)
    # Its ids become JSON keys, and those are strings.
    if source is None or not source.is_repeated or source.type != FieldDescriptor.TYPE_STRING:
        raise TemplateError(
            f"{field.full_name}: key_order {order!r} is not a repeated string field of "
            f"{request.full_name}"
        )
    return order, every
