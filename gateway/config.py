"""Settings of the gateway, read once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from research_common.auth import Tokens
from research_common.config import ConfigError, env_float, env_int, env_log_level, parse_address
from research_common.tls import TlsSettings

DEFAULT_ADDRESS = "127.0.0.1:8080"
DEFAULT_EXPERIMENTS_ADDRESS = "127.0.0.1:50051"
DEFAULT_TRACKING_ADDRESS = "127.0.0.1:50052"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# An origin as browsers send it: scheme://host[:port], nothing after.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway reads from its environment."""

    address: str = DEFAULT_ADDRESS
    experiments_address: str = DEFAULT_EXPERIMENTS_ADDRESS
    tracking_address: str = DEFAULT_TRACKING_ADDRESS
    # Origins browsers may call from; "*" allows any.
    cors_origins: tuple[str, ...] = ()
    # Larger request bodies are answered 413 without being read.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The gRPC deadline of a call, in seconds, unless the caller sends a
    # shorter or longer `Grpc-Timeout` (capped at `max_timeout`).
    timeout: float = 5.0
    max_timeout: float = 60.0
    # Seconds /readyz waits for each upstream's health check.
    ready_timeout: float = 1.0
    # Seconds in-flight requests may take to finish after SIGTERM.
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    # Bearer tokens every call must carry (API_TOKENS); none: no token asked.
    tokens: Tokens = field(default_factory=Tokens)
    # TLS_CERT_FILE / TLS_KEY_FILE (serve TLS), TLS_CA_FILE (dial TLS).
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        timeout = env_float(env, "GATEWAY_TIMEOUT", 5.0, minimum=0.01)
        max_timeout = env_float(env, "GATEWAY_MAX_TIMEOUT", 60.0, minimum=0.01)
        if max_timeout < timeout:
            raise ConfigError(
                f"GATEWAY_MAX_TIMEOUT ({max_timeout:g}) is below GATEWAY_TIMEOUT ({timeout:g})"
            )
        return cls(
            address=parse_address("GATEWAY_ADDR", env.get("GATEWAY_ADDR") or DEFAULT_ADDRESS),
            experiments_address=parse_address(
                "EXPERIMENTS_ADDR", env.get("EXPERIMENTS_ADDR") or DEFAULT_EXPERIMENTS_ADDRESS
            ),
            tracking_address=parse_address(
                "TRACKING_ADDR", env.get("TRACKING_ADDR") or DEFAULT_TRACKING_ADDRESS
            ),
            cors_origins=parse_origins(env.get("CORS_ORIGINS", "")),
            max_body_bytes=env_int(
                env, "GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1
            ),
            timeout=timeout,
            max_timeout=max_timeout,
            ready_timeout=env_float(env, "READY_TIMEOUT", 1.0, minimum=0.01),
            shutdown_grace=env_float(env, "SHUTDOWN_GRACE", 10.0),
            log_level=env_log_level(env),
            tokens=Tokens.from_env(env),
            tls=TlsSettings.from_env(env),
        )


def parse_origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"CORS_ORIGINS entries must be '*' or scheme://host[:port], got {origin!r}"
            )
    return origins
