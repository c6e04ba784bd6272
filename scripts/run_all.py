"""The main job (`make run`): every process of the backbone on its embedded
defaults, started together, reported once each is ready, and stopped
together on Ctrl-C or SIGTERM.

Each process is the same `python -m <package>` a deployment runs; this only
starts them, waits until each is ready, prints where they listen and the
first commands to try, and passes a stop signal on. If one exits on its own,
the others are stopped and the job exits non-zero.

Waiting makes no log lines: the services are asked over `grpc.health.v1`
(which they log at DEBUG), and the gateway is ready once it accepts
connections, since its `/readyz` asks those same two health checks. Polling
`/readyz` itself would add an access-log line per poll to what the person
running the job reads.

On a terminal the processes log readable text lines (LOG_FORMAT=text, unless
LOG_FORMAT is set); otherwise they log JSON lines, as deployed.

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
from dataclasses import dataclass
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

READY_WITHIN = 60.0  # seconds; MLflow's first start migrates its store
STOP_WITHIN = 20.0
POLL_EVERY = 0.2  # seconds between readiness checks of one process


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
        await _wait_listening(component.address, process)
    else:
        await _wait_serving(component.address, process)


async def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        async with asyncio.timeout(2):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError):
        return False
    # Closed before sending anything: the gateway answers and logs nothing.
    writer.close()
    await writer.wait_closed()
    return True


async def _wait_listening(address: str, process: asyncio.subprocess.Process) -> None:
    while process.returncode is None:
        if await _accepts(address):
            return
        await asyncio.sleep(POLL_EVERY)
    raise RuntimeError(f"exited with code {process.returncode} before it was ready")


async def _wait_serving(address: str, process: asyncio.subprocess.Process) -> None:
    request = health_pb2.HealthCheckRequest(service="")
    # The channel's first connections fail while the service starts (MLflow
    # takes seconds to set up its store); with gRPC's default backoff, which
    # grows past 5 s within a few attempts, "ready" came seconds late.
    options = [
        ("grpc.initial_reconnect_backoff_ms", int(POLL_EVERY * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(POLL_EVERY * 1000)),
    ]
    async with aio.insecure_channel(address, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while process.returncode is None:
            try:
                response = await stub.Check(request, timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except aio.AioRpcError:
                pass
            await asyncio.sleep(POLL_EVERY)
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


def _child_environment() -> dict[str, str]:
    """The job's environment, with LOG_FORMAT=text when a person watches the
    job's stderr (which the processes share) and has not chosen a format."""
    env = dict(os.environ)
    if "LOG_FORMAT" not in env and sys.stderr.isatty():
        env["LOG_FORMAT"] = "text"
    return env


def _grpcurl() -> str:
    """The grpcurl `make` installs next to this Python, spelled as it is
    typed from the current folder (`.venv/bin/grpcurl` in the checkout)."""
    installed = Path(sys.executable).parent / "grpcurl"
    if not installed.exists():
        return "grpcurl"
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def _ready_lines(demo: bool) -> list[str]:
    """Where each process listens, the first commands to try (each line can
    be pasted into a shell as it is) and how to stop."""
    lines = ["", "ready:"]
    for component in COMPONENTS:
        lines.append(f"  {component.module:16} {component.scheme}://{component.address}")
    experiments, _, gateway = (component.address for component in COMPONENTS)
    # With API_TOKENS set every HTTP call needs one of their secrets (gRPC
    # reflection stays open, so grpcurl's `list` does not). Only the
    # secret goes into $TOKEN, whichever form its entry has.
    auth = ' -H "Authorization: Bearer $TOKEN"' if os.environ.get("API_TOKENS") else ""
    listed = "the demo's experiments" if demo else "experiments (make demo loads some)"
    tries = [
        (f"curl{auth} http://{gateway}/api/v1/experiments", listed),
        (f"curl{auth} http://{gateway}/api/v1/tracking/runs", "MLflow runs"),
        (f"{_grpcurl()} -plaintext {experiments} list", "the gRPC services"),
    ]
    width = max(len(command) for command, _ in tries)
    where = "in another terminal" + (
        ", with TOKEN set to the secret of one of API_TOKENS" if auth else ""
    )
    lines += ["", f"first things to try, {where}:"]
    lines += [f"  {command:<{width}}  # {why}" for command, why in tries]
    lines.append(f"and in a browser: http://{gateway}/console (the research console)")
    lines.append(f'                  http://{gateway}/docs (the HTTP API; "Try it out" calls it)')
    lines += ["", "Ctrl-C stops everything.", ""]
    return lines


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

    environment = _child_environment()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", component.module, env=environment, start_new_session=True
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

    print("\n".join(_ready_lines(demo)), file=sys.stderr)

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
