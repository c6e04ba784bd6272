"""Optional TLS for gRPC: a service serves TLS when it has a certificate and
key; a client (the gateway's upstream channels, experiments_svc's channel to
tracking_svc) verifies the server against a CA bundle when it has one.

    TLS_CERT_FILE / TLS_KEY_FILE   the server's certificate chain and key (PEM)
    TLS_CA_FILE                    CA bundle a client trusts for its upstreams
    TLS_SERVER_NAME                name to verify instead of the dialled host

Files are read once, at start-up; a missing or unreadable file stops the
process with a one-line message naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from research_common.config import ConfigError


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TlsSettings:
        cert = _read(env, "TLS_CERT_FILE")
        key = _read(env, "TLS_KEY_FILE")
        if (cert is None) != (key is None):
            raise ConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        return cls(cert, key, _read(env, "TLS_CA_FILE"), env.get("TLS_SERVER_NAME") or None)

    @property
    def serves_tls(self) -> bool:
        return self.cert is not None

    @property
    def dials_tls(self) -> bool:
        return self.ca is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.cert is None or self.key is None:
            return None
        return grpc.ssl_server_credentials([(self.key, self.cert)])

    def channel(self, address: str, options: Sequence[tuple[str, Any]] = ()) -> aio.Channel:
        """A channel to `address`: TLS verified against the CA when one is
        configured, plaintext otherwise."""
        if self.ca is None:
            return aio.insecure_channel(address, options=options)
        extra = list(options)
        if self.server_name:
            extra.append(("grpc.ssl_target_name_override", self.server_name))
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca)
        return aio.secure_channel(address, credentials, options=extra)


def _read(env: Mapping[str, str], name: str) -> bytes | None:
    path = env.get(name)
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{name}: cannot read {path!r}: {error.strerror}") from None
