"""The `main()` every process shares (CONTRACT §1): read the settings or
refuse in one line (exit 2), log as configured, run until SIGTERM or SIGINT
and drain (exit 0), or say in one line why it cannot start (exit 1).

    def main() -> int:
        return run_main("gateway", Settings.from_env, _serve)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from research_common.config import ConfigError
from research_common.logging import configure_logging
from research_common.settings import ProcessSettings

S = TypeVar("S", bound=ProcessSettings)

# Exit codes: 2, as a shell's usage errors, for what the operator must fix
# in the configuration; 1 for what went wrong at start-up (an address in
# use, a database down).
EXIT_CONFIGURATION = 2
EXIT_CANNOT_START = 1


class Server(Protocol):
    """What the runner drives: research_common.server.GrpcServer, and the
    gateway's HTTP server (through an adapter in gateway/__main__.py)."""

    @property
    def port(self) -> int: ...

    async def start(self) -> None: ...

    async def wait(self) -> None:
        """Return when the server has stopped, by `stop` or by itself."""

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` s."""


async def serve_until_signalled(
    server: Server,
    grace: float,
    address: str,
    *,
    log: logging.Logger | None = None,
    in_flight: str = "calls",
) -> None:
    """Start, run until SIGTERM or SIGINT (or until the server stops by
    itself), then drain for up to `grace` s. `in_flight` names what drains
    in the log line ("calls", "requests")."""
    log = log or logging.getLogger("research.server")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    log.info("listening on %s (port %d)", address, server.port, extra={"port": server.port})
    stopped = asyncio.ensure_future(server.wait())
    signalled = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopped, signalled], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("stopping: draining in-flight %s for up to %.1f s", in_flight, grace)
    try:
        # Also when the server stopped by itself: `stop` raises what stopped it.
        await server.stop(grace)
    finally:
        signalled.cancel()
        if stopped.done() and not stopped.cancelled():
            stopped.exception()  # `stop` has raised it already; not "never retrieved"
        stopped.cancel()
    log.info("stopped")


def freeze_start_up_heap() -> None:
    """Move everything alive now (modules, classes, functions, descriptors:
    about 74,000 objects in experiments_svc, 36,000 in the gateway) out of
    the cyclic garbage collector's reach, so that a full collection, which
    stalls every call in flight, no longer walks them all. Under load the
    longest full collection in experiments_svc went from 47-55 ms to 32-37
    ms of wall time, and each costs a third to a seventh of the CPU it did
    (BENCHMARKS.md, issue 18's seventh round). What is frozen and later
    becomes cyclic garbage is never freed: hence once, after the set-up,
    and after a collection that frees what importing left behind."""
    gc.collect()
    gc.freeze()


def run_main(
    name: str,
    read_settings: Callable[[], S],
    job: Callable[[S], Coroutine[Any, Any, None]],
    *,
    prepare: Callable[[S], None] | None = None,
) -> int:
    """Run `job(settings)` as process `name` and return its exit code.
    `prepare` does the process-wide set-up the job needs (environment
    variables, patched libraries) once logging is configured; it is the
    only place a process changes what is shared by everything in it."""
    try:
        settings = read_settings()
    except ConfigError as error:
        print(f"{name}: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    configure_logging(name, settings.log_level, settings.log_format)
    if prepare is not None:
        prepare(settings)
    freeze_start_up_heap()
    try:
        asyncio.run(job(settings))
    except ConfigError as error:  # found only when used, e.g. a database URL
        print(f"{name}: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except (OSError, RuntimeError) as error:
        # Typically: the address is taken, or the store is unreachable at
        # start-up. One line, not a traceback.
        print(f"{name}: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    return 0
