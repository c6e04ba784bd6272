"""Running a service as its own process (`python -m ...`), the way the README
and the deployment start it, and reading its JSON log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any


class ServiceProcess:
    """A started `python -m <module>`; its log lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._new_line = asyncio.Event()

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            with contextlib.suppress(json.JSONDecodeError):
                self.lines.append(json.loads(text))
            self._new_line.set()

    async def wait_for_log(self, fragment: str, within: float = 20) -> dict[str, Any]:
        """The first log line whose message contains `fragment`."""
        async with asyncio.timeout(within):
            while True:
                for line in self.lines:
                    if fragment in str(line.get("msg", "")):
                        return line
                if self.process.returncode is not None and self._reader.done():
                    raise AssertionError(f"exited {self.process.returncode}: {self.raw}")
                self._new_line.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_line.wait(), 0.2)

    async def listening_port(self) -> int:
        return int((await self.wait_for_log("listening on"))["port"])

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, within: float = 20) -> int:
        async with asyncio.timeout(within):
            code = await self.process.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self._reader


async def start(module: str, env: Mapping[str, str], cwd: Path) -> ServiceProcess:
    """`python -m module` with `env` over a clean environment."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=cwd,
        env={**base, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return ServiceProcess(process)


@contextlib.asynccontextmanager
async def running(module: str, env: Mapping[str, str], cwd: Path) -> AsyncIterator[ServiceProcess]:
    """A started service, killed on the way out if the test left it running."""
    service = await start(module, env, cwd)
    try:
        yield service
    finally:
        await service.kill()


async def run_to_exit(module: str, env: Mapping[str, str], cwd: Path) -> tuple[int, str]:
    """Run until it exits by itself; the exit code and stderr."""
    async with running(module, env, cwd) as service:
        code = await service.wait(within=30)
    return code, "".join(line + "\n" for line in service.raw)
