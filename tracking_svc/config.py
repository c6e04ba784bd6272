"""Settings of the tracking service, read once from the environment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from research_common.auth import Tokens
from research_common.config import (
    ConfigError,
    env_float,
    env_int,
    env_log_level,
    optional_address,
    parse_address,
)
from research_common.tls import TlsSettings

DEFAULT_ADDRESS = "127.0.0.1:50052"
# The embedded default: MLflow's own SQL store in a SQLite file under .data/,
# so the service runs with no tracking server. Its artifacts go beside it.
DEFAULT_TRACKING_URI = "sqlite:///.data/mlflow.db"
DEFAULT_ARTIFACT_DIR = ".data/mlartifacts"
DEFAULT_EXPERIMENT_NAME = "hedge-fund-research"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the tracking service reads from its environment."""

    address: str = DEFAULT_ADDRESS
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment_name: str = DEFAULT_EXPERIMENT_NAME
    # Where the default experiment keeps artifacts when this service creates
    # it; None lets MLflow choose (a tracking server has its own root).
    artifact_location: str | None = None
    # Seconds one MLflow call may take before the caller gets UNAVAILABLE.
    # Kept under the gateway's 5 s deadline so that an outage is a 503, not
    # a 504.
    mlflow_timeout: float = 4.0
    # Blocking MLflow calls run on this many threads at most; more calls
    # queue (within their deadline) instead of stalling the event loop.
    workers: int = 16
    # Seconds between MLflow probes behind grpc.health.v1.
    health_interval: float = 2.0
    # Seconds in-flight calls may take to finish after SIGTERM.
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    # Bearer tokens every call must carry (API_TOKENS); none: no token asked.
    tokens: Tokens = field(default_factory=Tokens)
    # TLS_CERT_FILE / TLS_KEY_FILE (serve TLS), TLS_CA_FILE (dial TLS).
    tls: TlsSettings = field(default_factory=TlsSettings)
    # Where Prometheus metrics are served (host:port); unset: not served.
    metrics_address: str | None = None

    @property
    def http_timeout(self) -> int:
        """MLflow's own per-request HTTP timeout (whole seconds)."""
        return max(1, math.ceil(self.mlflow_timeout))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        artifact_location = env.get("MLFLOW_ARTIFACT_LOCATION") or None
        if artifact_location is None and tracking_uri == DEFAULT_TRACKING_URI:
            artifact_location = Path(DEFAULT_ARTIFACT_DIR).resolve().as_uri()
        _check_tracking_uri(tracking_uri)
        experiment_name = env.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT_NAME
        if len(experiment_name) > 500 or not experiment_name.strip():
            raise ConfigError(f"MLFLOW_EXPERIMENT_NAME is not a usable name: {experiment_name!r}")
        return cls(
            address=parse_address("TRACKING_ADDR", env.get("TRACKING_ADDR") or DEFAULT_ADDRESS),
            tracking_uri=tracking_uri,
            experiment_name=experiment_name,
            artifact_location=artifact_location,
            mlflow_timeout=env_float(env, "MLFLOW_TIMEOUT", 4.0, minimum=0.1),
            workers=env_int(env, "TRACKING_WORKERS", 16, minimum=1),
            health_interval=env_float(env, "HEALTH_CHECK_INTERVAL", 2.0, minimum=0.05),
            shutdown_grace=env_float(env, "SHUTDOWN_GRACE", 10.0),
            log_level=env_log_level(env),
            tokens=Tokens.from_env(env),
            tls=TlsSettings.from_env(env),
            metrics_address=optional_address(env, "METRICS_ADDR"),
        )


# Stores MLflow's client can open: a tracking server, or a store of its own.
_TRACKING_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "file"}


def _check_tracking_uri(uri: str) -> None:
    scheme, sep, _ = uri.partition(":")
    if sep and "/" not in scheme and scheme.split("+")[0] not in _TRACKING_SCHEMES:
        raise ConfigError(
            f"MLFLOW_TRACKING_URI must be an http(s):// tracking server or an MLflow store URI "
            f"(sqlite://, postgresql://, file:), got {uri!r}"
        )
