"""A server that tests and benchmarks start as a child process (`mlflow
server`, PgBouncer): in a session of its own, so that stopping it also stops
whatever it forks; its output appended to a log file that failures quote;
ready when a check of the subclass's passes; stopped, or killed as in a
crash, and started again on the same port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from testbed.started import Started

STOP_TIMEOUT = 10.0


class ChildServer(Started):
    """Subclasses give `command()` and `ready()`, name themselves in `name`,
    and raise `error` (a RuntimeError) when the server does not come up."""

    name = "server"
    readiness = "ready"  # "not <readiness> after N s"
    error: type[RuntimeError] = RuntimeError

    def __init__(self, directory: Path, port: int, log_name: str) -> None:
        self.directory = directory
        self.port = port
        self.log_path = directory / log_name
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def launch(self, timeout: float, env: Mapping[str, str] | None = None) -> None:
        """Start `command()` and wait until `ready()`; stopped again, and
        `error` raised with the log, if it exits or is not ready in time."""
        if self.running:
            raise self.error(f"{self.name} on port {self.port} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.command())}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=self.directory,
                start_new_session=True,
            )
        try:
            self._wait_until(self.ready, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise self.error(f"{self.name} exited with {code}:\n{self.log()}")
            if ready():
                return
            if time.monotonic() >= deadline:
                raise self.error(
                    f"{self.name} not {self.readiness} after {timeout:.0f} s:\n{self.log()}"
                )
            time.sleep(0.05)

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        # The process leads its own session, so its group id is its pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def stop(self) -> None:
        """SIGTERM to the whole group; SIGKILL if it has not exited in time."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._process.wait(STOP_TIMEOUT)
        # A forked worker may outlive its parent by a moment.
        self._signal_group(signal.SIGKILL)
        self._process = None

    def kill(self) -> None:
        """SIGKILL to the whole group, as in a crash: no clean shutdown."""
        if self._process is None:
            return
        self._signal_group(signal.SIGKILL)
        self._process.wait(STOP_TIMEOUT)
        self._process = None
