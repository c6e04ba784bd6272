"""Logging for machines and for people. Every event carries the request id
of the call being handled (CONTRACT §4: the id is in every log line).

- JSON: one object per line, what log collectors and the tests parse; the
  default when stderr is not a terminal (a container, a pipe, a file).
- Text: one short line per event, for a person watching a terminal:
  `12:03:04.123 INFO  gateway           GET /api/v1/experiments 200 3.1ms  [req 5f2c0a9e…]`

`LOG_FORMAT` (research_common.config.log_format) chooses; empty means text
on a terminal and JSON otherwise.

Whatever the format, third-party libraries' routine INFO lines (Alembic
setting up its plugins, MLflow its tables, uvicorn announcing each start-up
step) are demoted to DEBUG: they say nothing the services do not say
themselves, and buried the lines that matter."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache

from research_common.config import ConfigError, LogFormat, env_log_format

# Set by the interceptor for the duration of a call; asyncio copies context
# into the tasks a handler starts, so their lines carry the id too.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}
# Extra fields never written: uvicorn attaches `color_message`, the message
# again with ANSI colour codes, to some of its records for its own formatter.
_DROPPED = frozenset({"color_message"})

# Loggers whose INFO records are routine set-up chatter, written as DEBUG.
# Alembic announces seven plugins and its dialect settings before every
# migration (experiments_svc/migrate.py says in one line what was migrated);
# MLflow narrates creating and updating its store's tables; uvicorn narrates
# each start-up and shutdown step, and the gateway already logs "listening
# on" and "stopped". Their warnings and errors are untouched.
_CHATTER = ("alembic", "mlflow.store.db.utils", "uvicorn.error")

# Wide enough for the longest service name, so that the interleaved lines of
# the three processes of `make run` keep their messages in one column.
_SERVICE_WIDTH = len("experiments_svc")
# Generated request ids are 32 hex digits; the first 8 are enough to find a
# call's other lines with grep. Ids of up to 12 characters (a client's own,
# such as "req-77") stay whole: cutting them would save nothing.
_SHORT_ID = 8
_SHORT_LEVELS = {"WARNING": "WARN", "CRITICAL": "CRIT"}
# Extra fields a person does not need on the line: the route template
# repeats the path already in the message.
_TEXT_HIDDEN = frozenset({"route"})
# Extra fields shown even when the message happens to contain their value:
# a token named "experiments" is still who called.
_TEXT_ALWAYS = frozenset({"actor"})


# One encoder for every line: json.dumps with `default` builds a new one per
# call, 2.3 of the 5.5 µs it took to write an access line's object.
_JSON = json.JSONEncoder(default=str)


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRS and key not in _DROPPED
    }


def utc_milliseconds(created: float) -> str:
    """`created` (seconds since the epoch) as
    `datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`
    writes it, with the text up to the second made once a second: 2-3 us
    instead of 4.5-6 (BENCHMARKS.md, "Issue 18, sixth round")."""
    # Rounded to the microsecond first, as datetime rounds a float (half to
    # even, carrying into the next second), then cut to the millisecond.
    fraction, whole = math.modf(created)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:  # before 1970: modf keeps the sign
        whole, micros = whole - 1, micros + 1_000_000
    return f"{_utc_second(int(whole))}.{micros // 1000:03d}+00:00"


@lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, service, logger,
    message, request id, the record's `extra` fields and any exception."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": utc_milliseconds(record.created),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": REQUEST_ID.get(),
        }
        line.update(_extra_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _JSON.encode(line)


class TextFormatter(logging.Formatter):
    """Formats a record as one short line: local time, level, service,
    message, the `extra` fields the message does not already show, and the
    request id shortened; an exception's traceback follows, indented."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        first, *more = message.splitlines() or [""]
        moment = self.formatTime(record, "%H:%M:%S")
        level = _SHORT_LEVELS.get(record.levelname, record.levelname)
        head = f"{moment}.{int(record.msecs):03d} {level:<5} {self._service:<{_SERVICE_WIDTH}} "
        line = " ".join([head, first, *_text_fields(message, _extra_fields(record))])
        request_id = REQUEST_ID.get()
        if request_id:
            line += f"  [req {_shorten(request_id)}]"
        # What does not fit on the line (the rest of a multi-line message, a
        # traceback) follows it, indented, so that the eye finds where the
        # next event starts.
        if record.exc_info:
            more.extend(self.formatException(record.exc_info).splitlines())
        if record.stack_info:
            more.extend(self.formatStack(record.stack_info).splitlines())
        return "\n".join([line, *(f"    {text}" for text in more)])


def _text_fields(message: str, fields: dict[str, object]) -> list[str]:
    """`key=value` for each field worth reading next to `message`."""
    shown = []
    for key, value in fields.items():
        if key in _TEXT_HIDDEN or value is None:
            continue
        if key == "duration_ms" and isinstance(value, int | float):
            shown.append(f"{value:.1f}ms" if value >= 1 else f"{value:.2f}ms")
        # Not a status, rpc or port the message shows already; who called, always.
        elif key in _TEXT_ALWAYS or str(value) not in message:
            shown.append(f"{key}={value}")
    return shown


def _shorten(request_id: str) -> str:
    if len(request_id) <= _SHORT_ID + 4:
        return request_id
    return request_id[:_SHORT_ID] + "…"


class _DemoteChatter(logging.Filter):
    """Rewrites the INFO records of `_CHATTER` loggers as DEBUG, and drops
    them when the handler writes only `level` and above. A handler filter,
    not logger levels: it runs after the loggers' level checks, and with
    LOG_LEVEL=DEBUG the lines appear, labelled as what they are."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_chatter(record.name):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self._level


# The logger of grpc's Cython layer (grpc.aio's loop and engine set-up).
GRPC_AIO_LOGGER = "grpc._cython.cygrpc"


@lru_cache(maxsize=1024)
def _is_chatter(logger: str) -> bool:
    # Asked of every INFO record; loggers are few and named in code, and
    # the cache bounds what a stream of made-up names could hold.
    return any(logger == name or logger.startswith(f"{name}.") for name in _CHATTER)


def _stderr_is_terminal() -> bool:
    # None when Python runs without a console (pythonw); then nobody reads.
    return sys.stderr is not None and sys.stderr.isatty()


def _formatter(service: str, log_format: LogFormat) -> logging.Formatter:
    if log_format == "text" or (log_format == "auto" and _stderr_is_terminal()):
        return TextFormatter(service)
    return JsonFormatter(service)


def configure_logging(service: str, level: str, log_format: LogFormat | None = None) -> None:
    """Send every logger's records to stderr at `level`, as JSON lines or as
    text (`log_format`, from `env_log_format`; "auto" picks text when stderr
    is a terminal).

    Without `log_format`, LOG_FORMAT is read here: for callers that do not
    yet read it with their other settings. A malformed value then ends the
    process the way a malformed setting does, with one line and exit code 2."""
    if log_format is None:
        try:
            log_format = env_log_format(os.environ)
        except ConfigError as error:
            print(f"{service}: configuration error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
    # What neither format writes is not gathered for every record: the
    # caller's file, line and function (a walk up the stack), the thread's
    # and the process's names, as the logging HOWTO's "Optimization" section
    # describes: a fifth of a log line's cost (BENCHMARKS.md, "Issue 18,
    # sixth round"). A record asked for its stack (`stack_info=True`) gets
    # none now either; nothing here asks.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(service, log_format))
    root = logging.getLogger()
    root.setLevel(level)
    handler.addFilter(_DemoteChatter(root.level))
    root.handlers[:] = [handler]
    # grpc.aio logs at DEBUG while it holds its global lock, and a garbage
    # collection inside any handler can need that lock: a deadlock
    # (grpc/grpc#43421, seen here as a hung test). Its DEBUG lines are
    # never written, even with LOG_LEVEL=DEBUG.
    logging.getLogger(GRPC_AIO_LOGGER).setLevel(max(root.level, logging.INFO))
