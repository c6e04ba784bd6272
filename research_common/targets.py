"""Where a client dials a gRPC service (CONTRACT §13): EXPERIMENTS_ADDR and
TRACKING_ADDR as the gateway (and experiments_svc for ImportRun) read them.

A target is one of

    host:port                     one address (a name is resolved by gRPC's DNS resolver)
    dns:///name:port              every address the name resolves to, re-resolved
                                  when a connection drops (a headless Service)
    dns://server/name:port        the same, asking that DNS server
    ipv4:a:p,b:p / ipv6:[a]:p,... gRPC's own address lists
    a:p,b:p,...                   a list of IP addresses (`localhost` counts as 127.0.0.1)

and the channel spreads calls over every address it yields (round_robin).
A list of names is refused rather than resolved once at start-up: a
replica that moves would never be seen again, and `dns:///` is what follows
names.

`channel_options` adds the gRPC service config: round_robin, and a retry of
UNAVAILABLE for the methods that change nothing (the declaration the
read-only tokens use, research_common.auth.read_only_methods), so that a
replica that goes away costs those calls a retry on another replica instead
of a failure. gRPC retries only within the call's deadline. Writes are not
retried: a write that may have reached a dying replica is the caller's to
retry, with CreateExperiment's request_id (§9) where it matters.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from research_common.auth import read_only_methods
from research_common.config import ConfigError, parse_address

# Schemes of gRPC's built-in resolvers that a deployment may name.
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")
# Attempts per call (the first included) and their backoff: enough to step
# past a replica or two that went away, small beside a 5 s deadline.
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_HEALTH_CHECK = {"service": "grpc.health.v1.Health", "method": "Check"}


def parse_target(name: str, raw: str) -> str:
    """The gRPC target `raw` names (see the module's docstring), checked;
    ConfigError names the variable."""
    value = raw.strip()
    if value.startswith(_SCHEMES):
        return _check_scheme(name, value)
    entries = [entry.strip() for entry in value.split(",")]
    if not any(entries):
        raise ConfigError(f"{name} names no address, got {raw!r}")
    if not all(entries):
        raise ConfigError(f"{name} has an empty entry in its list, got {raw!r}")
    for entry in entries:
        parse_address(name, entry)
    if len(entries) == 1:
        return entries[0]
    return _address_list(name, entries)


def _check_scheme(name: str, value: str) -> str:
    scheme, _, rest = value.partition(":")
    if scheme == "dns":
        # dns:[//authority/]host[:port]
        if rest.startswith("//"):
            _authority, slash, rest = rest[2:].partition("/")
            if not slash:
                raise ConfigError(f"{name} must be dns:///host:port, got {value!r}")
        if not rest:
            raise ConfigError(f"{name} names no host after dns:, got {value!r}")
        parse_address(name, rest)
    elif scheme in ("ipv4", "ipv6"):
        for entry in rest.split(","):
            _ip_address(name, entry.strip(), value)
    elif not rest:
        raise ConfigError(f"{name} names no socket after {scheme}:, got {value!r}")
    return value


def _address_list(name: str, entries: list[str]) -> str:
    """`a:p,b:p` as gRPC's ipv4: or ipv6: target."""
    versions = {_ip_address(name, entry, ",".join(entries)) for entry in entries}
    if len(versions) > 1:
        raise ConfigError(f"{name} mixes IPv4 and IPv6 addresses; list one family")
    version = versions.pop()
    listed = [entry.replace("localhost:", "127.0.0.1:", 1) for entry in entries]
    return f"ipv{version}:" + ",".join(listed)


def _ip_address(name: str, entry: str, whole: str) -> int:
    """The IP version of `entry` (host:port); ConfigError when its host is
    not an IP address."""
    host, _, _ = parse_address(name, entry).rpartition(":")
    if host == "localhost":
        return 4
    try:
        return ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        raise ConfigError(
            f"{name}: a list takes IP addresses, and {host!r} is a name; "
            f"use dns:///{entry} to reach every address a name resolves to (got {whole!r})"
        ) from None


def service_config(service_names: Iterable[str]) -> dict[str, Any]:
    """The gRPC service config of a channel to `service_names`: round_robin
    over every address, and RETRY_POLICY for the methods that change
    nothing (and the health check)."""
    names = [_HEALTH_CHECK]
    for path in sorted(read_only_methods(service_names)):
        service, method = path.lstrip("/").split("/")
        names.append({"service": service, "method": method})
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}],
    }


def channel_options(service_names: Iterable[str]) -> list[tuple[str, Any]]:
    """Channel options that apply `service_config`. The config is the
    channel's own: a DNS TXT record cannot replace it."""
    return [
        ("grpc.service_config", json.dumps(service_config(service_names))),
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1),
    ]
