"""research_common.settings: a field names its variable and parser, and
`from_env` leaves what is unset or empty to the field's default."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from research_common.auth import Tokens
from research_common.config import ConfigError, number, parse_address
from research_common.settings import ProcessSettings, ServiceSettings, read_env, variable


@dataclass(frozen=True, slots=True)
class Example(ServiceSettings):
    address: str = field(default="127.0.0.1:1", metadata=variable("EXAMPLE_ADDR", parse_address))
    ratio: float = field(default=0.5, metadata=variable("EXAMPLE_RATIO", number(minimum=0.1)))
    label: str = field(default="none", metadata=variable("EXAMPLE_LABEL"))
    # No metadata: not read from the environment at all.
    derived: int = 7


def test_unset_and_empty_mean_the_fields_default() -> None:
    assert Example.from_env({}) == Example()
    assert Example.from_env({"EXAMPLE_RATIO": "", "EXAMPLE_LABEL": ""}) == Example()
    # Only what the environment sets is passed on.
    assert read_env(Example, {"EXAMPLE_RATIO": "2", "UNRELATED": "x"}) == {
        "ratio": 2.0,
        "tokens": Tokens(),
        "tls": Example().tls,
    }


def test_each_variable_is_parsed_with_its_name() -> None:
    # Variable -> (its text, the setting, the value read).
    cases = {
        "EXAMPLE_ADDR": ("[::1]:80", "address", "[::1]:80"),
        "EXAMPLE_RATIO": ("0.25", "ratio", 0.25),
        "EXAMPLE_LABEL": (" as given ", "label", " as given "),
        "HEALTH_CHECK_INTERVAL": ("1", "health_interval", 1.0),
        "METRICS_ADDR": ("0.0.0.0:9100", "metrics_address", "0.0.0.0:9100"),
        "SHUTDOWN_GRACE": ("2", "shutdown_grace", 2.0),
        "LOG_LEVEL": ("error", "log_level", "ERROR"),
        "LOG_FORMAT": ("JSON", "log_format", "json"),
        "API_TOKENS": ("t1,t2", "tokens", Tokens(("t1", "t2"))),
    }
    settings = Example.from_env({name: raw for name, (raw, _, _) in cases.items()})
    for setting, value in (case[1:] for case in cases.values()):
        assert getattr(settings, setting) == value, setting
    assert settings.derived == 7
    with pytest.raises(ConfigError, match=r"^EXAMPLE_RATIO must be at least 0\.1, got '0'$"):
        Example.from_env({"EXAMPLE_RATIO": "0"})


def test_the_shared_defaults() -> None:
    settings = Example()
    assert (settings.shutdown_grace, settings.log_level, settings.log_format) == (
        10.0,
        "INFO",
        "auto",
    )
    assert (settings.health_interval, settings.metrics_address) == (2.0, None)
    assert not settings.tokens.required
    assert not settings.tls.serves_tls


def test_a_process_must_declare_its_address() -> None:
    @dataclass(frozen=True, slots=True)
    class Forgetful(ProcessSettings):
        pass

    # The base reads no variable for `address` and has no default for it.
    with pytest.raises(TypeError, match="address"):
        Forgetful.from_env({"ADDRESS": "127.0.0.1:1"})
