"""Bearer tokens (`API_TOKENS`, CONTRACT §1), checked the same way by the
gateway and by each gRPC service, so that bypassing the gateway gets nothing.

Tokens are compared in constant time, against every configured token
(no early exit), and are never logged or echoed.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from contextvars import ContextVar

from research_common.config import ConfigError

AUTHORIZATION_HEADER = "authorization"
# The caller's `authorization` value while its call is handled, so that a
# service calling another (ImportRun) passes the caller's credentials on.
AUTHORIZATION: ContextVar[str | None] = ContextVar("authorization", default=None)

# RFC 6750 token68 characters: what a bearer token may hold.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEME = "bearer "


class Tokens:
    """The accepted tokens; empty means no token is asked for. Its repr
    tells how many there are, never what they are."""

    __slots__ = ("_tokens",)

    def __init__(self, tokens: tuple[str, ...] = ()) -> None:
        self._tokens = tuple(token.encode() for token in tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokens) and other._tokens == self._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Tokens({len(self._tokens)} configured)"

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str = "API_TOKENS") -> Tokens:
        raw = env.get(name, "")
        tokens = tuple(part.strip() for part in raw.split(",") if part.strip())
        for index, token in enumerate(tokens, 1):
            if not _TOKEN.fullmatch(token):
                # Never echo the token itself, even in a configuration error.
                raise ConfigError(
                    f"{name}: token #{index} has characters a bearer token cannot hold"
                )
        return cls(tokens)

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def accepts(self, authorization: str | None) -> bool:
        """True when no token is configured, or `authorization` is
        `Bearer <one of the tokens>` (scheme case-insensitive)."""
        if not self._tokens:
            return True
        if authorization is None or authorization[: len(_SCHEME)].lower() != _SCHEME:
            return False
        given = authorization[len(_SCHEME) :].strip().encode("utf-8", "replace")
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(given, token)
        return matched


# What a refused call is told (the same words over HTTP and gRPC).
MISSING = "a bearer token is required: send 'Authorization: Bearer <token>'"
WRONG = "the bearer token is not valid"


def refusal(authorization: str | None) -> str:
    return MISSING if authorization is None else WRONG
