"""Settings of the tracking service, read once from the environment (see
research_common.settings for how a field names its variable)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from research_common.config import (
    ConfigError,
    boolean,
    number,
    parse_address,
    whole_number,
)
from research_common.constants import TRACKING_ADDRESS
from research_common.settings import ServiceSettings, read_env, variable

# The embedded default: MLflow's own SQL store in a SQLite file under .data/,
# so the service runs with no tracking server. Its artifacts go beside it.
DEFAULT_TRACKING_URI = "sqlite:///.data/mlflow.db"
DEFAULT_ARTIFACT_DIR = ".data/mlartifacts"
# Stores MLflow's client can open: a tracking server, or a store of its own.
_TRACKING_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "file"}


def _tracking_uri(name: str, uri: str) -> str:
    scheme, sep, _ = uri.partition(":")
    if sep and "/" not in scheme and scheme.split("+")[0] not in _TRACKING_SCHEMES:
        raise ConfigError(
            f"{name} must be an http(s):// tracking server or an MLflow store URI "
            f"(sqlite://, postgresql://, file:), got {uri!r}"
        )
    return uri


def _experiment_name(name: str, value: str) -> str:
    if len(value) > 500 or not value.strip():
        raise ConfigError(f"{name} is not a usable name: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings(ServiceSettings):
    """Everything the tracking service reads from its environment."""

    address: str = field(
        default=TRACKING_ADDRESS, metadata=variable("TRACKING_ADDR", parse_address)
    )
    tracking_uri: str = field(
        default=DEFAULT_TRACKING_URI, metadata=variable("MLFLOW_TRACKING_URI", _tracking_uri)
    )
    experiment_name: str = field(
        default="hedge-fund-research",
        metadata=variable("MLFLOW_EXPERIMENT_NAME", _experiment_name),
    )
    # Where the default experiment keeps artifacts when this service creates
    # it; None lets MLflow choose (a tracking server has its own root), but
    # the embedded store keeps them beside it (see `from_env`).
    artifact_location: str | None = field(
        default=None, metadata=variable("MLFLOW_ARTIFACT_LOCATION")
    )
    # Seconds one MLflow call may take before the caller gets UNAVAILABLE.
    # Kept under the gateway's 5 s deadline so that an outage is a 503, not
    # a 504.
    mlflow_timeout: float = field(
        default=4.0, metadata=variable("MLFLOW_TIMEOUT", number(minimum=0.1))
    )
    # Reads from a tracking server (run search, a run, metric histories) go
    # over this service's own kept-alive connections; false sends them
    # through MLflow's client as every other call (tracking_svc.rest_client).
    direct_http: bool = field(default=True, metadata=variable("MLFLOW_DIRECT_HTTP", boolean))
    # Blocking MLflow calls run on this many threads at most; more calls
    # queue (within their deadline) instead of stalling the event loop.
    workers: int = field(default=16, metadata=variable("TRACKING_WORKERS", whole_number(1)))

    @property
    def http_timeout(self) -> int:
        """MLflow's own per-request HTTP timeout (whole seconds)."""
        return max(1, math.ceil(self.mlflow_timeout))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        values = read_env(cls, env)
        uri = values.get("tracking_uri", DEFAULT_TRACKING_URI)
        if "artifact_location" not in values and uri == DEFAULT_TRACKING_URI:
            values["artifact_location"] = Path(DEFAULT_ARTIFACT_DIR).resolve().as_uri()
        return cls(**values)
