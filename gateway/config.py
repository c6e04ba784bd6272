"""Settings of the gateway, read once from the environment (see
research_common.settings for how a field names its variable)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

from research_common.config import ConfigError, number, parse_address, whole_number
from research_common.constants import EXPERIMENTS_ADDRESS, GATEWAY_ADDRESS, TRACKING_ADDRESS
from research_common.settings import ProcessSettings, read_env, variable
from research_common.targets import parse_target

# An origin as browsers send it: scheme://host[:port], nothing after.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


def parse_origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"{name} entries must be '*' or scheme://host[:port], got {origin!r}")
    return origins


@dataclass(frozen=True, slots=True)
class Settings(ProcessSettings):
    """Everything the gateway reads from its environment."""

    address: str = field(default=GATEWAY_ADDRESS, metadata=variable("GATEWAY_ADDR", parse_address))
    # The services as gRPC targets: host:port, dns:///name:port or a list
    # of addresses, spread over round robin (research_common.targets).
    experiments_address: str = field(
        default=EXPERIMENTS_ADDRESS, metadata=variable("EXPERIMENTS_ADDR", parse_target)
    )
    tracking_address: str = field(
        default=TRACKING_ADDRESS, metadata=variable("TRACKING_ADDR", parse_target)
    )
    # Origins browsers may call from; "*" allows any.
    cors_origins: tuple[str, ...] = field(
        default=(), metadata=variable("CORS_ORIGINS", parse_origins)
    )
    # Larger request bodies are answered 413 without being read.
    max_body_bytes: int = field(
        default=1024 * 1024, metadata=variable("GATEWAY_MAX_BODY_BYTES", whole_number(minimum=1))
    )
    # The gRPC deadline of a call, in seconds, unless the caller sends a
    # shorter or longer `Grpc-Timeout` (capped at `max_timeout`).
    timeout: float = field(default=5.0, metadata=variable("GATEWAY_TIMEOUT", number(0.01)))
    max_timeout: float = field(default=60.0, metadata=variable("GATEWAY_MAX_TIMEOUT", number(0.01)))
    # Seconds /readyz waits for each upstream's health check.
    ready_timeout: float = field(default=1.0, metadata=variable("READY_TIMEOUT", number(0.01)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        settings = cls(**read_env(cls, env))
        if settings.max_timeout < settings.timeout:
            raise ConfigError(
                f"GATEWAY_MAX_TIMEOUT ({settings.max_timeout:g}) is below "
                f"GATEWAY_TIMEOUT ({settings.timeout:g})"
            )
        return settings
