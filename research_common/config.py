"""Parsing helpers for settings read from the environment. Each raises
`ConfigError` with a one-line message naming the variable."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal


class ConfigError(ValueError):
    """A setting is malformed; the process refuses to start."""


def parse_address(name: str, value: str) -> str:
    """`host:port` (or `[v6]:port`) with a port from 0 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name} must be host:port, got {value!r}")
    if host.startswith("[") != host.endswith("]"):
        raise ConfigError(f"{name} has an unbalanced IPv6 bracket: {value!r}")
    return value


def optional_address(env: Mapping[str, str], name: str) -> str | None:
    """`parse_address` of `name`, or None when it is unset or empty."""
    raw = env.get(name)
    return parse_address(name, raw) if raw else None


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also rejects NaN
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_log_level(env: Mapping[str, str], name: str = "LOG_LEVEL") -> str:
    raw = env.get(name) or "INFO"
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
