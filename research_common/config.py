"""Parsers for settings read from the environment. Each takes the variable's
name and its (non-empty) text, and returns the value or raises `ConfigError`
with a one-line message naming the variable. `research_common.settings`
applies them; an unset or empty variable never reaches them (it means the
setting's default)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

T = TypeVar("T")
N = TypeVar("N", int, float)
# (variable name, its text) -> the setting's value.
Parser = Callable[[str, str], T]


class ConfigError(ValueError):
    """A setting is malformed; the process refuses to start."""


def text(name: str, value: str) -> str:
    """Taken as given."""
    return value


def parse_address(name: str, value: str) -> str:
    """`host:port` (or `[v6]:port`) with a port from 0 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name} must be host:port, got {value!r}")
    if host.startswith("[") != host.endswith("]"):
        raise ConfigError(f"{name} has an unbalanced IPv6 bracket: {value!r}")
    if any(char in host for char in ", /\t"):
        # rpartition would take "a:1,b:2" for host "a:1,b" and port 2.
        raise ConfigError(f"{name} must be one host:port, got {value!r}")
    return value


def number(minimum: float = 0) -> Parser[float]:
    """A number of at least `minimum` (NaN is refused)."""
    return _at_least(float, "a number", minimum)


def whole_number(minimum: int = 0) -> Parser[int]:
    """An integer of at least `minimum`."""
    return _at_least(int, "a whole number", minimum)


def _at_least(convert: Callable[[str], N], kind: str, minimum: N) -> Parser[N]:
    def parse(name: str, raw: str) -> N:
        try:
            value = convert(raw)
        except ValueError:
            raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
        if not value >= minimum:  # also rejects NaN
            raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
        return value

    return parse


def boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def log_level(name: str, raw: str) -> str:
    """A level name of the logging module, upper-cased."""
    level = raw.strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


# How log lines are written: "json" for machines, "text" for people, "auto"
# (LOG_FORMAT empty or unset) for text when stderr is a terminal, else JSON.
LogFormat = Literal["auto", "json", "text"]


def log_format(name: str, raw: str) -> LogFormat:
    """`json` or `text` (any case); blank means "auto"."""
    lowered = raw.strip().lower()
    if lowered == "json":
        return "json"
    if lowered == "text":
        return "text"
    if lowered == "":
        return "auto"
    raise ConfigError(f"{name} must be json, text or empty (text on a terminal), got {raw!r}")


def env_log_format(env: Mapping[str, str], name: str = "LOG_FORMAT") -> LogFormat:
    """LOG_FORMAT as `log_format` reads it; unset or empty means "auto"."""
    raw = env.get(name)
    return log_format(name, raw) if raw else "auto"
