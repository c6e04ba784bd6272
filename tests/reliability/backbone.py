"""The three processes of the backbone, each started as `python -m ...` on an
address fixed before it starts, so that a test can kill or stop one and
start it again where the others (and the gateway) expect it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from testbed.ports import free_port
from tests.processes import ServiceProcess, start

SERVING = health_pb2.HealthCheckResponse.SERVING
MODULES = ("experiments_svc", "tracking_svc", "gateway")
ADDRESS_VARIABLE = {
    "experiments_svc": "EXPERIMENTS_ADDR",
    "tracking_svc": "TRACKING_ADDR",
    "gateway": "GATEWAY_ADDR",
}
# Short probe intervals so that recovery is seen within a fraction of a second.
COMMON_ENV = {"HEALTH_CHECK_INTERVAL": "0.2", "SHUTDOWN_GRACE": "5", "LOG_LEVEL": "INFO"}


@dataclass
class Backbone:
    """Addresses of all three, the environment each is started with, and the
    running processes by module name."""

    workdir: Path
    database_url: str
    mlflow_uri: str
    experiment_name: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for module in MODULES:
            self.ports[module] = free_port()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def address(self, module: str) -> str:
        return f"127.0.0.1:{self.ports[module]}"

    def env(self) -> dict[str, str]:
        return {
            **COMMON_ENV,
            **{ADDRESS_VARIABLE[module]: self.address(module) for module in MODULES},
            "DATABASE_URL": self.database_url,
            "DB_TIMEOUT": "2",
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLFLOW_EXPERIMENT_NAME": self.experiment_name,
            "MLFLOW_TIMEOUT": "2",
            **self.extra_env,
        }

    async def start(self, module: str) -> ServiceProcess:
        """Start `module` and wait until it listens."""
        process = await start(module, self.env(), self.workdir)
        self.processes[module] = process
        port = await process.listening_port()
        assert port == self.ports[module]
        return process

    async def _start_all(self) -> None:
        # The services first: the gateway's /readyz asks them.
        await asyncio.gather(self.start("experiments_svc"), self.start("tracking_svc"))
        await self.start("gateway")
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as http:
            await wait_until_ready(http, within=20)

    async def kill(self, module: str) -> None:
        await self.processes[module].kill()

    async def _stop_all(self) -> None:
        for process in self.processes.values():
            await process.kill()

    async def __aenter__(self) -> Backbone:
        """All three started and the gateway ready; whatever did start is
        stopped again if one of them fails to."""
        try:
            await self._start_all()
        except BaseException:
            await self._stop_all()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop_all()


async def health(address: str, within: float = 1.0) -> int:
    """The overall grpc.health.v1 status of the server at `address`, or -1
    when it does not answer."""
    async with aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=within)
        except aio.AioRpcError:
            return -1
        return int(response.status)


async def wait_for_serving(address: str, within: float) -> float:
    """Seconds until the server at `address` reports SERVING."""
    began = time.monotonic()
    async with asyncio.timeout(within):
        while await health(address) != SERVING:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.05)
    return time.monotonic() - began


async def wait_until_ready(http: httpx.AsyncClient, within: float) -> float:
    """Seconds until the gateway's /readyz answers 200."""
    began = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
