"""A free loopback port, for the servers that tests and benchmarks start on
a port of their own (in another process, so the port is picked here and
bound there).

The port comes from below the kernel's ephemeral range: a port the kernel
hands out for port 0 is also one it may hand to the next outgoing
connection (any client's), which then holds it when the server comes to
bind it ("Address already in use"; seen in CI). Below that range only a
server binding it on purpose can take it, and ports handed out by this
process are not handed out twice.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000
_given: set[int] = set()
# Not the module's generator, which hypothesis seeds the same in every test
# process.
_random = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    highest = _ephemeral_start() - 1
    if highest > _LOWEST:
        candidates = list(range(_LOWEST, highest + 1))
        _random.shuffle(candidates)
        for port in candidates[:200]:
            if port not in _given and _bindable(port):
                _given.add(port)
                return port
    # No room below the ephemeral range: let the kernel pick.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
