"""The main job (`make run`): every process of the backbone on its embedded
defaults, started together, reported once each is ready, and stopped
together on Ctrl-C or SIGTERM.

Each process is the same `python -m <package>` a deployment runs; this only
starts them, waits until each is ready (`grpc.health.v1` SERVING for the
services, `/readyz` for the gateway), prints where they listen, and passes a
stop signal on. If one exits on its own, the others are stopped and the job
exits non-zero.

`--demo` (`make demo`) also loads demo data once everything is ready: MLflow
runs for two strategies and the experiments imported from them (see
`scripts/demo_data.py`), so that the README's curl examples return data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

READY_WITHIN = 60.0  # seconds; MLflow's first start migrates its store
STOP_WITHIN = 20.0


@dataclass(frozen=True)
class Component:
    module: str
    address_variable: str
    default_address: str
    scheme: str = "grpc"  # "http" for the gateway

    @property
    def address(self) -> str:
        return os.environ.get(self.address_variable) or self.default_address


COMPONENTS = (
    Component("experiments_svc", "EXPERIMENTS_ADDR", "127.0.0.1:50051"),
    Component("tracking_svc", "TRACKING_ADDR", "127.0.0.1:50052"),
    Component("gateway", "GATEWAY_ADDR", "127.0.0.1:8080", scheme="http"),
)


def _in_use(component: Component) -> str | None:
    """Why `component` cannot listen where it is told to, or None. Checked
    before anything starts: with another server already on the port, the
    readiness probes would be answered by that server instead."""
    host, _, port = component.address.rpartition(":")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]"), int(port)))
            return None
    except ValueError:
        return f"{component.address_variable}={component.address} is not host:port"
    except OSError as error:
        return (
            f"{component.address} ({component.address_variable}) is not free: "
            f"{error.strerror}; stop what listens there or set {component.address_variable}"
        )


async def _wait_ready(component: Component, process: asyncio.subprocess.Process) -> None:
    if component.scheme == "http":
        await _wait_http_ready(component.address, process)
    else:
        await _wait_serving(component.address, process)


def _http_ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


async def _wait_http_ready(address: str, process: asyncio.subprocess.Process) -> None:
    while process.returncode is None:
        if await asyncio.to_thread(_http_ready, address):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"exited with code {process.returncode} before it was ready")


async def _wait_serving(address: str, process: asyncio.subprocess.Process) -> None:
    request = health_pb2.HealthCheckRequest(service="")
    async with aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while process.returncode is None:
            try:
                response = await stub.Check(request, timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"exited with code {process.returncode} before it was ready")


async def _stop(processes: list[asyncio.subprocess.Process]) -> int:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    worst = 0
    for process in processes:
        try:
            code = await asyncio.wait_for(process.wait(), STOP_WITHIN)
        except TimeoutError:
            process.kill()
            code = await process.wait()
        worst = worst or code
    return worst


async def _load_demo() -> None:
    # Imported here: it imports mlflow, which only --demo needs.
    from demo_data import load_demo_from_env

    await asyncio.to_thread(load_demo_from_env)


async def run(demo: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    taken = [reason for reason in map(_in_use, COMPONENTS) if reason]
    if taken:
        for reason in taken:
            print(f"run: {reason}", file=sys.stderr)
        return 2

    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", component.module, start_new_session=True
        )
        for component in COMPONENTS
    ]
    try:
        async with asyncio.timeout(READY_WITHIN):
            await asyncio.gather(
                *(
                    _wait_ready(component, process)
                    for component, process in zip(COMPONENTS, processes, strict=True)
                )
            )
    except (TimeoutError, RuntimeError) as error:
        print(f"run: a process did not become ready: {error}", file=sys.stderr)
        await _stop(processes)
        return 1

    if demo:
        try:
            await _load_demo()
        except Exception as error:  # the job still serves; say what failed
            failure = f"{type(error).__name__}: {error}"
            print(f"run: loading demo data failed: {failure}", file=sys.stderr)

    print("\nready:", file=sys.stderr)
    for component in COMPONENTS:
        url = f"{component.scheme}://{component.address}"
        print(f"  {component.module:16} {url}", file=sys.stderr)
    gateway = COMPONENTS[-1].address
    print(f"  try: curl http://{gateway}/api/v1/experiments", file=sys.stderr)
    print("Ctrl-C stops everything.\n", file=sys.stderr)

    exited = [asyncio.ensure_future(process.wait()) for process in processes]
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopping, *exited], return_when=asyncio.FIRST_COMPLETED)
    early = not stop.is_set()
    if early:
        print("run: a process exited on its own; stopping the others", file=sys.stderr)
    code = await _stop(processes)
    stopping.cancel()
    return 1 if early else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_all", description=__doc__)
    parser.add_argument("--demo", action="store_true", help="load demo data once ready")
    args = parser.parse_args(argv)
    return asyncio.run(run(demo=args.demo))


if __name__ == "__main__":
    sys.exit(main())
