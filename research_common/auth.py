"""Bearer tokens (`API_TOKENS`, CONTRACT §1), checked the same way by the
gateway and by each gRPC service, so that bypassing the gateway gets nothing.

An entry of `API_TOKENS` is `secret`, `name:secret` or `name:secret:read`.
The name is the caller's identity, recorded in revisions and logs; a bare
secret is named `token-<n>`, its 1-based position. A `:read` token may call
only the methods the protos declare change nothing
(`option idempotency_level = NO_SIDE_EFFECTS`, `read_only_methods`).

Secrets are compared in constant time, against every configured token
(no early exit), and are never logged or echoed, not even in a
configuration error about them.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2, descriptor_pool

from research_common.config import ConfigError

AUTHORIZATION_HEADER = "authorization"
# The caller's `authorization` value while its call is handled, so that a
# service calling another (ImportRun) passes the caller's credentials on.
AUTHORIZATION: ContextVar[str | None] = ContextVar("authorization", default=None)
# The name of the caller's token while its call is handled (None when no
# token is configured), set by the services' interceptor for every call:
# what a revision records as its `actor` (CONTRACT §9).
ACTOR: ContextVar[str | None] = ContextVar("actor", default=None)

# RFC 6750 token68 characters: what a bearer token may hold. It has no ':',
# so the parts of an entry are never ambiguous.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A name goes into log lines and revisions as it is: short, and nothing
# that needs quoting or escaping there.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_READ = "read"
_SCHEME = "bearer "
_FORMS = "secret, name:secret or name:secret:read"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a call comes from: a token's name (never its secret) and whether
    the token may only read. `ANONYMOUS` when no token is configured."""

    name: str | None
    read_only: bool = False


# The caller when no token is asked for: unnamed, and may call anything.
ANONYMOUS = Identity(None)


@dataclass(frozen=True, slots=True)
class Token:
    """One entry of `API_TOKENS`; its repr never shows the secret."""

    name: str
    secret: str = field(repr=False)
    read_only: bool = False

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.read_only)


def parse_tokens(entries: Iterable[str], variable: str = "API_TOKENS") -> tuple[Token, ...]:
    """The tokens of `entries` (each `secret`, `name:secret` or
    `name:secret:read`; blank ones skipped), or ConfigError naming the
    first bad entry by its position, never by its text: a malformed entry
    may well be a secret in the wrong place."""
    tokens: list[Token] = []
    names: dict[str, int] = {}
    secrets: dict[str, int] = {}
    for index, entry in enumerate((e.strip() for e in entries if e.strip()), 1):
        token = _parse_entry(entry, index, variable)
        if token.name in names:
            raise ConfigError(
                f"{variable}: token #{index} has the same name as token #{names[token.name]};"
                " each token needs its own"
            )
        if token.secret in secrets:
            # One secret under two names would make the caller's identity
            # (and whether it may write) a matter of order.
            raise ConfigError(
                f"{variable}: token #{index} has the same secret as token #{secrets[token.secret]}"
            )
        names[token.name] = secrets[token.secret] = index
        tokens.append(token)
    return tuple(tokens)


def _parse_entry(entry: str, index: int, variable: str) -> Token:
    parts = entry.split(":")
    if len(parts) > 3:
        raise ConfigError(f"{variable}: token #{index} has too many ':' parts; write {_FORMS}")
    if len(parts) == 3 and parts[2] != _READ:
        raise ConfigError(
            f"{variable}: token #{index} has a third part other than 'read'; write {_FORMS}"
        )
    name, secret = (f"token-{index}", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{variable}: token #{index} needs a name of 1 to 64 letters, digits, '_', '.' or '-'"
        )
    if not secret:
        raise ConfigError(f"{variable}: token #{index} has no secret; write {_FORMS}")
    if not _TOKEN.fullmatch(secret):
        raise ConfigError(f"{variable}: token #{index} has characters a bearer token cannot hold")
    return Token(name, secret, read_only=len(parts) == 3)


class Tokens:
    """The accepted tokens; empty means no token is asked for. Its repr
    tells how many there are, never what they are.

    `Tokens(entries)` takes the entries of `API_TOKENS` (any of the three
    forms, or the whole comma-separated text) and refuses malformed ones as
    `from_env` does."""

    __slots__ = ("_identities", "_secrets", "_tokens")

    def __init__(self, entries: Iterable[str] = (), variable: str = "API_TOKENS") -> None:
        if isinstance(entries, str):  # not its characters, one by one
            entries = entries.split(",")
        self._tokens = parse_tokens(entries, variable)
        self._secrets = tuple(token.secret.encode() for token in self._tokens)
        self._identities = tuple(token.identity for token in self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokens) and other._tokens == self._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Tokens({len(self._tokens)} configured)"

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str = "API_TOKENS") -> Tokens:
        return cls(env.get(name, ""), name)

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def identify(self, authorization: str | None) -> Identity | None:
        """Whom `authorization` (`Bearer <secret>`, the scheme
        case-insensitive) identifies: the matching token's identity,
        `ANONYMOUS` when no token is configured, None when it matches none."""
        if not self._tokens:
            return ANONYMOUS
        if authorization is None or authorization[: len(_SCHEME)].lower() != _SCHEME:
            return None
        given = authorization[len(_SCHEME) :].strip().encode("utf-8", "replace")
        found: Identity | None = None
        # Every secret is compared, whichever matches (no early exit), so that
        # the time taken tells nothing of which token matched or how nearly.
        # Secrets are unique (parse_tokens), so at most one does.
        for identity, secret in zip(self._identities, self._secrets, strict=True):
            if hmac.compare_digest(given, secret):
                found = identity
        return found


def read_only_methods(service_names: Iterable[str]) -> frozenset[str]:
    """The gRPC paths (`/package.Service/Method`) of the methods of
    `service_names` that change nothing, which is all a `:read` token may
    call. The protos declare it, once, with protobuf's standard method option
    `option idempotency_level = NO_SIDE_EFFECTS`; the services' descriptors
    are in the default pool once their generated modules are imported. A
    service without a descriptor there declares nothing: a `:read` token
    may call none of its methods."""
    pool = descriptor_pool.Default()
    paths: set[str] = set()
    for service_name in service_names:
        try:
            service = pool.FindServiceByName(service_name)
        except KeyError:
            continue
        for method in service.methods:
            if changes_nothing(method.GetOptions()):
                paths.add(f"/{service.full_name}/{method.name}")
    return frozenset(paths)


def changes_nothing(options: descriptor_pb2.MethodOptions) -> bool:
    """Whether a method's options declare that calling it changes nothing."""
    return options.idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS


def read_only_refusal(name: str | None, method: str) -> str:
    """What a `:read` token is told when it calls `method` (a gRPC path or a
    method's full name), the same words over HTTP and gRPC."""
    return f"token '{name}' is read-only and cannot call {method.lstrip('/')}"


# What a refused call is told (the same words over HTTP and gRPC).
MISSING = "a bearer token is required: send 'Authorization: Bearer <token>'"
WRONG = "the bearer token is not valid"


def refusal(authorization: str | None) -> str:
    return MISSING if authorization is None else WRONG
