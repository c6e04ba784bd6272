"""The HTTP side of one exchange, on plain ASGI: the request's parts, parsed
once, and its body read within a size and time limit and parsed as JSON.
What is answered is a `gateway.responses.Response`."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import grpc
import orjson

from gateway.errors import HttpError
from research_common.constants import REQUEST_ID_HEADER, valid_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# gRPC's timeout header: up to 8 digits and a unit (PROTOCOL-HTTP2.md).
_GRPC_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_JSON_TYPES = ("application/json",)
# Deepest nesting of objects and arrays a body may have (the body itself is
# level 1). A free-form object (a Struct) costs protobuf three message levels
# per JSON level, and protobuf refuses to decode messages nested more than
# 100 deep: without this bound a body nested ~35 levels passed the gateway
# and failed in the service's decoder (500 UNKNOWN, protobuf internals in
# the message), and one nested a few hundred levels hit Python's recursion
# limit in the gateway itself (500). 32 also leaves room for the one level a
# response wraps a stored value in (GetExperimentResponse.experiment).
MAX_JSON_DEPTH = 32
# Bounds on the request head. The HTTP parser reads any number of headers of
# any size; without these a flood of 10,000 headers or one 1 MB header was
# served as if nothing were wrong. Browsers and curl send well under 50
# headers and a few kB.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class Request:
    """The parts of an ASGI HTTP request the gateway uses."""

    __slots__ = ("headers", "lines", "method", "oversized_head", "path", "query", "request_id")

    def __init__(self, scope: Scope) -> None:
        self.method: str = scope["method"]
        raw = scope.get("raw_path")
        # raw_path keeps %2F inside a segment apart from a separator.
        # The path alone, once: ASGI keeps the query apart, but a server
        # that left it on must not make "/x?y" a path of its own.
        self.path = (raw.decode("latin-1") if raw else quote(scope["path"])).split("?", 1)[0]
        self.query: bytes = scope.get("query_string", b"")
        self.headers: dict[str, str] = {}
        self.lines: list[tuple[bytes, bytes]] = scope["headers"]
        for key, value in scope["headers"]:
            self.headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        given = self.headers.get(REQUEST_ID_HEADER, "")
        self.request_id = given if valid_request_id(given) else uuid.uuid4().hex
        self.oversized_head = len(scope["headers"]) > MAX_HEADERS or (
            sum(len(key) + len(value) for key, value in scope["headers"]) > MAX_HEADER_BYTES
        )

    def check_head(self) -> None:
        """431 for a request head over MAX_HEADERS or MAX_HEADER_BYTES."""
        if self.oversized_head:
            raise HttpError(
                431,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes",
            )

    def field_value(self, name: str) -> str | None:
        """Every line of the header `name` (lower case), joined with ", " as
        RFC 9110 §5.3 combines a list header sent on several lines; None
        when absent. `headers` keeps the last line only, which would drop
        all but one of the tags of `If-Match: "a"` `If-Match: "b"`."""
        key = name.encode("latin-1")
        found = [value.decode("latin-1") for raw, value in self.lines if raw.lower() == key]
        return ", ".join(found) if found else None

    def query_params(self) -> dict[str, list[str]]:
        """Every parameter and its values in order; 400 on bad encoding."""
        params: dict[str, list[str]] = {}
        if not self.query:
            return params
        for pair in self.query.split(b"&"):
            if not pair:
                continue
            key, _, value = pair.partition(b"=")
            name, text = _decode_query(key), _decode_query(value)
            if not name:
                raise HttpError.bad_request("a query parameter has no name")
            params.setdefault(name, []).append(text)
        return params

    def timeout(self, default: float, maximum: float) -> float:
        """The gRPC deadline in seconds: `Grpc-Timeout` when sent, capped."""
        raw = self.headers.get("grpc-timeout")
        if raw is None:
            return default
        match = _GRPC_TIMEOUT.fullmatch(raw.strip())
        if match is None:
            raise HttpError.bad_request(
                f"Grpc-Timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n), got {raw!r}",
                "Grpc-Timeout",
            )
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds <= 0:
            raise HttpError.bad_request("Grpc-Timeout must be more than zero", "Grpc-Timeout")
        return min(seconds, maximum)

    def check_json_content_type(self) -> None:
        """415 for a body that does not say it is JSON."""
        given = self.headers.get("content-type")
        if given is None:
            return  # no header: take it as JSON, as most JSON APIs do
        media = given.split(";", 1)[0].strip().lower()
        if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
            return
        raise HttpError(
            415,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Content-Type must be application/json, got {given[:100]!r}"
            " (with curl: -H 'Content-Type: application/json')",
        )


def _decode_query(raw: bytes) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError.bad_request("the query string is not valid UTF-8") from None


async def read_body(request: Request, receive: Receive, limit: int, within: float) -> bytes:
    """The whole body; 413 as soon as it is known to exceed `limit` bytes,
    408 when it has not all arrived within `within` seconds (the request's
    deadline: a client trickling its body must not hold a request open for
    ever)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise HttpError(
            408,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the request body did not arrive within {within:g} s",
            # The rest of the body may still come: the connection cannot
            # carry another request.
            headers={"connection": "close"},
        ) from None


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the request body is larger than {limit} bytes",
    )


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; 400 naming the problem when it is not JSON,
    nests deeper than MAX_JSON_DEPTH, or gives a key twice in one object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HttpError.bad_request(f"the body is not valid JSON: {error}") from None
    _check_depth(value)
    _check_unique_keys(body)
    return value


def _check_unique_keys(body: bytes) -> None:
    """400 naming a key given twice in one object. orjson keeps the last of
    them without a word, so `{"strategy_id": "x", "strategy_id": "<uuid>"}`
    passed as if the first were never sent; the standard parser shows every
    pair to a hook. It runs on text orjson has already accepted, within the
    depth bound, so it cannot fail in any other way."""

    def pairs(items: list[tuple[str, Any]]) -> None:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise HttpError.bad_request(
                    f"{key} is given twice in one object of the body; send each key once", key
                )
            seen.add(key)

    if body.count(b'"') >= 4:  # two keys at least; most bodies are small objects
        json.loads(body, object_pairs_hook=pairs)


def _check_depth(value: Any) -> None:
    """400 naming the top-level field (a key, or `[i]` in an array body)
    under which `value` nests deeper than MAX_JSON_DEPTH. Iterative: the
    point is not to recurse on what the caller sent."""
    pending: list[tuple[Any, int, str]] = [(value, 1, "")]
    while pending:
        item, depth, field = pending.pop()
        if isinstance(item, dict):
            children: Iterable[tuple[str, Any]] = item.items()
        elif isinstance(item, list):
            children = ((f"[{index}]", child) for index, child in enumerate(item))
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            where = field or "the body"
            raise HttpError.bad_request(
                f"{where} nests JSON deeper than {MAX_JSON_DEPTH} levels", field or None
            )
        pending.extend((child, depth + 1, field or key) for key, child in children)
