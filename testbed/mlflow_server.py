"""A real `mlflow server` process on loopback, over a SQLite store in a
throwaway folder: the tracking server tracking_svc talks to in production,
started the way its documentation starts it. A test may kill it (SIGKILL,
as in a crash) and start it again on the same port."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from testbed.child import ChildServer
from testbed.ports import free_port

# `mlflow server` is ready in about 6 s here; allow for a slow machine.
START_TIMEOUT = 60.0


class MlflowServerError(RuntimeError):
    """The server did not come up; the message ends with its log."""


class MlflowServer(ChildServer):
    """`python -m mlflow server` in its own session (process group), so that
    stopping it also stops the uvicorn worker it forks."""

    name = "mlflow server"
    readiness = "healthy"
    error = MlflowServerError

    def __init__(self, directory: Path, port: int | None = None) -> None:
        super().__init__(directory, free_port() if port is None else port, "mlflow-server.log")
        self.store_uri = f"sqlite:///{directory / 'mlflow.db'}"
        self.artifact_root = directory / "artifacts"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--backend-store-uri", self.store_uri,
            "--default-artifact-root", str(self.artifact_root),
            "--workers", "1",
        ]  # fmt: skip

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start (or restart, on the same port) and wait until /health is 200."""
        env = {
            key: value
            for key, value in os.environ.items()
            # The test process may have set these for its own MLflow client.
            if key not in {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"}
        }
        # The job runner (a pool of huey consumers) is not needed for tracking
        # and would double the start-up time.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.launch(timeout, env)

    def ready(self) -> bool:
        return self.healthy()

    def healthy(self) -> bool:
        """Whether GET /health answers 200 right now."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return int(response.status) == 200
        except (OSError, urllib.error.URLError):
            return False
