"""Settings of the experiments service, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from research_common.auth import Tokens
from research_common.config import (
    env_bool,
    env_float,
    env_log_level,
    optional_address,
    parse_address,
)
from research_common.tls import TlsSettings

DEFAULT_ADDRESS = "127.0.0.1:50051"
# Where ImportRun finds the tracking service.
DEFAULT_TRACKING_ADDRESS = "127.0.0.1:50052"
# The embedded default: a SQLite file under .data/ in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///.data/experiments.db"
# The key of the page tokens' MAC. Every replica needs the same one so that
# any replica reads any token; a token grants nothing beyond its own query,
# so the key guards the tokens' integrity, not a secret (see
# research_common.page_tokens). Set PAGE_TOKEN_KEY to make forged tokens
# unverifiable too.
DEFAULT_PAGE_TOKEN_KEY = "research.experiments.v1 page tokens"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the experiments service reads from its environment."""

    address: str = DEFAULT_ADDRESS
    database_url: str = DEFAULT_DATABASE_URL
    # Apply Alembic migrations at start-up (off where a separate job runs them).
    auto_migrate: bool = True
    # Seconds between database probes behind grpc.health.v1.
    health_interval: float = 2.0
    # Seconds allowed to connect to the database, and for one statement.
    db_timeout: float = 5.0
    tracking_address: str = DEFAULT_TRACKING_ADDRESS
    # Seconds ImportRun waits for the tracking service (less when the
    # caller's own deadline is nearer). Under the gateway's 5 s deadline, so
    # that a tracking outage is a 503 rather than a 504.
    tracking_timeout: float = 4.5
    # Seconds in-flight calls may take to finish after SIGTERM.
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    # Bearer tokens every call must carry (API_TOKENS); none: no token asked.
    tokens: Tokens = field(default_factory=Tokens)
    # TLS_CERT_FILE / TLS_KEY_FILE (serve TLS), TLS_CA_FILE (dial TLS).
    tls: TlsSettings = field(default_factory=TlsSettings)
    # Where Prometheus metrics are served (host:port); unset: not served.
    metrics_address: str | None = None
    page_token_key: str = DEFAULT_PAGE_TOKEN_KEY

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            address=parse_address(
                "EXPERIMENTS_ADDR", env.get("EXPERIMENTS_ADDR") or DEFAULT_ADDRESS
            ),
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            auto_migrate=env_bool(env, "AUTO_MIGRATE", True),
            health_interval=env_float(env, "HEALTH_CHECK_INTERVAL", 2.0, minimum=0.05),
            db_timeout=env_float(env, "DB_TIMEOUT", 5.0, minimum=0.1),
            tracking_address=parse_address(
                "TRACKING_ADDR", env.get("TRACKING_ADDR") or DEFAULT_TRACKING_ADDRESS
            ),
            tracking_timeout=env_float(env, "TRACKING_TIMEOUT", 4.5, minimum=0.1),
            shutdown_grace=env_float(env, "SHUTDOWN_GRACE", 10.0),
            log_level=env_log_level(env),
            tokens=Tokens.from_env(env),
            tls=TlsSettings.from_env(env),
            metrics_address=optional_address(env, "METRICS_ADDR"),
            page_token_key=env.get("PAGE_TOKEN_KEY") or DEFAULT_PAGE_TOKEN_KEY,
        )
