"""Sequential request latency over one keep-alive HTTP/1.1 connection
(http.client, in a worker thread): the figure a single caller sees, with
no load generator in the way."""

from __future__ import annotations

import asyncio
import http.client
import statistics
import time
from urllib.parse import urlsplit


class Timer:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)

    def _once(self, method: str, path: str, body: bytes | None) -> float:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        started = time.perf_counter()
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{method} {path} answered {response.status}")
        return elapsed * 1000

    def _median(self, method: str, path: str, body: bytes | None, count: int) -> float:
        return statistics.median(self._once(method, path, body) for _ in range(count))

    async def median_ms(
        self, method: str, path: str, body: bytes | None = None, count: int = 20
    ) -> float:
        """The median of `count` sequential requests, in milliseconds."""
        return await asyncio.to_thread(self._median, method, path, body, count)

    def close(self) -> None:
        self._connection.close()
