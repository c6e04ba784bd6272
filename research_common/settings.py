"""Settings as every process reads them: a frozen dataclass whose fields name
their environment variable (and its parser) in their metadata. `from_env`
reads each variable that is set and not empty, and leaves the others to
the dataclass, so that each default is written once, in its field:

    timeout: float = field(default=5.0, metadata=variable("X_TIMEOUT", number(0.01)))

`ProcessSettings` holds what every process has (its address, API_TOKENS,
TLS, the shutdown grace, the log level and format); `ServiceSettings` adds what both
gRPC services have (health probes, METRICS_ADDR)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from research_common.auth import Tokens
from research_common.config import (
    LogFormat,
    Parser,
    log_format,
    log_level,
    number,
    parse_address,
    text,
)
from research_common.tls import TlsSettings

_VARIABLE = "variable"
_PARSE = "parse"
_READ = "read"


def variable(name: str, parse: Parser[Any] = text) -> dict[str, Any]:
    """Field metadata: the setting is `parse(name, value)` of the variable
    `name` when it is set and not empty, the field's default otherwise."""
    return {_VARIABLE: name, _PARSE: parse}


def variables(read: Callable[[Mapping[str, str]], Any]) -> dict[str, Any]:
    """Field metadata of a setting made of several variables (API_TOKENS,
    the TLS files), which `read` takes from the whole environment."""
    return {_READ: read}


def read_env(cls: type[Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of `cls` that `env` (default: os.environ) sets.
    Settings it leaves unset are absent: the dataclass has their defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for setting in dataclasses.fields(cls):
        metadata = setting.metadata
        if _READ in metadata:
            values[setting.name] = metadata[_READ](env)
        elif _VARIABLE in metadata:
            name = metadata[_VARIABLE]
            raw = env.get(name)
            if raw:
                values[setting.name] = metadata[_PARSE](name, raw)
    return values


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """What every process reads."""

    # Where the process listens. Each process declares it again with its
    # own variable and default (EXPERIMENTS_ADDR, ...); here it has neither.
    address: str
    # Seconds in-flight calls may take to finish after SIGTERM.
    shutdown_grace: float = field(default=10.0, metadata=variable("SHUTDOWN_GRACE", number()))
    log_level: str = field(default="INFO", metadata=variable("LOG_LEVEL", log_level))
    # JSON lines or text lines; "auto": text on a terminal (research_common.logging).
    log_format: LogFormat = field(default="auto", metadata=variable("LOG_FORMAT", log_format))
    # Bearer tokens every call must carry (API_TOKENS); none: no token asked.
    tokens: Tokens = field(default_factory=Tokens, metadata=variables(Tokens.from_env))
    # TLS_CERT_FILE / TLS_KEY_FILE (serve TLS), TLS_CA_FILE (dial TLS).
    tls: TlsSettings = field(default_factory=TlsSettings, metadata=variables(TlsSettings.from_env))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings `env` (default: os.environ) gives; ConfigError names
        the first variable that is malformed."""
        return cls(**read_env(cls, env))


@dataclass(frozen=True, slots=True)
class ServiceSettings(ProcessSettings):
    """What both gRPC services read besides."""

    # Seconds between probes of the service's store behind grpc.health.v1.
    health_interval: float = field(
        default=2.0, metadata=variable("HEALTH_CHECK_INTERVAL", number(minimum=0.05))
    )
    # Where Prometheus metrics are served (host:port); unset: not served.
    metrics_address: str | None = field(
        default=None, metadata=variable("METRICS_ADDR", parse_address)
    )
    # The key of the page tokens' MAC. Every replica needs the same one so
    # that any replica reads any token; a token grants nothing beyond its own
    # query, so the key guards the tokens' integrity, not a secret (see
    # research_common.page_tokens). Set PAGE_TOKEN_KEY to make forged tokens
    # unverifiable too.
    page_token_key: str = field(default="research page tokens", metadata=variable("PAGE_TOKEN_KEY"))
