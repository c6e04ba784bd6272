"""The HTTP load generator: `wrk` (Debian's package), a C program whose
event loop is far faster than any server here, driven by a Lua script of
bench/lua/ (by default the one that replays a file of requests) that prints
its figures as JSON.

Both sides of a comparison get the same wrk command line: same threads,
same connections, same duration, same request file."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parent / "lua" / "requests.lua"
# PATCHes a rotating set of experiments, each with a value never sent before.
PATCH_SCRIPT = Path(__file__).parent / "lua" / "patches.lua"
INSTALL_HINT = (
    "wrk is not installed; it is the HTTP load generator of the benchmarks. "
    "Install it with `apt-get install -y wrk` (Debian/Ubuntu) and run again."
)


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query string
    body: str = ""  # JSON text, no tabs or newlines

    def line(self) -> str:
        return (
            "\t".join((self.method, self.path, self.body))
            if self.body
            else (f"{self.method}\t{self.path}")
        )


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # connect + read + write + timeout + non-2xx/3xx statuses
    status_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(INSTALL_HINT)
    return found


def write_requests(requests: Sequence[Request], folder: Path) -> Path:
    handle, name = tempfile.mkstemp(suffix=".tsv", dir=folder)
    path = Path(name)
    with open(handle, "w") as out:
        for request in requests:
            if "\t" in request.body or "\n" in request.body:
                raise ValueError("a request body must be one line without tabs")
            out.write(request.line() + "\n")
    return path


async def run_wrk(
    base_url: str,
    requests_file: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    request_timeout: float = 5.0,
    script: Path = SCRIPT,
    script_args: Sequence[str] = (),
) -> WrkResult:
    """`requests_file` is the script's first argument, `script_args` the
    rest."""
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={request_timeout:g}s",
        "-s",
        str(script),
        base_url,
        "--",
        str(requests_file),
        *script_args,
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 30)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()[-2000:]}")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    errors = figures["errors"]
    latency = figures["latency_us"]
    return WrkResult(
        requests=int(figures["requests"]),
        seconds=figures["duration_us"] / 1e6,
        errors=sum(int(value) for value in errors.values()),
        status_errors=int(errors["status"]),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
