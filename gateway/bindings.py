"""HTTP bindings read from the descriptors of the services the gateway fronts.

Every unary method with a `google.api.http` rule (and each of its
`additional_bindings`) becomes one `Binding`; the `research.http.v1.response`
option of the method, when present, says how success is answered, and
`research.http.v1.request` which request headers set fields of the request
(`If-Match`) or decide the answer (`If-None-Match`). Nothing here knows any
particular service: a new annotated method is a new route.
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

from gateway.key_orders import KeyOrder, key_orders
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
    # Path of the string field of the response sent as `ETag`.
    etag_field: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRule:
    """Which conditional headers a method takes (`research.http.v1.RequestRule`)."""

    # The string field of the request that takes `If-Match`'s tag, or "*".
    if_match_field: str | None = None
    # `If-None-Match` naming the response's etag is answered 304.
    if_none_match: bool = False


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
    # Maps of the answer whose keys follow a request field (`key_order`,
    # `every_key`), by their path in the rendered JSON.
    key_orders: tuple[KeyOrder, ...] = ()
    request: RequestRule = RequestRule()

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
        request = _request_rule(method, options, response)
        for each in (rule, *rule.additional_bindings):
            bindings.append(_binding(method, each, response, request, upstream))
    return bindings


def _binding(
    method: MethodDescriptor,
    rule: http_pb2.HttpRule,
    response: ResponseRule,
    conditions: RequestRule,
    upstream: str,
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
    _check_conditions(method, conditions, verb, template, rule.body)
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
        key_orders=key_orders(reply, request, rule.response_body or None),
        request=conditions,
    )


def _check_conditions(
    method: MethodDescriptor, rule: RequestRule, verb: str, template: PathTemplate, body: str
) -> None:
    """A header may set only a field nothing else of the binding binds, and
    `If-None-Match` only where answering 304 after the call is harmless."""
    where = f"{method.full_name} request"
    field = rule.if_match_field
    if field is not None:
        head = field.split(".", 1)[0]
        if field in {c.field for c in template.captures}:
            raise TemplateError(f"{where}: if_match_field {field!r} is a path variable")
        if body not in ("", "*") and head == body.split(".", 1)[0]:
            raise TemplateError(f"{where}: if_match_field {field!r} is in the body {body!r}")
    # The 304 is decided on the answer, once the call is made: only a safe
    # method may have been called for nothing (RFC 9110 §13.2.1 would have
    # any other method refused with 412 before it runs).
    if rule.if_none_match and verb != "GET":
        raise TemplateError(f"{where}: if_none_match on {verb}; only GET answers 304")


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
    etag_field = rule.etag_field or None
    if etag_field is not None:
        _string_field(method.output_type, etag_field, f"{method.full_name} etag_field")
    return ResponseRule(
        status=rule.status or 200,
        created_field=created_field,
        created_status=rule.created_status or 201,
        location=location,
        next_page=_next_page(method, rule),
        etag_field=etag_field,
    )


def _request_rule(method: MethodDescriptor, options: Any, response: ResponseRule) -> RequestRule:
    if not options.HasExtension(response_pb2.request):
        return RequestRule()
    rule = options.Extensions[response_pb2.request]
    where = f"{method.full_name} request"
    if_match_field = rule.if_match_field or None
    if if_match_field is not None:
        _string_field(method.input_type, if_match_field, f"{where} if_match_field")
    if rule.if_none_match and response.etag_field is None:
        raise TemplateError(
            f"{where}: if_none_match needs the response rule's etag_field (the tag it compares)"
        )
    return RequestRule(if_match_field=if_match_field, if_none_match=rule.if_none_match)


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
        _string_field(message, name, where)
    return page


def _string_field(message: Descriptor, path: str, where: str) -> FieldDescriptor:
    """The singular string field `path` names in `message`, or TemplateError."""
    field = _resolve(message, path, where)
    if field.type != FieldDescriptor.TYPE_STRING or field.is_repeated:
        raise TemplateError(f"{where}: {message.full_name}.{path} must be a string field")
    return field


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
