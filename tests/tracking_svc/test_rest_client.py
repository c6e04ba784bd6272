"""tracking_svc's own HTTP client for MLflow's REST API, against small real
HTTP servers on loopback: it sends what MLflow's `http_request` sends,
reads refusals as MLflow does, keeps its connection, survives a server
that closed it, and is left out where it could not send the same request.
The façade tests run both clients against a real `mlflow server`
(conftest: the "server" and "server-mlflow-http" stores)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking.request_header import registry as header_registry
from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider
from mlflow.tracking.request_header.registry import resolve_request_headers
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response

from tests.certificates import make_certificates
from tracking_svc import rest_client
from tracking_svc.process import CALL_EXPIRES
from tracking_svc.rest_client import KeptAliveRest, direct_rest

ENDPOINT = "/api/2.0/mlflow/runs/get"
RUN = b'{"run": {"info": {"run_id": "r1"}}}'
# Headers that differ between two HTTP clients for reasons of their own.
_TRANSPORT = {"host", "connection", "accept-encoding", "accept", "content-length"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection carried it


@dataclass
class Recorder:
    """What the server answers (status, body, extra header lines), and every
    request it received."""

    status: int = 200
    body: bytes = RUN
    close_silently: bool = False  # drop the connection after answering, unannounced
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            recorder.connections += 1
            self.number = recorder.connections

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorder.seen.append(Seen(self.command, self.path, headers, body, self.number))
            time.sleep(recorder.delay)
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorder.body)))
            self.end_headers()
            self.wfile.write(recorder.body)
            self.wfile.flush()
            if recorder.close_silently:
                self.close_connection = True

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving(
    recorder: Recorder, wrap: Callable[[socket.socket], socket.socket] | None = None
) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    if wrap is not None:
        server.socket = wrap(server.socket)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def port(recorder: Recorder) -> Iterator[int]:
    with serving(recorder) as number:
        yield number


Connect = Callable[..., KeptAliveRest]


def _through_mlflow(creds: MlflowHostCreds, **request: object) -> bytes:
    """The same request sent by MLflow's own client."""
    response = http_request(creds, **request)  # type: ignore[no-untyped-call]
    verify_rest_response(response, request["endpoint"])
    content: bytes = response.content
    return content


@pytest.fixture
def connect() -> Iterator[Connect]:
    """`connect(url, timeout=2.0, **credentials)`: a client for the server
    at `url`, closed after the test."""
    made: list[KeptAliveRest] = []

    def make(url: str, timeout: float = 2.0, **credentials: object) -> KeptAliveRest:
        client = direct_rest(MlflowHostCreds(url, **credentials), timeout)  # type: ignore[no-untyped-call]
        assert client is not None
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("credentials", "authorization"),
    [
        ({}, None),
        ({"username": "ann", "password": "s3cret"}, "Basic YW5uOnMzY3JldA=="),
        ({"token": "t0k"}, "Bearer t0k"),
    ],
    ids=["anonymous", "basic", "bearer"],
)
def test_it_sends_what_mlflows_client_sends(
    recorder: Recorder,
    port: int,
    credentials: dict[str, str],
    authorization: str | None,
    connect: Connect,
) -> None:
    creds = MlflowHostCreds(f"http://127.0.0.1:{port}", **credentials)  # type: ignore[no-untyped-call]
    search = {"experiment_ids": ["1"], "filter": "tags.x = 'y'", "max_results": 3}
    senders: list[Callable[..., bytes]] = [
        lambda **kw: _through_mlflow(creds, **kw),
        lambda **kw: connect(_url(port), **credentials)(kw.pop("method"), kw.pop("endpoint"), **kw),
    ]
    for send in senders:
        assert send(method="GET", endpoint=ENDPOINT, params={"run_id": ["a", "b"]}) == RUN
        assert send(method="POST", endpoint="/api/2.0/mlflow/runs/search", json=search) == RUN
    theirs, ours = recorder.seen[:2], recorder.seen[2:]
    for mine, expected in zip(ours, theirs, strict=True):
        assert (mine.method, mine.path) == (expected.method, expected.path)
        assert json.loads(mine.body or b"null") == json.loads(expected.body or b"null")
        assert {k: v for k, v in mine.headers.items() if k not in _TRANSPORT} == {
            k: v for k, v in expected.headers.items() if k not in _TRANSPORT
        }
        assert mine.headers.get("authorization") == authorization
    assert ours[0].path == f"{ENDPOINT}?run_id=a&run_id=b"
    assert ours[1].headers["content-type"] == "application/json"


class _CountingProvider(RequestHeaderProvider):
    """A plugin's provider whose answer changes at every request."""

    def __init__(self) -> None:
        self.asked = 0

    def in_context(self) -> bool:
        return True

    def request_headers(self) -> dict[str, str]:
        self.asked += 1
        return {"X-Asked": str(self.asked)}


def test_mlflows_own_headers_are_asked_for_once(
    recorder: Recorder, port: int, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = resolve_request_headers()  # type: ignore[no-untyped-call]
    client = connect(_url(port))
    # Only MLflow's built-in providers are registered: their answer is a
    # constant, read when the client was made.
    monkeypatch.setattr(rest_client, "resolve_request_headers", _not_asked)
    for _ in range(2):
        client("GET", ENDPOINT, params={"run_id": "r1"})
    for seen in recorder.seen:
        assert {k: seen.headers[k.lower()] for k in expected} == expected


def _not_asked() -> dict[str, str]:
    raise AssertionError("the built-in providers' headers were asked for again")


def test_a_plugins_headers_are_asked_for_at_every_request(
    recorder: Recorder, port: int, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = header_registry._request_header_provider_registry
    monkeypatch.setattr(providers, "_registry", [*providers, _CountingProvider()])
    client = connect(_url(port))
    for _ in range(3):
        client("GET", ENDPOINT, params={"run_id": "r1"})
    assert [seen.headers["x-asked"] for seen in recorder.seen] == ["1", "2", "3"]


def test_without_mlflows_registry_the_headers_are_asked_for_at_every_request(
    recorder: Recorder,
    port: int,
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    counting = _CountingProvider()
    monkeypatch.delattr(header_registry, "_request_header_provider_registry")
    monkeypatch.setattr(rest_client, "resolve_request_headers", counting.request_headers)
    with caplog.at_level(logging.WARNING, logger="tracking.mlflow"):
        client = connect(_url(port))
    assert "registry was not found" in caplog.text
    for _ in range(2):
        client("GET", ENDPOINT, params={"run_id": "r1"})
    assert [seen.headers["x-asked"] for seen in recorder.seen] == ["1", "2"]


def test_a_path_prefix_of_the_tracking_uri_is_kept(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    client = connect(f"http://127.0.0.1:{port}/mlflow/")
    client("GET", ENDPOINT, params={"run_id": "r1"})
    assert recorder.seen[0].path == f"/mlflow{ENDPOINT}?run_id=r1"


def test_one_connection_carries_every_request_of_a_thread(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    client = connect(_url(port))
    for _ in range(5):
        assert client("GET", ENDPOINT, params={"run_id": "r1"}) == RUN
    assert recorder.connections == 1
    assert [seen.connection for seen in recorder.seen] == [1] * 5


def test_a_connection_the_server_dropped_is_replaced_once(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    # The server closes each connection after answering, without a
    # `Connection: close`: the client learns it only when it next sends.
    recorder.close_silently = True
    client = connect(_url(port))
    for _ in range(3):
        assert client("GET", ENDPOINT, params={"run_id": "r1"}) == RUN
    assert len(recorder.seen) == 3
    assert [seen.connection for seen in recorder.seen] == [1, 2, 3]


def test_a_refusal_is_mlflows_own_exception(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    recorder.status = 404
    recorder.body = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run \'r9\' not found"}'
    with pytest.raises(RestException) as refused:
        connect(_url(port))("GET", ENDPOINT, params={"run_id": "r9"})
    assert refused.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "Run 'r9' not found" in refused.value.message


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (502, b"<html>bad gateway</html>", "failed with error code 502 != 200"),
        (200, b"<html>a login page</html>", "was not in a valid JSON format"),
    ],
    ids=["an html error", "an html page answered 200"],
)
def test_an_answer_that_is_not_mlflows_is_an_mlflow_exception(
    recorder: Recorder, port: int, status: int, body: bytes, words: str, connect: Connect
) -> None:
    recorder.status, recorder.body = status, body
    with pytest.raises(MlflowException) as refused:
        connect(_url(port))("GET", ENDPOINT, params={"run_id": "r1"})
    assert words in refused.value.message


def test_an_empty_answer_reads_as_an_empty_object(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    recorder.body = b""
    assert connect(_url(port))("GET", ENDPOINT) == b"{}"


def test_a_server_that_does_not_answer_times_out_as_mlflow_words_it(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    recorder.delay = 1.0
    client = connect(_url(port), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(MlflowException) as failed:
        client("GET", ENDPOINT)
    assert time.monotonic() - started < 0.9
    assert "timed out" in failed.value.message
    assert f"127.0.0.1:{port}{ENDPOINT}" in failed.value.message


def test_the_calls_deadline_cuts_the_timeout(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    recorder.delay = 1.0
    client = connect(_url(port))  # 2 s of its own
    token = CALL_EXPIRES.set(time.monotonic() + 0.2)
    try:
        started = time.monotonic()
        with pytest.raises(MlflowException, match="timed out"):
            client("GET", ENDPOINT)
        assert time.monotonic() - started < 0.9
    finally:
        CALL_EXPIRES.reset(token)


def test_a_call_out_of_time_sends_nothing(recorder: Recorder, port: int, connect: Connect) -> None:
    client = connect(_url(port))
    token = CALL_EXPIRES.set(time.monotonic() - 0.1)
    try:
        with pytest.raises(TimeoutError, match="ran out before its next MLflow request"):
            client("GET", ENDPOINT)
    finally:
        CALL_EXPIRES.reset(token)
    assert recorder.seen == []


def test_a_refused_connection_is_an_mlflow_exception(connect: Connect) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(MlflowException, match=r"failed with exception .*refused"):
        connect(_url(port))("GET", ENDPOINT)


@pytest.mark.parametrize(
    "credentials",
    [
        {"aws_sigv4": True},
        {"auth": "kubernetes"},
        {"use_databricks_sdk": True},
        {"client_secret": "s", "client_id": "i"},
        {"workspace_id": "123"},
    ],
    ids=["sigv4", "auth plugin", "databricks sdk", "oauth", "workspace"],
)
def test_what_it_cannot_send_the_same_stays_on_mlflows_client(
    credentials: dict[str, object],
) -> None:
    creds = MlflowHostCreds("http://127.0.0.1:5000", **credentials)  # type: ignore[no-untyped-call]
    assert direct_rest(creds, timeout=1.0) is None


def test_a_proxy_from_the_environment_stays_on_mlflows_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = get_default_host_creds("http://mlflow.internal:5000")  # type: ignore[no-untyped-call]
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert direct_rest(creds, timeout=1.0) is None
    monkeypatch.setenv("NO_PROXY", "mlflow.internal")
    assert direct_rest(creds, timeout=1.0) is not None


def test_an_mlflow_workspace_stays_on_mlflows_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    creds = MlflowHostCreds("http://127.0.0.1:5000")  # type: ignore[no-untyped-call]
    assert direct_rest(creds, timeout=1.0) is None


def _tls_server(paths: dict[str, Path]) -> Callable[[socket.socket], socket.socket]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["cert"], paths["key"])
    return lambda listening: context.wrap_socket(listening, server_side=True)


def test_tls_is_verified_as_mlflows_client_verifies(
    recorder: Recorder, tmp_path: Path, connect: Connect
) -> None:
    paths = make_certificates(tmp_path)
    with serving(recorder, _tls_server(paths)) as port:
        url = f"https://localhost:{port}"
        assert connect(url, server_cert_path=str(paths["ca"]))("GET", ENDPOINT) == RUN
        with pytest.raises(MlflowException, match="CERTIFICATE_VERIFY_FAILED"):
            connect(url)("GET", ENDPOINT)
        assert connect(url, ignore_tls_verification=True)("GET", ENDPOINT) == RUN
    # The unverified attempt never reached the handler.
    assert len(recorder.seen) == 2


def test_each_thread_keeps_its_own_connection_until_close(
    recorder: Recorder, port: int, connect: Connect
) -> None:
    client = connect(_url(port))
    threads = [threading.Thread(target=client, args=("GET", ENDPOINT)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client("GET", ENDPOINT)
    client("GET", ENDPOINT)
    assert recorder.connections == 4
    client.close()
    # The stopped service's connections are gone; a call after it opens one.
    client("GET", ENDPOINT)
    assert recorder.connections == 5
