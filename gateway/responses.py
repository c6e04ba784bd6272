"""What an endpoint answers: one typed response, sent the same way by every
layer (an endpoint, the error layer, a CORS preflight)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import HttpError

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

JSON = "application/json"
# Statuses that never carry a body (RFC 9110 §15.3.5, §15.4.5).
_BODILESS = frozenset({204, 304})


@dataclass(slots=True)
class Response:
    """An HTTP answer: status, headers (lower-case names) and body bytes."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = None

    @classmethod
    def json(cls, status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """`value` as JSON; no body at all for 204 and 304."""
        if status in _BODILESS:
            return cls(status, b"", list(headers))
        return cls(status, orjson.dumps(value), list(headers), JSON)

    @classmethod
    def raw(
        cls, payload: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        """A 200 whose body is sent as it is (a page, an asset, metrics)."""
        return cls(200, payload, list(headers), content_type)

    async def send(self, send: Send, *, head: bool = False) -> None:
        """Answer on `send`. For a HEAD request (`head`) every header is the
        one GET would have, Content-Length included, and no body is sent."""
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]
        if self.content_type is not None:
            raw.append((b"content-type", self.content_type.encode("latin-1")))
        # A 304's Content-Length would have to be the 200's (RFC 9110 §8.6),
        # which a 304 does not know: it has none.
        if self.status != 304:
            raw.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


def error_response(error: HttpError) -> Response:
    """The contract's error body (CONTRACT §4) with the error's status and
    headers (`Allow`, `WWW-Authenticate`, ...)."""
    return Response.json(error.status, error.body(), error.headers.items())
