"""Process-wide set-up happens once, in tracking_svc.process (main() calls
it); building backends and servers, as every test does, changes nothing
outside the objects built."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.utils import rest_utils

from tracking_svc.absent_modules import PROBED
from tracking_svc.backend import TrackingBackend
from tracking_svc.config import Settings
from tracking_svc.process import PROCESS_VARIABLES, configure_process
from tracking_svc.server import create_server


def _request_timeout() -> Any:
    """The variable object MLflow's REST client reads its timeout from."""
    return getattr(rest_utils, "MLFLOW_HTTP_REQUEST_TIMEOUT")  # noqa: B009  (untyped module)


async def test_building_a_server_changes_nothing_process_wide(tmp_path: Path) -> None:
    environment = dict(os.environ)
    modules = {name: module for name, module in sys.modules.items() if module is None}
    timeout = _request_timeout()
    settings = Settings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", mlflow_timeout=0.5, workers=3
    )
    backend = TrackingBackend(settings)
    await backend.close()
    server, _ = await create_server(settings, "127.0.0.1:0")
    await server.stop(0)
    assert dict(os.environ) == environment
    assert {name: module for name, module in sys.modules.items() if module is None} == modules
    assert _request_timeout() is timeout


def test_configure_process_sets_mlflow_up(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROCESS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_CONFIGURE_LOGGING", "true")  # the operator's is kept
    configure_process(Settings(mlflow_timeout=2.5, workers=3))
    configure_process(Settings(mlflow_timeout=2.5, workers=3))  # twice: no harm
    assert {name: os.environ[name] for name in PROCESS_VARIABLES} == {
        "MLFLOW_CONFIGURE_LOGGING": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        "MLFLOW_HTTP_POOL_MAXSIZE": "3",
    }
    # Wrapped once, and still reading the variable when no call is running.
    wrapped = _request_timeout()
    assert wrapped.get() == 3.0
    assert str(wrapped).startswith("MLFLOW_HTTP_REQUEST_TIMEOUT")
    for name in PROBED:
        assert name in sys.modules
