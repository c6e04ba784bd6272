"""MLflow's REST API over kept-alive HTTP/1.1 connections of this service's
own, one per worker thread.

MLflow's `http_request` sends each request through requests and urllib3
with its session, adapters and hooks: 1.6 ms a call more than a kept-alive
`http.client` connection to the same server, on a `runs/get` that the
server itself answers in 6-8 ms (BENCHMARKS.md, "The façade's own HTTP
client"). This client sends what `http_request` would: the headers of
MLflow's request-header providers (asked once when only MLflow's own
built-in providers are registered and none of them is Databricks', whose
answer is then a constant; else at every request, as MLflow does), Basic
or Bearer credentials, and the same TLS settings (the CA
bundle requests would use, MLFLOW_TRACKING_INSECURE_TLS, a client
certificate). A refusal is read by MLflow's own `verify_rest_response`, so
it is the same MlflowException, and a connection failure or a timeout is
an MlflowException worded as MLflow words it ("… failed with exception …
timed out"), which tracking_svc.backend sorts the same way.

What it cannot send the same way stays on MLflow's client: AWS SigV4, an
auth plugin, the Databricks SDK or OAuth, a workspace, and a proxy from the
environment (`direct_rest` answers None for those). MLFLOW_DIRECT_HTTP=false
sends everything through MLflow's client.

Only reads go through it (run search, a run, metric histories): a request
that fails on a connection the server closed while it was idle is sent
once more on a new one.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import orjson
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking.request_header import registry as header_registry
from mlflow.tracking.request_header.databricks_request_header_provider import (
    DatabricksRequestHeaderProvider,
)
from mlflow.tracking.request_header.default_request_header_provider import (
    DefaultRequestHeaderProvider,
)
from mlflow.tracking.request_header.registry import resolve_request_headers
from mlflow.utils.rest_utils import MlflowHostCreds, verify_rest_response

from tracking_svc.process import CALL_EXPIRES

# Failures of a request on a kept-alive connection that the server may have
# closed while it sat idle: nothing was answered, so the read is sent again.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
log = logging.getLogger("tracking.mlflow")
# MLflow's own request-header providers (see _fixed_request_headers).
_BUILT_IN = {DatabricksRequestHeaderProvider, DefaultRequestHeaderProvider}


def direct_rest(credentials: MlflowHostCreds, timeout: float) -> KeptAliveRest | None:
    """A kept-alive client for the tracking server `credentials` name, or
    None when MLflow's client must send the requests (see the module)."""
    parts = urlsplit(credentials.host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if (
        credentials.aws_sigv4
        or credentials.auth
        or credentials.use_databricks_sdk
        or credentials.client_secret
        or credentials.workspace_id
        or os.environ.get("MLFLOW_WORKSPACE", "").strip()
    ):
        return None
    if getproxies().get(parts.scheme) and not proxy_bypass(parts.netloc):
        return None
    return KeptAliveRest(credentials, timeout)


class KeptAliveRest:
    """`send(method, endpoint, *, params=None, json=None) -> bytes`, the
    body of MLflow's 200 answer (tracking_svc.run_search.Rest)."""

    def __init__(self, credentials: MlflowHostCreds, timeout: float) -> None:
        parts = urlsplit(credentials.host)
        self._host = credentials.host.rstrip("/")
        self._hostname = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._authorization = _authorization(credentials)
        self._fixed_headers = _fixed_request_headers()
        # None: plain HTTP.
        self._tls = _tls_context(credentials) if parts.scheme == "https" else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def __call__(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> bytes:
        path = self._prefix + endpoint
        if params:
            path += "?" + urlencode(params, doseq=True)
        if self._fixed_headers is not None:
            headers = dict(self._fixed_headers)
        else:
            headers = dict(resolve_request_headers())  # type: ignore[no-untyped-call]
        if self._authorization:
            headers["Authorization"] = self._authorization
        body = None
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        status, content = self._exchange(method, path, body, headers)
        if status == 200 and content.strip() in (b"", b"200 OK"):
            return b"{}"  # as MLflow reads an empty or Armeria "200 OK" answer
        if status != 200 or not _looks_like_an_object(content):
            verify_rest_response(_as_response(status, content, self._host + path), endpoint)
        return content

    def close(self) -> None:
        """Close every thread's connection (the service is stopping)."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection not in self._open:
            connection = None  # closed by `close`: a new one, which `close` will know of
        reused = connection is not None
        if connection is None:
            connection = self._connect()
        timeout = self._time_left()
        try:
            try:
                return _once(connection, method, path, body, headers, timeout)
            except _STALE:
                if not reused:
                    raise
                self._forget(connection)
                connection = self._connect()
                return _once(connection, method, path, body, headers, timeout)
        except (OSError, http.client.HTTPException) as error:
            self._forget(connection)
            raise MlflowException(
                f"API request to {self._host}{path} failed with exception {error}"
            ) from error

    def _time_left(self) -> float:
        """This request's timeout: the configured one, cut to what is left
        of the call it serves (TimeoutError, as MLflow's client raises it,
        when nothing is)."""
        expires = CALL_EXPIRES.get()
        if expires is None:
            return self._timeout
        left = expires - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's time ran out before its next MLflow request")
        return min(self._timeout, left)

    def _connect(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._tls is not None:
            connection = http.client.HTTPSConnection(
                self._hostname, self._port, timeout=self._timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(
                self._hostname, self._port, timeout=self._timeout
            )
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection

    def _forget(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None
        with self._lock:
            self._open.discard(connection)


def _once(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
) -> tuple[int, bytes]:
    connection.timeout = timeout  # used when it (re)connects (with TCP_NODELAY)
    if connection.sock is not None:
        connection.sock.settimeout(timeout)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read()
    if response.will_close:
        connection.close()
    return response.status, content


def _fixed_request_headers() -> dict[str, str] | None:
    """The headers MLflow's request-header providers give, when they cannot
    change for the life of this process; None when they must be asked at
    every request.

    Asking costs 40 us a request at rest and about 170 us measured inside
    the service at one caller (the worker thread has just woken), most of
    it the Databricks provider probing where it runs (BENCHMARKS.md, "Issue
    18, third round"). The answer is constant when the registered providers
    are exactly MLflow's two built-in ones and Databricks' is not in
    context: the default one answers the client's fixed name and version,
    and whether this process runs on Databricks does not change while it
    runs. A provider of a plugin (an entry point) may answer differently
    each time, so then every request asks, as MLflow's client does."""
    registry = getattr(header_registry, "_request_header_provider_registry", None)
    if registry is None:
        # MLflow's internals moved: correct, only slower.
        log.warning(
            "MLflow's request-header provider registry was not found; "
            "its providers are asked at every request"
        )
        return None
    providers = list(registry)
    if len(providers) != len(_BUILT_IN) or {type(p) for p in providers} != _BUILT_IN:
        return None
    for provider in providers:
        if isinstance(provider, DatabricksRequestHeaderProvider) and provider.in_context():  # type: ignore[no-untyped-call]
            return None
    headers: dict[str, str] = resolve_request_headers()  # type: ignore[no-untyped-call]
    return headers


def _authorization(credentials: MlflowHostCreds) -> str | None:
    """The Authorization header MLflow's client would send."""
    if credentials.username and credentials.password:
        pair = f"{credentials.username}:{credentials.password}".encode()
        return "Basic " + base64.standard_b64encode(pair).decode()
    if credentials.token:
        return f"Bearer {credentials.token}"
    return None


def _tls_context(credentials: MlflowHostCreds) -> ssl.SSLContext:
    """The verification requests would do: the server's CA bundle when one
    is named, else requests' own bundle; none at all when MLflow is told to
    skip it; the client certificate when one is named."""
    if credentials.ignore_tls_verification:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = (
            credentials.server_cert_path
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or requests.utils.DEFAULT_CA_BUNDLE_PATH
        )
        if os.path.isdir(bundle):
            context = ssl.create_default_context(capath=bundle)
        else:
            context = ssl.create_default_context(cafile=bundle)
    if credentials.client_cert_path:
        context.load_cert_chain(credentials.client_cert_path)
    return context


def _looks_like_an_object(content: bytes) -> bool:
    """A JSON object at a glance: what MLflow's client checks of every
    answer to its REST API (by parsing it) before the caller parses it."""
    text = content.strip()
    return text.startswith(b"{") and text.endswith(b"}")


def _as_response(status: int, content: bytes, url: str) -> requests.Response:
    """The answer as MLflow's `verify_rest_response` reads one."""
    response = requests.Response()
    response.status_code = status
    response._content = content
    response.encoding = "utf-8"
    response.url = url
    return response
