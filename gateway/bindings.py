"""HTTP bindings read from the descriptors of the services the gateway fronts.

Every unary method with a `google.api.http` rule (and each of its
`additional_bindings`) becomes one `Binding`; the `research.http.v1.response`
option of the method, when present, says how success is answered. Nothing
here knows any particular service: a new annotated method is a new route.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway.templates import PathTemplate, TemplateError, parse_template
from research.http.v1 import response_pb2

log = logging.getLogger("gateway.bindings")

_PATTERNS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class NextPage:
    """Where a list keeps its next page's token (`research.http.v1.NextPage`)."""

    token_field: str
    request_field: str = "page_token"
    omit: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ResponseRule:
    """How a successful call is answered (`research.http.v1.ResponseRule`)."""

    status: int = 200
    created_field: str | None = None
    created_status: int = 201
    location: PathTemplate | None = None
    next_page: NextPage | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """One HTTP route onto one gRPC method of one upstream."""

    upstream: str
    http_method: str
    template: PathTemplate
    rpc_path: str  # "/package.Service/Method"
    method: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]
    body: str | None  # None: no body; "*": the whole request; else a field
    response_body: str | None
    response: ResponseRule
    # Maps of the response whose keys follow a request field (`key_order`):
    # (path in the rendered JSON, "*" for any map key or list item; the
    # request's repeated string field).
    key_orders: tuple[tuple[tuple[str, ...], str], ...] = ()

    @property
    def name(self) -> str:
        return self.method.full_name

    @property
    def input(self) -> Descriptor:
        return self.method.input_type

    @property
    def body_field(self) -> FieldDescriptor | None:
        if self.body in (None, "*"):
            return None
        return self.input.fields_by_name[self.body]


def bindings_for(service: ServiceDescriptor, upstream: str) -> list[Binding]:
    """The bindings of every annotated unary method of `service`."""
    bindings: list[Binding] = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            log.info("%s has no google.api.http rule; not routed", method.full_name)
            continue
        if method.client_streaming or method.server_streaming:
            log.warning("%s streams; the gateway routes unary methods only", method.full_name)
            continue
        rule = options.Extensions[annotations_pb2.http]
        response = _response_rule(method, options)
        for each in (rule, *rule.additional_bindings):
            bindings.append(_binding(method, each, response, upstream))
    return bindings


def _binding(
    method: MethodDescriptor, rule: http_pb2.HttpRule, response: ResponseRule, upstream: str
) -> Binding:
    pattern = rule.WhichOneof("pattern")
    if pattern in _PATTERNS:
        verb, path = pattern.upper(), getattr(rule, pattern)
    elif pattern == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        raise TemplateError(f"{method.full_name}: google.api.http rule has no path")
    template = parse_template(path)
    request, reply = method.input_type, method.output_type
    for capture in template.captures:
        _resolve(request, capture.field, f"{method.full_name} path variable")
    if rule.body not in ("", "*"):
        _resolve(request, rule.body, f"{method.full_name} body")
    if rule.response_body:
        _resolve(reply, rule.response_body, f"{method.full_name} response_body")
    return Binding(
        upstream=upstream,
        http_method=verb,
        template=template,
        rpc_path=f"/{method.containing_service.full_name}/{method.name}",
        method=method,
        request_class=GetMessageClass(request),
        response_class=GetMessageClass(reply),
        body=rule.body or None,
        response_body=rule.response_body or None,
        response=response,
        key_orders=tuple(_key_orders(reply, request, (), set())),
    )


def _key_orders(
    message: Descriptor, request: Descriptor, prefix: tuple[str, ...], seen: set[str]
) -> list[tuple[tuple[str, ...], str]]:
    """Every `key_order` map under `message`, checked against `request`."""
    if message.full_name in seen:  # a recursive message: each type once
        return []
    seen = seen | {message.full_name}
    found: list[tuple[tuple[str, ...], str]] = []
    for field in message.fields:
        path = (*prefix, field.name)
        options = field.GetOptions()
        if options.HasExtension(response_pb2.key_order):
            order = options.Extensions[response_pb2.key_order]
            source = request.fields_by_name.get(order)
            if source is None or not source.is_repeated:
                raise TemplateError(
                    f"{message.full_name}.{field.name}: key_order {order!r} is not a "
                    f"repeated field of {request.full_name}"
                )
            found.append((path, order))
        nested = field.message_type
        if nested is None:
            continue
        if nested.GetOptions().map_entry:
            value = nested.fields_by_name["value"].message_type
            if value is not None:
                found += _key_orders(value, request, (*path, "*"), seen)
        else:
            found += _key_orders(nested, request, (*path, "*") if field.is_repeated else path, seen)
    return found


def _response_rule(method: MethodDescriptor, options: Any) -> ResponseRule:
    if not options.HasExtension(response_pb2.response):
        return ResponseRule()
    rule = options.Extensions[response_pb2.response]
    created_field = rule.created_field or None
    if created_field is not None:
        field = _resolve(method.output_type, created_field, f"{method.full_name} created_field")
        if field.type != FieldDescriptor.TYPE_BOOL:
            raise TemplateError(f"{method.full_name}: created_field must name a bool field")
    location = parse_template(rule.location) if rule.location else None
    for capture in location.captures if location else ():
        _resolve(method.output_type, capture.field, f"{method.full_name} location")
    return ResponseRule(
        status=rule.status or 200,
        created_field=created_field,
        created_status=rule.created_status or 201,
        location=location,
        next_page=_next_page(method, rule),
    )


def _next_page(method: MethodDescriptor, rule: Any) -> NextPage | None:
    if not rule.HasField("next_page"):
        return None
    where = f"{method.full_name} next_page"
    page = NextPage(
        token_field=rule.next_page.token_field,
        request_field=rule.next_page.request_field or "page_token",
        omit=frozenset(rule.next_page.omit),
    )
    for message, name in (
        (method.output_type, page.token_field),
        (method.input_type, page.request_field),
    ):
        if _resolve(message, name, where).type != FieldDescriptor.TYPE_STRING:
            raise TemplateError(f"{where}: {message.full_name}.{name} must be a string field")
    return page


def _resolve(message: Descriptor, path: str, where: str) -> FieldDescriptor:
    """The field `path` ("a.b") names in `message`, or TemplateError."""
    first, *rest = path.split(".")
    field = message.fields_by_name.get(first)
    for name in rest:
        parent = field.message_type if field is not None else None
        field = parent.fields_by_name.get(name) if parent is not None else None
    if field is None:
        raise TemplateError(f"{where}: {message.full_name} has no field {path!r}")
    return field
