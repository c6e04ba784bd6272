"""The CPU time one side of a comparison spends over a measured window,
from the side's own counters:

- its processes: each one the harness started and every process below it
  (uvicorn's supervisor and its workers, say), all threads, from
  /proc/<pid>/stat (`bench.processes.cpu_seconds`);
- the PostgreSQL backends serving it: those whose client port
  (pg_stat_activity.client_port) is the local port of a TCP connection
  that one of the side's processes holds to the database's port (the
  process's sockets from /proc/<pid>/fd, their ports from
  /proc/<pid>/net/tcp and tcp6), each from /proc/<backend>/schedstat.
  PostgreSQL must be reached over TCP: a Unix socket has no client port,
  and then no backend is attributed.

A pool may open connections during the window and close them again
(SQLAlchemy closes its overflow beyond pool_size as the load falls), so the
backends are read while the load runs, every few hundredths of a second,
and each is counted up to its last reading: what a backend spends after its
last reading, before it ends, is lost, and a backend that starts and ends
between two readings is never seen. `Tally.ended` counts the backends that
ended inside the window, to show how much that could be."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import asyncpg

from bench.processes import cpu_seconds, single_thread_cpu_seconds

PROC = Path("/proc")


class Tally:
    """CPU seconds used by a set of processes that may change, from
    readings of their counters (pid -> seconds so far) taken over a window.
    A process in the first reading counts from its value there; one that
    appears later started inside the window and counts from zero; one that
    disappears counts up to its last reading. A counter that goes down is a
    new process under a reused pid."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._banked = 0.0  # what processes gone under a reused pid used
        self._current: set[int] = set()
        self._read = False

    def read(self, readings: Mapping[int, float]) -> None:
        for pid, seconds in readings.items():
            if pid not in self._last:
                self._first[pid] = seconds if not self._read else 0.0
            elif seconds < self._last[pid]:
                self._banked += self._last[pid] - self._first[pid]
                self._first[pid] = 0.0
            self._last[pid] = seconds
        self._current = set(readings)
        self._read = True

    @property
    def seconds(self) -> float:
        return self._banked + sum(self._last[pid] - self._first[pid] for pid in self._last)

    @property
    def seen(self) -> int:
        """Processes read at least once."""
        return len(self._last)

    @property
    def ended(self) -> int:
        """Processes read before that were missing from the last reading."""
        return len(set(self._last) - self._current)


def per_request_ms(seconds: float, answered: int) -> float:
    """Milliseconds of CPU per answered request."""
    if answered <= 0:
        raise ValueError("no request was answered")
    return seconds * 1000 / answered


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """`root` and every process below it, from each process's parent
    (pid -> ppid)."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found = {root}
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def parent_pids() -> dict[int, int]:
    """pid -> ppid of every process now running."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # ended since
            stat = (entry / "stat").read_text()
            found[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return found


def process_cpu(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds so far of each process still running."""
    readings = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            readings[pid] = cpu_seconds(pid)
    return readings


def backend_cpu(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend still running."""
    readings = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            readings[pid] = single_thread_cpu_seconds(pid)
    return readings


def tcp_connections(table: str) -> list[tuple[int, int, int]]:
    """(local port, remote port, socket inode) of every row of a
    /proc/net/tcp or /proc/net/tcp6 table (addresses are hex IP:port)."""
    rows = []
    for line in table.splitlines()[1:]:  # the first line names the columns
        fields = line.split()
        if len(fields) < 10:
            continue
        local, remote = fields[1].rpartition(":")[2], fields[2].rpartition(":")[2]
        rows.append((int(local, 16), int(remote, 16), int(fields[9])))
    return rows


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    inodes = set()
    for descriptor in (PROC / str(pid) / "fd").iterdir():
        with contextlib.suppress(OSError):  # closed since
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def client_ports(pids: Iterable[int], server_port: int) -> set[int]:
    """The local ports of the TCP connections the processes `pids` hold to
    `server_port` (on any address)."""
    inodes: set[int] = set()
    tables: list[str] = []
    for pid in pids:
        with contextlib.suppress(OSError):  # ended since
            inodes |= socket_inodes(pid)
            if not tables:  # one network namespace: any process's tables
                for name in ("tcp", "tcp6"):
                    with contextlib.suppress(FileNotFoundError):
                        tables.append((PROC / str(pid) / "net" / name).read_text())
    return {
        local
        for table in tables
        for local, remote, inode in tcp_connections(table)
        if remote == server_port and inode in inodes
    }


class Backends:
    """The PostgreSQL backends serving the connections of processes `pids`
    to the database of `probe` (on `port`), from its pg_stat_activity. A
    backend is placed (the processes' or not) once, when first seen: the
    processes' sockets are read only when a backend is new."""

    def __init__(self, probe: asyncpg.Connection, pids: Iterable[int], port: int) -> None:
        self._probe = probe
        self._pids = set(pids)
        self._port = port
        self._placed: dict[tuple[int, int], bool] = {}  # (backend pid, client port) -> ours

    async def cpu(self) -> dict[int, float]:
        """CPU seconds so far of each of the processes' backends."""
        rows = await self._probe.fetch(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND client_port > 0"
        )
        keys = [(int(row["pid"]), int(row["client_port"])) for row in rows]
        if any(key not in self._placed for key in keys):
            ours = client_ports(self._pids, self._port)
            for key in keys:
                self._placed.setdefault(key, key[1] in ours)
        return backend_cpu(pid for pid, port in keys if self._placed[(pid, port)])
