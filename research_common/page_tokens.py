"""Page tokens (Google's AIP-158): where the next page of a list starts.

A token is opaque to the caller, URL-safe, and holds no server-side state:
it carries the position of the last row of its page (a keyset, so that a
page at any depth costs the same as the first and rows created meanwhile
shift nothing) and a fingerprint of the query it belongs to. An HMAC over
both makes it tamper-evident: a token that was altered, made up, or used
with another query is refused, naming `page_token`.

The MAC's key is a setting shared by every replica (so that any replica can
read any token). A token grants nothing beyond the query it belongs to,
which the caller could run anyway: the key protects the token's integrity,
not a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from research_common.errors import InvalidArgument

FIELD = "page_token"
VERSION = 1
_MAC_BYTES = 16
_FINGERPRINT_CHARS = 16
# A token is a few hundred characters; anything much longer is not ours.
_MAX_TOKEN_CHARS = 2048


def _fingerprint(query: Mapping[str, Any]) -> str:
    canonical = orjson.dumps(query, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()[:_FINGERPRINT_CHARS]


class PageTokens:
    """Encodes and checks the page tokens of one service."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a page token key must not be empty")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, query: Mapping[str, Any], position: list[Any]) -> str:
        """The token of the page after `position` in the list `query` asks
        for. `query` holds what the token is bound to (filters, order), not
        the page size; `position` is JSON (strings and numbers)."""
        payload = orjson.dumps({"v": VERSION, "q": _fingerprint(query), "p": position})
        raw = payload + self._mac(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode(self, token: str, query: Mapping[str, Any]) -> list[Any]:
        """The position `token` holds; InvalidArgument naming `page_token`
        when it is malformed, altered, or belongs to another query."""
        if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            raise not_a_token()
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise not_a_token() from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise _refused("is malformed or was altered; use the token a page returned")
        body = orjson.loads(payload)
        if body.get("v") != VERSION or not isinstance(body.get("p"), list):
            raise _refused("is from another version of the service; start again without it")
        if body.get("q") != _fingerprint(query):
            raise _refused(
                "belongs to another query: keep the filters and order of the first page "
                "(only the page size may change), or start again without page_token"
            )
        position: list[Any] = body["p"]
        return position


def requested_size(limit: int | None, page_size: int | None) -> tuple[str, int | None]:
    """Which of `limit` (the seed's name) and `page_size` (AIP-158's) the
    caller gave, and its value; they name the same thing, so both given and
    different is InvalidArgument."""
    if limit is not None and page_size is not None and limit != page_size:
        raise InvalidArgument.field(
            "page_size", f"and limit name the same thing; got {page_size} and {limit}, give one"
        )
    return ("limit", limit) if limit is not None else ("page_size", page_size)


def not_a_token() -> InvalidArgument:
    """A token that checked out but holds no position this list reads."""
    return _refused("is not a page token of this list")


def _refused(problem: str) -> InvalidArgument:
    return InvalidArgument.field(FIELD, problem)
