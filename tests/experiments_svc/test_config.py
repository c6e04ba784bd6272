"""`Settings.from_env` of the experiments service: the defaults, every
variable, and one-line refusals of bad values."""

from __future__ import annotations

import pytest
from sqlalchemy.pool import QueuePool

from experiments_svc.config import Settings
from experiments_svc.db import engine_for
from research_common.auth import Tokens
from research_common.config import ConfigError

NAMES = (
    "EXPERIMENTS_ADDR",
    "DATABASE_URL",
    "AUTO_MIGRATE",
    "HEALTH_CHECK_INTERVAL",
    "DB_TIMEOUT",
    "DB_POOL_SIZE",
    "TRACKING_ADDR",
    "TRACKING_TIMEOUT",
    "SHUTDOWN_GRACE",
    "LOG_LEVEL",
    "API_TOKENS",
    "METRICS_ADDR",
    "PAGE_TOKEN_KEY",
)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.address, settings.tracking_address) == ("127.0.0.1:50051", "127.0.0.1:50052")
    assert settings.database_url == "sqlite:///.data/experiments.db"
    assert settings.auto_migrate is True
    assert (settings.health_interval, settings.db_timeout) == (2.0, 5.0)
    assert settings.db_pool_size == 20
    assert (settings.tracking_timeout, settings.shutdown_grace) == (4.5, 10.0)
    assert settings.log_level == "INFO"
    assert settings.tokens == Tokens()
    assert settings.metrics_address is None
    assert settings.page_token_key == "research page tokens"


def test_empty_values_mean_the_default() -> None:
    assert Settings.from_env(dict.fromkeys(NAMES, "")) == Settings()


def test_every_setting() -> None:
    settings = Settings.from_env(
        {
            "EXPERIMENTS_ADDR": "0.0.0.0:6001",
            "DATABASE_URL": "postgresql+psycopg2://u@db/x",
            "AUTO_MIGRATE": " Off ",
            "HEALTH_CHECK_INTERVAL": "0.5",
            "DB_TIMEOUT": "1.5",
            "DB_POOL_SIZE": "4",
            "TRACKING_ADDR": "tracking:7000",
            "TRACKING_TIMEOUT": "3",
            "SHUTDOWN_GRACE": "0",
            "LOG_LEVEL": "warning",
            "API_TOKENS": "a,b",
            "METRICS_ADDR": "[::1]:9100",
            "PAGE_TOKEN_KEY": "k",
        }
    )
    assert settings == Settings(
        address="0.0.0.0:6001",
        database_url="postgresql+psycopg2://u@db/x",
        auto_migrate=False,
        health_interval=0.5,
        db_timeout=1.5,
        db_pool_size=4,
        tracking_address="tracking:7000",
        tracking_timeout=3.0,
        shutdown_grace=0.0,
        log_level="WARNING",
        tokens=Tokens(("a", "b")),
        metrics_address="[::1]:9100",
        page_token_key="k",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXPERIMENTS_ADDR": "nonsense"}, "EXPERIMENTS_ADDR must be host:port, got 'nonsense'"),
        ({"TRACKING_ADDR": "x:y"}, "TRACKING_ADDR must be host:port, got 'x:y'"),
        ({"METRICS_ADDR": "9100"}, "METRICS_ADDR must be host:port, got '9100'"),
        ({"AUTO_MIGRATE": "maybe"}, "AUTO_MIGRATE must be true or false, got 'maybe'"),
        ({"HEALTH_CHECK_INTERVAL": "0.01"}, "HEALTH_CHECK_INTERVAL must be at least 0.05"),
        ({"DB_TIMEOUT": "soon"}, "DB_TIMEOUT must be a number, got 'soon'"),
        ({"DB_TIMEOUT": "0"}, "DB_TIMEOUT must be at least 0.1, got '0'"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE must be at least 1, got '0'"),
        ({"DB_POOL_SIZE": "ten"}, "DB_POOL_SIZE must be a whole number, got 'ten'"),
        ({"TRACKING_TIMEOUT": "nan"}, "TRACKING_TIMEOUT must be at least 0.1, got 'nan'"),
        ({"SHUTDOWN_GRACE": "-1"}, "SHUTDOWN_GRACE must be at least 0, got '-1'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"),
        ({"API_TOKENS": "a b"}, "API_TOKENS: token #1 has characters a bearer token cannot hold"),
        ({"TLS_CERT_FILE": "/nowhere"}, "TLS_CERT_FILE: cannot read '/nowhere'"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_engine_keeps_a_fixed_pool_of_db_pool_size() -> None:
    # No overflow: a connection opened for one call and closed after it is
    # churn (scenario 10); calls beyond the pool wait for one.
    settings = Settings(
        address="127.0.0.1:0", database_url="postgresql://u@127.0.0.1:1/x", db_pool_size=7
    )
    engine = engine_for(settings)
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (7, 0)
    assert pool.timeout() == settings.db_timeout
