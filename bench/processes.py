"""The processes a scenario starts: `python -m <module>` with its own
environment and log file (and working directory, for the code of another
commit), waited on until it is ready, measured (start-up time, resident
memory, CPU time) and stopped again.

Log lines go to a file, never to a pipe: a pipe nobody drains fast enough
would slow the process down under load and bias the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

READY_WITHIN = 60.0  # seconds
STOP_WITHIN = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of /proc/<pid>/stat's times

# The parent's MLflow settings must not leak into a service under test.
_DROPPED = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "DATABASE_URL", "API_TOKENS")


class BenchProcess:
    def __init__(
        self, name: str, process: asyncio.subprocess.Process, log: Path, spawned: float
    ) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.spawned = spawned  # time.perf_counter() at spawn
        self.ready_after: float | None = None  # seconds from spawn to ready

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident set size now, in MiB, from /proc."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"{self.name}: no VmRSS in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far, all threads', in seconds."""
        return cpu_seconds(self.pid)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        """Bytes in the log so far: where the next records will start."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_records(self, since: int = 0) -> list[dict[str, Any]]:
        """The JSON records the process logged from byte `since` on; a
        line still being written, or not JSON, is left out."""
        try:
            with self.log.open("rb") as log:
                log.seek(since)
                text = log.read()
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def _failed(self, why: str) -> RuntimeError:
        tail = "\n".join(self.log_text().splitlines()[-20:])
        return RuntimeError(f"{self.name} {why}; last log lines:\n{tail}")

    async def wait_grpc(self, address: str, within: float = READY_WITHIN) -> None:
        """Until grpc.health.v1 reports SERVING; records `ready_after`."""
        request = health_pb2.HealthCheckRequest(service="")
        async with aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            deadline = time.perf_counter() + within
            while self.process.returncode is None and time.perf_counter() < deadline:
                with contextlib.suppress(aio.AioRpcError):
                    reply = await stub.Check(request, timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        self.ready_after = time.perf_counter() - self.spawned
                        return
                await asyncio.sleep(0.02)
        raise self._failed("did not report SERVING")

    async def wait_http(self, url: str, within: float = READY_WITHIN) -> None:
        """Until GET `url` answers 200; records `ready_after`."""
        deadline = time.perf_counter() + within
        while self.process.returncode is None and time.perf_counter() < deadline:
            if await asyncio.to_thread(_answers_200, url):
                self.ready_after = time.perf_counter() - self.spawned
                return
            await asyncio.sleep(0.02)
        raise self._failed(f"did not answer 200 on {url}")

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_WITHIN)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time process `pid` has used so far, in seconds, counting every
    thread it runs or ran (gRPC's and a thread pool's as well as the main
    one): user plus system time from /proc/<pid>/stat, which the kernel
    counts in clock ticks (10 ms). Readable for any user's process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name, in parentheses, may hold spaces: count after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def single_thread_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process that runs one thread, such as a
    PostgreSQL backend, in nanosecond precision: the scheduler's count
    of /proc/<pid>/schedstat, which is the main thread's alone (so wrong
    for a process with threads); cpu_seconds where there is none."""
    with contextlib.suppress(FileNotFoundError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    return cpu_seconds(pid)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


async def spawn(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    cwd: Path | None = None,
) -> BenchProcess:
    """`python <args>` (e.g. ["-m", "gateway"]) with `env` over ours, in
    `cwd` (ours when None)."""
    base = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        spawned = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env={**base, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=cwd,
            start_new_session=True,
        )
    return BenchProcess(name, process, log, spawned)


@contextlib.asynccontextmanager
async def stopping(processes: list[BenchProcess]) -> AsyncIterator[list[BenchProcess]]:
    """Every process in the list (which may grow inside) stopped on exit,
    last started first."""
    try:
        yield processes
    finally:
        for process in reversed(processes):
            await process.stop()
