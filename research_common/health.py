"""Keeps `grpc.health.v1` truthful: a probe of the service's store runs every
few seconds, and a failing call can report an outage at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from grpc_health.v1 import health_pb2

log = logging.getLogger("research.health")

Probe = Callable[[], Awaitable[None]]


class HealthReporter:
    """Sets SERVING / NOT_SERVING for the overall server ("") and every
    service name, and runs the periodic probe of the store behind them."""

    def __init__(
        self,
        servicer: Any,  # grpc_health.v1.health.aio.HealthServicer (untyped)
        service_names: Sequence[str],
        probe: Probe,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.servicer = servicer
        self._names = ("", *service_names)
        self._probe = probe
        self._interval = interval
        self._timeout = timeout
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def serving(self) -> bool:
        return bool(self._serving)

    async def set_serving(self, serving: bool, reason: str = "") -> None:
        if serving == self._serving:
            return
        if self._serving is not None:
            if serving:
                log.warning("store reachable again: SERVING")
            else:
                log.warning("store unreachable: NOT_SERVING (%s)", reason)
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._names:
            await self.servicer.set(name, status)

    def report_outage(self, reason: str) -> None:
        """Called from a failing call: NOT_SERVING now, not at the next probe."""
        if self._serving:
            self._serving = None  # force set_serving to publish
            task = asyncio.get_running_loop().create_task(self.set_serving(False, reason))
            self._pending.add(task)  # keep a reference until it has run
            task.add_done_callback(self._pending.discard)

    async def check_once(self) -> bool:
        try:
            await asyncio.wait_for(self._probe(), self._timeout)
        except Exception as exc:
            await self.set_serving(False, f"{type(exc).__name__}: {exc}")
            return False
        await self.set_serving(True)
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.check_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        """NOT_SERVING for good, and the probe loop ended. The loop is asked
        to finish rather than cancelled: cancelling a probe halfway through
        a connect can leave the pool's connection half-open, and closing the
        pool then waits for it forever (seen with aiosqlite)."""
        await self.servicer.enter_graceful_shutdown()
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
