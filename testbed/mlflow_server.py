"""A real `mlflow server` process on loopback, over a SQLite store in a
throwaway folder: the tracking server tracking_svc talks to in production,
started the way its documentation starts it. A test may kill it (SIGKILL,
as in a crash) and start it again on the same port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from testbed.ports import free_port

# `mlflow server` is ready in about 6 s here; allow for a slow machine.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class MlflowServerError(RuntimeError):
    """The server did not come up; the message ends with its log."""


class MlflowServer:
    """`python -m mlflow server` in its own session (process group), so that
    stopping it also stops the uvicorn worker it forks."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = free_port() if port is None else port
        self.log_path = directory / "mlflow-server.log"
        self.store_uri = f"sqlite:///{directory / 'mlflow.db'}"
        self.artifact_root = directory / "artifacts"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--backend-store-uri", self.store_uri,
            "--default-artifact-root", str(self.artifact_root),
            "--workers", "1",
        ]  # fmt: skip

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start (or restart, on the same port) and wait until /health is 200."""
        if self.running:
            raise MlflowServerError(f"the MLflow server on port {self.port} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            # The test process may have set these for its own MLflow client.
            if key not in {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"}
        }
        # The job runner (a pool of huey consumers) is not needed for tracking
        # and would double the start-up time.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.command())}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
                start_new_session=True,
            )
        try:
            self._wait_until_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_healthy(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise MlflowServerError(f"mlflow server exited with {code}:\n{self.log()}")
            if self.healthy():
                return
            if time.monotonic() >= deadline:
                raise MlflowServerError(
                    f"mlflow server not healthy after {timeout:.0f} s:\n{self.log()}"
                )
            time.sleep(0.1)

    def healthy(self) -> bool:
        """Whether GET /health answers 200 right now."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return int(response.status) == 200
        except (OSError, urllib.error.URLError):
            return False

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
        # The uvicorn worker may outlive its parent by a moment.
        self._signal_group(signal.SIGKILL)
        self._process = None

    def kill(self) -> None:
        """SIGKILL to the whole group, as in a crash: no clean shutdown."""
        if self._process is None:
            return
        self._signal_group(signal.SIGKILL)
        self._process.wait(STOP_TIMEOUT)
        self._process = None

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
