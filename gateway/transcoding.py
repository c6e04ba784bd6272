"""One HTTP request into one gRPC request message, and the response back,
following the binding's `google.api.http` rule:

- path variables (`{experiment_id}`, `{a.b}`) set the fields they name;
- `body: "*"` maps the JSON object onto the whole request; `body: "<field>"`
  onto that field (a repeated field takes a bare JSON array);
- query parameters set the fields neither the path nor the body bound
  (scalars, repeated scalars by repeating the parameter, enums by name);
  any other query parameter is 400 naming it;
- a PATCH-style rule whose body is a message field, on a request with an
  `update_mask`, gets the mask from the keys present in the body when the
  caller gives none: a field present replaces, a present `null` clears, an
  absent field is untouched (as grpc-gateway does);
- `response_body` picks the field answered; `research.http.v1.response`
  decides the status, the `Location` header and the entity tag (`ETag`);
- the field `research.http.v1.request` names takes the `If-Match` tag
  (`gateway.preconditions` parses the header); it is set by that header
  only, never by the query string or the body, so that one request cannot
  carry two conditions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

from google.protobuf.message import Message

from gateway.bindings import Binding
from gateway.errors import HttpError
from gateway.key_orders import order_keys
from gateway.parsing import FieldError, parse_field, parse_into, set_from_text
from gateway.preconditions import IF_MATCH, entity_tag
from gateway.rendering import render, render_field

log = logging.getLogger("gateway.transcoding")

# The `body` of a request that had none (distinct from a JSON `null`).
NO_BODY: Any = object()
UPDATE_MASK = "update_mask"
_FIELD_MASK = "google.protobuf.FieldMask"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # JSON-ready; ignored when status is 204
    location: str | None
    next_page_token: str | None = None
    # The response's entity tag (the `ETag` header's, without quotes).
    etag: str | None = None


def build_request(
    binding: Binding,
    variables: dict[str, str],
    query: dict[str, list[str]],
    body: Any = NO_BODY,
    if_match: str | None = None,
) -> Message:
    """The request message; HttpError 400 naming the field on bad input.
    `body` is the parsed JSON body, or absent when the request had none;
    `if_match` the tag of an `If-Match` header (or "*"), for a binding that
    takes one."""
    request = binding.request_class()
    try:
        if body is not NO_BODY:
            _apply_body(binding, request, body)
        for field, value in variables.items():
            set_from_text(request, field, [value], field)
        _apply_query(binding, request, query, variables)
        if body is not NO_BODY:
            _mask_and_body(binding, request, body)
        _apply_if_match(binding, request, if_match)
    except FieldError as error:
        raise HttpError.bad_request(str(error), error.path or None) from None
    return request


def _apply_if_match(binding: Binding, request: Message, tag: str | None) -> None:
    field = binding.request.if_match_field
    if field is None:
        return
    # Only a `body: "*"` can have set it: the query refuses it, and a path
    # variable or a body field never holds it (checked in bindings).
    if _text(request, field):
        raise FieldError(field, f"is taken from the {IF_MATCH} header, not from the body")
    if tag is not None:
        set_from_text(request, field, [tag], field)


def _apply_body(binding: Binding, request: Message, body: Any) -> None:
    if binding.body is None:
        raise FieldError("", f"is not allowed: {binding.http_method} {binding.template.source}")
    if binding.body == "*":
        parse_into(body, request)
        return
    field = binding.body_field
    if field is None:  # unreachable: bindings resolve the body field
        raise FieldError(binding.body, "is not a field of the request")
    # Errors name fields as the caller wrote them: the body is the root.
    parse_field(body, request, field, "")


def _mask_and_body(binding: Binding, request: Message, body: Any) -> None:
    """For a body bound to a message field of a request with a FieldMask
    `update_mask`: with no mask (or an empty one), the mask is the keys of
    the body; with one, the mask and the keys must agree, since only here is
    it visible which fields the body holds (a `null` that clears, an empty
    `{}` that replaces): a key outside the mask, or a mask path the body
    does not hold, would otherwise be dropped silently (CONTRACT §3)."""
    field = binding.body_field
    mask_field = request.DESCRIPTOR.fields_by_name.get(UPDATE_MASK)
    if (
        not isinstance(body, dict)
        or field is None
        or field.message_type is None
        or mask_field is None
        or mask_field.message_type is None
        or mask_field.message_type.full_name != _FIELD_MASK
    ):
        return
    names = field.message_type.fields_by_name
    by_json = {f.json_name: f.name for f in field.message_type.fields}
    keys = [key if key in names else by_json[key] for key in body]
    mask = getattr(request, UPDATE_MASK)
    if not mask.paths:
        mask.paths.extend(keys)
        return
    given = list(mask.paths)
    heads = {by_json.get(head, head) for head in (path.split(".", 1)[0] for path in given)}
    for key in keys:
        if key not in heads:
            raise FieldError(
                key,
                f"is in the body but update_mask ({', '.join(given)}) does not name it: "
                "name every field the body holds, or send no update_mask",
            )
    for path in given:
        head = path.split(".", 1)[0]
        if by_json.get(head, head) not in keys:
            raise FieldError(
                UPDATE_MASK,
                f"names {path!r}, which the body does not hold: send it (null clears it) "
                "or leave it out of the mask",
            )


def _apply_query(
    binding: Binding, request: Message, query: dict[str, list[str]], variables: dict[str, str]
) -> None:
    header_field = binding.request.if_match_field
    for name, values in query.items():
        root = name.split(".", 1)[0]
        if name == header_field:
            raise FieldError(name, f"is taken from the {IF_MATCH} header, not the query string")
        if binding.body == "*" or root == binding.body or name in variables:
            raise FieldError(name, "is not a query parameter of this route (unknown parameter)")
        if root not in request.DESCRIPTOR.fields_by_name:
            raise FieldError(name, "is not a query parameter of this route (unknown parameter)")
        # Only a FieldMask `update_mask` takes "a,b"; one of another type is an
        # ordinary parameter (taking every `update_mask` as a mask was a 500).
        mask = request.DESCRIPTOR.fields_by_name[root].message_type
        if name == UPDATE_MASK and mask is not None and mask.full_name == _FIELD_MASK:
            # "a,b" as in proto3 JSON, or repeated
            paths = [part for value in values for part in value.split(",") if part]
            getattr(request, UPDATE_MASK).paths.extend(paths)
            continue
        set_from_text(request, name, values, name)


def build_reply(binding: Binding, response: Message, request: Message | None = None) -> Reply:
    """Status, JSON body, `Location` and entity tag of a successful call;
    `request` gives the keys of `key_order` maps (`gateway.key_orders`)."""
    rule = binding.response
    status = rule.status
    created = status == 201
    if rule.created_field is not None and getattr(response, rule.created_field):
        status, created = rule.created_status, True
    location = None
    if created and rule.location is not None:
        location = rule.location.expand(
            {c.field: _text(response, c.field) for c in rule.location.captures}
        )
    next_page = rule.next_page
    token = getattr(response, next_page.token_field) if next_page is not None else None
    etag = _etag(binding, response)
    if status == 204:
        return Reply(status, None, location, token or None, etag)
    if binding.response_body:
        body = render_field(response, binding.response_body)
    else:
        body = render(response)
    if request is not None:
        body = order_keys(body, binding.key_orders, request)
    return Reply(status, body, location, token or None, etag)


def _etag(binding: Binding, response: Message) -> str | None:
    """The response's entity tag when the rule names one and it is set."""
    field = binding.response.etag_field
    tag = _text(response, field) if field is not None else ""
    if not tag:
        return None
    if entity_tag(tag) is None:
        # The service's bug, but not the caller's problem: the answer is
        # still right, it only cannot be made conditional.
        log.warning("%s answered an etag that is no entity tag: %r", binding.name, tag[:100])
        return None
    return tag


def next_link(binding: Binding, token: str, path: str, raw_query: bytes) -> str:
    """The `Link` header (RFC 8288) to the next page: the same path and
    query, with the token in place of any earlier one and without the
    parameters the rule omits (offset paging the token replaces)."""
    rule = binding.response.next_page
    if rule is None:  # unreachable: a token is only read where a rule is
        raise ValueError(f"{binding.method.full_name} has no next_page rule")
    dropped = {*rule.omit, rule.request_field}
    kept = [
        pair
        for pair in raw_query.decode("latin-1").split("&")
        if pair and unquote_plus(pair.partition("=")[0]) not in dropped
    ]
    kept.append(f"{rule.request_field}={quote(token, safe='')}")
    return f'<{path}?{"&".join(kept)}>; rel="next"'


def _text(message: Message, path: str) -> str:
    value: Any = message
    for name in path.split("."):
        value = getattr(value, name)
    return str(value)
