"""The two log formats: JSON lines for machines (the shape the other tests
and log collectors parse, unchanged) and one short text line per event for
a person at a terminal; how LOG_FORMAT chooses between them; and third-party
chatter kept below INFO."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research_common.config import ConfigError, LogFormat, env_log_format, log_format
from research_common.logging import (
    GRPC_AIO_LOGGER,
    REQUEST_ID,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    utc_milliseconds,
)

# 2026-03-01T12:03:04.123Z
CREATED = 1772366584.123
REQUEST = "5f2c0a9e4b7d4e21a3c8d6f1e0b9a7c4"


def _record(
    message: str,
    *args: object,
    level: int = logging.INFO,
    logger: str = "gateway.http",
    extra: dict[str, object] | None = None,
    exc_info: bool = False,
) -> logging.LogRecord:
    """A record as `logging.getLogger(logger).log(level, message, *args,
    extra=extra)` makes it, at a fixed time."""
    info = sys.exc_info() if exc_info else None
    record = logging.getLogger(logger).makeRecord(
        logger, level, __file__, 1, message, args, info, extra=extra
    )
    record.created = CREATED
    record.msecs = 123.0
    return record


@pytest.fixture
def request_id() -> Iterator[str]:
    token = REQUEST_ID.set(REQUEST)
    yield REQUEST
    REQUEST_ID.reset(token)


def _clock() -> str:
    """The fixed time as the text format shows it: local time of day."""
    return time.strftime("%H:%M:%S", time.localtime(CREATED)) + ".123"


# LOG_FORMAT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("json", "json"), ("text", "text"), ("JSON", "json"), (" Text ", "text"), ("  ", "auto")],
)
def test_log_format_accepts_json_text_and_blank(raw: str, expected: str) -> None:
    assert log_format("LOG_FORMAT", raw) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "auto"), ({"LOG_FORMAT": ""}, "auto"), ({"LOG_FORMAT": "text"}, "text")],
)
def test_env_log_format_is_auto_when_unset_or_empty(env: dict[str, str], expected: str) -> None:
    assert env_log_format(env) == expected


@pytest.mark.parametrize("raw", ["xml", "auto", "jsonl", "color"])
def test_any_other_log_format_is_a_one_line_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as error:
        env_log_format({"LOG_FORMAT": raw})
    assert str(error.value) == (
        f"LOG_FORMAT must be json, text or empty (text on a terminal), got {raw!r}"
    )


# JSON: the shape is kept exactly


def test_json_line_keeps_its_fields_and_their_order(request_id: str) -> None:
    extra = {"route": "/api/v1/experiments", "status": 200, "code": None, "duration_ms": 3.123}
    line = JsonFormatter("gateway").format(_record("%s %s %d", "GET", "/x", 200, extra=extra))
    assert line == (
        '{"ts": "2026-03-01T12:03:04.123+00:00", "level": "info", "service": "gateway", '
        '"logger": "gateway.http", "msg": "GET /x 200", '
        f'"request_id": "{request_id}", "route": "/api/v1/experiments", "status": 200, '
        '"code": null, "duration_ms": 3.123}'
    )


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(st.floats(min_value=-2e9, max_value=32e9, allow_nan=False))
@example(CREATED)
@example(1772366584.9999995)  # rounds up into the next second
@example(1772366584.0004999)
@example(0.0)
@example(-0.0000004)  # before 1970, rounds to the epoch
@example(-1.5)
def test_the_json_time_is_datetimes_own_text(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert utc_milliseconds(created) == expected


def test_json_line_carries_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("unhandled error in %s", "GET /x", level=logging.ERROR, exc_info=True)
    line = json.loads(JsonFormatter("gateway").format(record))
    assert line["request_id"] is None
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("RuntimeError: boom")


def test_uvicorns_color_message_is_in_neither_format() -> None:
    # As uvicorn logs "Started server process [%d]".
    colour = "Started server process [\x1b[36m%d\x1b[0m]"
    record = _record(
        "Started server process [%d]", 42, logger="uvicorn.error", extra={"color_message": colour}
    )
    as_json = json.loads(JsonFormatter("gateway").format(record))
    assert "color_message" not in as_json
    assert as_json["msg"] == "Started server process [42]"
    as_text = TextFormatter("gateway").format(record)
    assert "color" not in as_text
    assert "\x1b" not in as_text


# Text: one short line per event


def test_text_line_of_an_http_request(request_id: str) -> None:
    extra = {"route": "/api/v1/experiments", "status": 200, "code": None, "duration_ms": 3.123}
    record = _record("%s %s %d", "GET", "/api/v1/experiments", 200, extra=extra)
    assert TextFormatter("gateway").format(record) == (
        f"{_clock()} INFO  gateway          GET /api/v1/experiments 200 3.1ms  [req 5f2c0a9e…]"
    )


def test_text_line_shows_the_fields_the_message_does_not(request_id: str) -> None:
    extra = {
        "route": "/api/v1/experiments/{id}",  # the path is in the message
        "status": 404,  # so is the status
        "code": "NOT_FOUND",
        "duration_ms": 0.4321,
    }
    record = _record("%s %s %d", "GET", "/api/v1/experiments/x", 404, extra=extra)
    assert TextFormatter("gateway").format(record) == (
        f"{_clock()} INFO  gateway          GET /api/v1/experiments/x 404 "
        "code=NOT_FOUND 0.43ms  [req 5f2c0a9e…]"
    )


def test_text_line_of_an_rpc_names_it_once() -> None:
    method = "/research.experiments.v1.ExperimentService/GetExperiment"
    extra = {"rpc": method, "code": "NOT_FOUND", "duration_ms": 12.0}
    token = REQUEST_ID.set("trace-1")  # a short id given by the client: whole
    try:
        record = _record("%s %s", method, "NOT_FOUND", logger="research.rpc", extra=extra)
        line = TextFormatter("experiments_svc").format(record)
    finally:
        REQUEST_ID.reset(token)
    assert line == f"{_clock()} INFO  experiments_svc  {method} NOT_FOUND 12.0ms  [req trace-1]"


def test_text_line_without_a_request_has_no_id_and_short_level_names() -> None:
    record = _record("store unreachable: NOT_SERVING (%s)", "timeout", level=logging.WARNING)
    assert TextFormatter("tracking_svc").format(record) == (
        f"{_clock()} WARN  tracking_svc     store unreachable: NOT_SERVING (timeout)"
    )


def test_text_exception_and_further_lines_follow_the_event_indented(request_id: str) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record(
            "unhandled error in %s\nsecond line", "GET /x", level=logging.ERROR, exc_info=True
        )
    first, *rest = TextFormatter("gateway").format(record).split("\n")
    assert first == f"{_clock()} ERROR gateway          unhandled error in GET /x  [req 5f2c0a9e…]"
    assert rest[0] == "    second line"
    assert rest[1] == "    Traceback (most recent call last):"
    assert rest[-1] == "    RuntimeError: boom"
    assert all(line.startswith("    ") for line in rest)


# configure_logging


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers and level: put
    pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    grpc_aio = logging.getLogger(GRPC_AIO_LOGGER)
    grpc_level = grpc_aio.level
    switches = {name: getattr(logging, name) for name in _SWITCHES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    grpc_aio.setLevel(grpc_level)
    for name, value in switches.items():
        setattr(logging, name, value)


# What every record gathers unless told not to (the logging HOWTO's
# "Optimization"); configure_logging turns off what no format writes.
_SWITCHES = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


def _configured(
    monkeypatch: pytest.MonkeyPatch,
    stderr: io.StringIO,
    level: str = "INFO",
    fmt: LogFormat | None = None,
) -> io.StringIO:
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("experiments_svc", level, fmt)
    return stderr


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize(
    ("stderr", "fmt", "json_lines"),
    [
        (io.StringIO(), "auto", True),  # a pipe, a file, a container's log
        (_Terminal(), "auto", False),
        (_Terminal(), "json", True),
        (io.StringIO(), "text", False),
    ],
    ids=["auto-pipe", "auto-terminal", "json-terminal", "text-pipe"],
)
def test_the_format_follows_log_format_and_the_terminal(
    monkeypatch: pytest.MonkeyPatch, stderr: io.StringIO, fmt: LogFormat, json_lines: bool
) -> None:
    out = _configured(monkeypatch, stderr, fmt=fmt)
    logging.getLogger("research.server").info("listening on %s", "127.0.0.1:50051")
    line = out.getvalue()
    assert line.startswith("{") is json_lines, line
    assert "listening on 127.0.0.1:50051" in line


@pytest.mark.usefixtures("root_logging")
def test_records_gather_only_what_the_lines_show(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _configured(monkeypatch, io.StringIO(), fmt="json")
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("research.rpc")

    def keep(record: logging.LogRecord) -> bool:
        records.append(record)
        return True

    monkeypatch.setattr(logger, "filters", [keep])
    token = REQUEST_ID.set(REQUEST)
    try:
        logger.info("%s %s", "/x.v1.X/Get", "OK", extra={"code": "OK", "duration_ms": 0.5})
    finally:
        REQUEST_ID.reset(token)
    (record,) = records
    # Not where the call was made, nor the thread's or the process's name...
    assert (record.funcName, record.lineno, record.threadName, record.processName) == (
        "(unknown function)",
        0,
        None,
        None,
    )
    # ...none of which the line held.
    line = json.loads(out.getvalue())
    fields = ["ts", "level", "service", "logger", "msg", "request_id", "code", "duration_ms"]
    assert list(line) == fields
    assert (line["msg"], line["request_id"]) == ("/x.v1.X/Get OK", REQUEST)
    assert line["duration_ms"] == 0.5


@pytest.mark.usefixtures("root_logging")
def test_without_a_format_log_format_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "text")
    out = _configured(monkeypatch, io.StringIO())
    logging.getLogger("research.server").info("stopped")
    assert out.getvalue().endswith(" INFO  experiments_svc  stopped\n")


@pytest.mark.usefixtures("root_logging")
def test_a_malformed_log_format_in_the_environment_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")
    out = io.StringIO()
    with pytest.raises(SystemExit) as stopped:
        _configured(monkeypatch, out)
    assert stopped.value.code == 2
    assert out.getvalue() == (
        "experiments_svc: configuration error: "
        "LOG_FORMAT must be json, text or empty (text on a terminal), got 'xml'\n"
    )


def _through_root(*records: logging.LogRecord) -> None:
    # Handed to the root logger's handlers directly: importing MLflow (the
    # test suite does) gives the `mlflow` and `alembic` loggers handlers of
    # their own and stops them propagating, which the services avoid with
    # MLFLOW_CONFIGURE_LOGGING=false. What is tested is the handler's filter.
    root = logging.getLogger()
    for record in records:
        root.handle(record)


@pytest.mark.usefixtures("root_logging")
def test_third_party_set_up_chatter_is_below_info(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _configured(monkeypatch, io.StringIO(), fmt="json")
    _through_root(
        _record("setup plugin %s", "alembic.ext", logger="alembic.runtime.plugins"),
        _record("Context impl SQLiteImpl.", logger="alembic.runtime.migration"),
        _record("Updating database tables", logger="mlflow.store.db.utils"),
        _record("Waiting for application startup.", logger="uvicorn.error"),
        # Their warnings still count; a logger that only starts the same stays.
        _record("Invalid HTTP request received.", level=logging.WARNING, logger="uvicorn.error"),
        _record("not alembic", logger="alembicx"),
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["level"], line["msg"]) for line in lines] == [
        ("warning", "Invalid HTTP request received."),
        ("info", "not alembic"),
    ]


@pytest.mark.usefixtures("root_logging")
def test_at_debug_the_chatter_shows_labelled_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _configured(monkeypatch, io.StringIO(), level="DEBUG", fmt="json")
    _through_root(_record("setup plugin %s", "alembic.ext", logger="alembic.runtime.plugins"))
    [line] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (line["level"], line["logger"], line["msg"]) == (
        "debug",
        "alembic.runtime.plugins",
        "setup plugin alembic.ext",
    )


@pytest.mark.usefixtures("root_logging")
def test_grpc_aio_debug_lines_are_never_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # grpc/grpc#43421: grpc.aio logs DEBUG under its global lock.
    out = _configured(monkeypatch, io.StringIO(), level="DEBUG", fmt="text")
    logging.getLogger(GRPC_AIO_LOGGER).debug("Loaded running loop")
    logging.getLogger("research.rpc").debug("kept")
    assert not logging.getLogger(GRPC_AIO_LOGGER).isEnabledFor(logging.DEBUG)
    assert "Loaded running loop" not in out.getvalue()
    assert "kept" in out.getvalue()
