"""`Settings.from_env` of the gateway: the defaults, every variable, and
one-line refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Settings
from research_common.auth import Tokens
from research_common.config import ConfigError
from tests.processes import run_to_exit

NAMES = (
    "GATEWAY_ADDR",
    "EXPERIMENTS_ADDR",
    "TRACKING_ADDR",
    "CORS_ORIGINS",
    "GATEWAY_MAX_BODY_BYTES",
    "GATEWAY_TIMEOUT",
    "GATEWAY_MAX_TIMEOUT",
    "READY_TIMEOUT",
    "SHUTDOWN_GRACE",
    "LOG_LEVEL",
    "API_TOKENS",
)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.address == "127.0.0.1:8080"
    assert settings.experiments_address == "127.0.0.1:50051"
    assert settings.tracking_address == "127.0.0.1:50052"
    assert settings.cors_origins == ()
    assert settings.max_body_bytes == 1024 * 1024
    assert (settings.timeout, settings.max_timeout, settings.ready_timeout) == (5.0, 60.0, 1.0)
    assert (settings.shutdown_grace, settings.log_level) == (10.0, "INFO")
    assert settings.tokens == Tokens()
    # The gateway serves its metrics on its own port (GET /metrics).
    assert not hasattr(settings, "metrics_address")


def test_empty_values_mean_the_default() -> None:
    assert Settings.from_env(dict.fromkeys(NAMES, "")) == Settings()


def test_every_setting() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_ADDR": "0.0.0.0:80",
            "EXPERIMENTS_ADDR": "experiments:1",
            "TRACKING_ADDR": "tracking:2",
            "CORS_ORIGINS": " http://a.example:8888/ , * ,",
            "GATEWAY_MAX_BODY_BYTES": "10",
            "GATEWAY_TIMEOUT": "2",
            "GATEWAY_MAX_TIMEOUT": "2",
            "READY_TIMEOUT": "0.5",
            "SHUTDOWN_GRACE": "1",
            "LOG_LEVEL": "debug",
            "API_TOKENS": "t",
        }
    )
    assert settings == Settings(
        address="0.0.0.0:80",
        experiments_address="experiments:1",
        tracking_address="tracking:2",
        cors_origins=("http://a.example:8888", "*"),
        max_body_bytes=10,
        timeout=2.0,
        max_timeout=2.0,
        ready_timeout=0.5,
        shutdown_grace=1.0,
        log_level="DEBUG",
        tokens=Tokens(("t",)),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_ADDR": "nonsense"}, "GATEWAY_ADDR must be host:port, got 'nonsense'"),
        ({"EXPERIMENTS_ADDR": ":1"}, "EXPERIMENTS_ADDR must be host:port, got ':1'"),
        ({"TRACKING_ADDR": "[::1:2"}, "TRACKING_ADDR has an unbalanced IPv6 bracket"),
        ({"EXPERIMENTS_ADDR": " , "}, "EXPERIMENTS_ADDR names no address, got ' , '"),
        ({"TRACKING_ADDR": "dns:///"}, "TRACKING_ADDR names no host after dns:, got 'dns:///'"),
        (
            {"TRACKING_ADDR": "a:1,b:2"},
            "TRACKING_ADDR: a list takes IP addresses, and 'a' is a name",
        ),
        (
            {"CORS_ORIGINS": "http://a/b"},
            "CORS_ORIGINS entries must be '*' or scheme://host[:port], got 'http://a/b'",
        ),
        ({"GATEWAY_MAX_BODY_BYTES": "0"}, "GATEWAY_MAX_BODY_BYTES must be at least 1, got '0'"),
        ({"GATEWAY_MAX_BODY_BYTES": "1e6"}, "GATEWAY_MAX_BODY_BYTES must be a whole number"),
        ({"GATEWAY_TIMEOUT": "0"}, "GATEWAY_TIMEOUT must be at least 0.01, got '0'"),
        ({"GATEWAY_MAX_TIMEOUT": "x"}, "GATEWAY_MAX_TIMEOUT must be a number, got 'x'"),
        (
            {"GATEWAY_TIMEOUT": "10", "GATEWAY_MAX_TIMEOUT": "5"},
            "GATEWAY_MAX_TIMEOUT (5) is below GATEWAY_TIMEOUT (10)",
        ),
        ({"GATEWAY_TIMEOUT": "90"}, "GATEWAY_MAX_TIMEOUT (60) is below GATEWAY_TIMEOUT (90)"),
        ({"READY_TIMEOUT": "inf?"}, "READY_TIMEOUT must be a number, got 'inf?'"),
        ({"SHUTDOWN_GRACE": "later"}, "SHUTDOWN_GRACE must be a number, got 'later'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"),
        ({"TLS_KEY_FILE": "/dev/null"}, "TLS_CERT_FILE and TLS_KEY_FILE must be set together"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EXPERIMENTS_ADDR", ",", "EXPERIMENTS_ADDR names no address, got ','"),
        ("TRACKING_ADDR", "127.0.0.1:1,,127.0.0.1:2", "TRACKING_ADDR has an empty entry"),
        ("TRACKING_ADDR", "dns://10.0.0.1", "TRACKING_ADDR must be dns:///host:port"),
    ],
)
async def test_the_gateway_refuses_a_bad_target_in_one_line(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {"GATEWAY_ADDR": "127.0.0.1:0", variable: value}
    code, stderr = await run_to_exit("gateway", env, tmp_path)
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"gateway: configuration error: {message}"), stderr
