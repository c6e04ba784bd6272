"""CORS for the origins in `CORS_ORIGINS` (CONTRACT §1).

A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
from an allowed origin, for a method the path has, is answered 204 with the
allow headers; any other preflight is refused with 403. Actual requests from
an allowed origin get `Access-Control-Allow-Origin` and the response headers
a script may read; from other origins they are served without CORS headers,
so the browser withholds the response.
"""

from __future__ import annotations

from collections.abc import Iterable

# Request headers a browser script may send (If-Match and If-None-Match for
# the methods that take entity tags: a script edits what it read, AIP-154).
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "grpc-timeout",
    "if-match",
    "if-none-match",
    "x-request-id",
)
# Response headers a browser script may read besides the CORS-safelisted
# ones; ETag is not safelisted, and a script needs it for If-Match.
EXPOSED_HEADERS = "etag, link, location, x-request-id"
# Seconds a browser may cache a preflight answer.
MAX_AGE = "600"


class CorsPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)
        self._any = "*" in self._origins

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self._any or origin in self._origins)

    def response_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """Headers for an actual (non-preflight) response."""
        if not self.enabled:
            return []
        if origin is None or not self.allows(origin):
            return [("vary", "Origin")]
        return [
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", EXPOSED_HEADERS),
            ("vary", "Origin"),
        ]

    def preflight(
        self, origin: str | None, method: str, request_headers: str, allowed_methods: Iterable[str]
    ) -> tuple[list[tuple[str, str]], str | None]:
        """The headers of a preflight answer, and the reason it is refused (or None)."""
        methods = sorted(set(allowed_methods))
        if origin is None or not self.allows(origin):
            return [("vary", "Origin")], f"origin {origin!r} is not allowed (CORS_ORIGINS)"
        if method not in methods:
            return [("vary", "Origin")], f"method {method!r} is not allowed on this path"
        asked = [h.strip().lower() for h in request_headers.split(",") if h.strip()]
        refused = [h for h in asked if h not in ALLOWED_HEADERS]
        if refused:
            return [("vary", "Origin")], f"request header {refused[0]!r} is not allowed"
        return [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", ", ".join(methods)),
            ("access-control-allow-headers", ", ".join(ALLOWED_HEADERS)),
            ("access-control-max-age", MAX_AGE),
            ("vary", "Origin"),
        ], None
