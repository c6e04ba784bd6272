"""What tracking_svc changes for its whole process, in one place: `main()`
calls `configure_process` once, after reading the settings and before the
server is built (the tests do the same, once per session). Nothing else in
tracking_svc writes os.environ or sys.modules or patches MLflow, so that
building a backend or a server many times (as the tests do) changes nothing
outside the objects built.

This module imports no MLflow at import time: MLFLOW_CONFIGURE_LOGGING must
be set before MLflow is first imported, and a configuration error is
reported before the second or so that importing MLflow takes."""

from __future__ import annotations

import contextvars
import logging
import os
import time
from typing import Any

from tracking_svc.absent_modules import remember_absent
from tracking_svc.config import Settings

log = logging.getLogger("tracking.mlflow")

# The name under which MLflow's REST client reads its request timeout.
_TIMEOUT_VARIABLE = "MLFLOW_HTTP_REQUEST_TIMEOUT"
# Every environment variable `configure_process` may write.
PROCESS_VARIABLES = (
    "MLFLOW_CONFIGURE_LOGGING",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    _TIMEOUT_VARIABLE,
    "MLFLOW_HTTP_POOL_MAXSIZE",
)

# When the MLflow call running in this context must be over (a
# time.monotonic() value); TrackingBackend.call sets it on the worker thread
# for the duration of one call.
CALL_EXPIRES: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "mlflow_call_expires", default=None
)


def configure_process(settings: Settings) -> None:
    """Set up MLflow's client for this process; calling it again is harmless."""
    # Read when MLflow is first imported: its loggers then propagate to ours
    # (JSON lines) instead of printing in their own format. A value the
    # operator set is kept.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    # Bound MLflow's HTTP client: one attempt per request, a timeout of a few
    # seconds, a connection pool as large as the thread pool. MLflow reads
    # these at each request; they are process-wide, and this process only
    # talks to one tracking server.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"
    os.environ[_TIMEOUT_VARIABLE] = str(settings.http_timeout)
    os.environ["MLFLOW_HTTP_POOL_MAXSIZE"] = str(settings.workers)
    remember_absent()
    bound_requests_to_their_call()


class _CallBoundTimeout:
    """MLFLOW_HTTP_REQUEST_TIMEOUT as MLflow's REST client reads it before
    each HTTP request: the configured value, cut to what is left of the
    current call's time. The variable itself is process-wide (and whole
    seconds), so it cannot carry one call's deadline."""

    def __init__(self, variable: Any) -> None:
        self._variable = variable  # MLflow's own, which reads the environment

    def get(self) -> float:
        configured = float(self._variable.get())
        expires = CALL_EXPIRES.get()
        if expires is None:
            return configured
        left = expires - time.monotonic()
        if left <= 0:
            # Raised before the request is made: nothing is sent to MLflow.
            raise TimeoutError("the call's time ran out before its next MLflow request")
        return min(configured, left)

    def __str__(self) -> str:  # MLflow names the variable in its timeout message
        return str(self._variable)


def bound_requests_to_their_call() -> None:
    """Make MLflow's REST client (the tracking server's transport) take each
    request's timeout from the call it serves. MLflow's client offers no
    per-call timeout; it reads this variable object from its rest_utils
    module at every request, so the object is wrapped there. Should a later
    MLflow read it elsewhere, nothing is wrapped and a warning says so:
    calls are still answered at their deadline, only their threads run on
    longer."""
    # Imported here, after MLFLOW_CONFIGURE_LOGGING is set (see above).
    from mlflow.environment_variables import _EnvironmentVariable
    from mlflow.utils import rest_utils

    current = getattr(rest_utils, _TIMEOUT_VARIABLE, None)
    if isinstance(current, _CallBoundTimeout):
        return
    if not isinstance(current, _EnvironmentVariable):
        log.warning("MLflow's REST client has no MLFLOW_HTTP_REQUEST_TIMEOUT to bound per call")
        return
    setattr(rest_utils, _TIMEOUT_VARIABLE, _CallBoundTimeout(current))
