"""A real PgBouncer (Debian's `pgbouncer`) on a free loopback port, in
transaction pooling mode in front of a PostgreSQL server, configured by a
file written into a folder of its own: the pooler that CONTRACT §13 lets a
deployment put between experiments_svc and PostgreSQL.

Its pool is small on purpose, so that the service's connections share a few
server connections and a statement that relied on a server connection of its
own meets another client's. Every database name is passed through (`*`) to
the upstream server, logged in as the upstream URL's user; clients are let in
without a password (`auth_type = any`), as the test server lets in everyone
from loopback.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path

from sqlalchemy.engine import make_url

from testbed.child import ChildServer
from testbed.ports import free_port

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# Debian installs it outside a normal user's PATH.
DEFAULT_BINARY = "/usr/sbin/pgbouncer"


class PgBouncerError(RuntimeError):
    """PgBouncer is missing or did not come up; the message says which (and
    ends with its log)."""


def find_binary() -> str | None:
    """The pgbouncer executable: $PGBOUNCER, else on PATH, else Debian's."""
    for candidate in (os.environ.get("PGBOUNCER"), shutil.which("pgbouncer"), DEFAULT_BINARY):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class PgBouncer(ChildServer):
    """`pgbouncer` in the foreground, as a child process. PgBouncer refuses
    to run as root: as root it is started as `postgres` (`-u`), which then
    owns its folder."""

    name = "pgbouncer"
    readiness = "listening"
    error = PgBouncerError

    def __init__(self, directory: Path, upstream: str, *, pool_size: int = 5) -> None:
        binary = find_binary()
        if binary is None:
            raise PgBouncerError(
                f"pgbouncer is not installed ({DEFAULT_BINARY}; apt-get install pgbouncer)"
            )
        super().__init__(directory, free_port(), "pgbouncer.log")
        self.binary = binary
        self.upstream = make_url(upstream)
        self.pool_size = pool_size
        self.config_path = directory / "pgbouncer.ini"

    def url(self, database: str) -> str:
        """A PostgreSQL URL of `database` through the pooler."""
        user = self.upstream.username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def config(self) -> str:
        upstream = self.upstream
        server = f"host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}"
        server += f" user={upstream.username or 'postgres'}"
        if upstream.password:
            server += f" password='{upstream.password}'"
        return "\n".join(
            [
                "[databases]",
                f"* = {server}",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                # No Unix socket: nothing to clash with the system's.
                "unix_socket_dir =",
                "auth_type = any",
                "pool_mode = transaction",
                f"default_pool_size = {self.pool_size}",
                "min_pool_size = 0",
                "reserve_pool_size = 0",
                "max_client_conn = 500",
                # Reads of the pooler's own log, when a test fails, should
                # show what went wrong and not every login.
                "log_connections = 0",
                "log_disconnections = 0",
                "",
            ]
        )

    def command(self) -> list[str]:
        command = [self.binary]
        if os.geteuid() == 0:
            command += ["-u", "postgres"]
        return [*command, str(self.config_path)]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the configuration, start, and wait until the port accepts."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PgBouncerError(
                    "as root, PgBouncer needs a `postgres` user to run as"
                ) from None
            for path in (self.directory, self.config_path):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.launch(timeout)

    def ready(self) -> bool:
        """Whether the port accepts a connection right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False
