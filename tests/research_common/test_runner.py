"""research_common.runner: the exit codes and one-line messages of every
process's main(), and the drain on SIGTERM, shown with stand-in servers
(tests/*/test_process.py show them on the real processes)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from research_common import runner
from research_common.config import ConfigError, parse_address
from research_common.runner import run_main, serve_until_signalled
from research_common.settings import ProcessSettings, variable


@dataclass(frozen=True, slots=True)
class Settings(ProcessSettings):
    address: str = field(default="127.0.0.1:0", metadata=variable("RUNNER_ADDR", parse_address))


class FakeServer:
    def __init__(self, fails_with: BaseException | None = None) -> None:
        self.port = 4242
        self.events: list[str] = []
        self.started = asyncio.Event()
        self._done = asyncio.Event()
        self._fails_with = fails_with

    async def start(self) -> None:
        self.events.append("start")
        self.started.set()

    async def wait(self) -> None:
        await self._done.wait()

    def end_by_itself(self) -> None:
        self._done.set()

    async def stop(self, grace: float) -> None:
        self.events.append(f"stop {grace}")
        self._done.set()
        if self._fails_with is not None:
            raise self._fails_with


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Calls of configure_logging, which is not run for real: it would
    replace the handlers pytest captures logs with. Nor is the heap frozen:
    that would keep pytest's own garbage cycles alive for the rest of the
    run (test_the_start_up_heap_is_frozen shows the real one)."""
    calls: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        runner, "configure_logging", lambda name, level, fmt: calls.append((name, level, fmt))
    )
    monkeypatch.setattr(runner, "freeze_start_up_heap", lambda: None)
    return calls


def test_a_configuration_error_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], logged: list[tuple[str, str, str]]
) -> None:
    def read() -> Settings:
        raise ConfigError("RUNNER_ADDR must be host:port, got 'x'")

    async def job(settings: Settings) -> None:
        raise AssertionError("not run")

    assert run_main("svc", read, job) == 2
    assert (
        capsys.readouterr().err
        == "svc: configuration error: RUNNER_ADDR must be host:port, got 'x'\n"
    )
    assert logged == []


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            OSError(98, "Address already in use"),
            1,
            "svc: cannot start: OSError: [Errno 98] Address already in use\n",
        ),
        (RuntimeError("Failed to bind"), 1, "svc: cannot start: RuntimeError: Failed to bind\n"),
        (
            ConfigError("DATABASE_URL is not a database URL"),
            2,
            "svc: configuration error: DATABASE_URL is not a database URL\n",
        ),
    ],
)
def test_a_failed_start_is_one_line(
    capsys: pytest.CaptureFixture[str],
    logged: list[tuple[str, str, str]],
    error: Exception,
    code: int,
    line: str,
) -> None:
    async def job(settings: Settings) -> None:
        raise error

    assert run_main("svc", Settings, job) == code
    assert capsys.readouterr().err == line


def test_settings_then_logging_then_set_up_then_the_job(
    logged: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []

    def read() -> Settings:
        order.append("settings")
        return Settings(log_level="DEBUG", log_format="text")

    def prepare(settings: Settings) -> None:
        order.append(f"prepare after logging {logged}")

    async def job(settings: Settings) -> None:
        order.append(f"job {settings.log_level}")

    monkeypatch.setattr(runner, "freeze_start_up_heap", lambda: order.append("freeze"))
    assert run_main("svc", read, job, prepare=prepare) == 0
    assert order == [
        "settings",
        "prepare after logging [('svc', 'DEBUG', 'text')]",
        "freeze",
        "job DEBUG",
    ]


def test_the_start_up_heap_is_frozen_without_its_garbage() -> None:
    """In a process of its own: what is alive at the freeze is out of the
    collector's reach, and a garbage cycle made before it, left in the
    oldest generation, is not frozen with the rest but freed by a full
    collection (its finalizer ran)."""
    script = (
        "import gc, sys\n"
        "from research_common.runner import freeze_start_up_heap\n"
        "freed = []\n"
        "class Cycle:\n"
        "    def __del__(self): freed.append(True)\n"
        "gc.disable()\n"
        "cycle = Cycle(); cycle.me = cycle; del cycle\n"
        # In the oldest generation, where only a full collection reaches it.
        "gc.freeze(); gc.unfreeze()\n"
        "freeze_start_up_heap()\n"
        "print(gc.get_freeze_count() > 10_000, freed)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "True [True]\n"), done.stderr


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


async def test_sigterm_drains_then_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server = FakeServer()
    serving = asyncio.ensure_future(serve_until_signalled(server, 2.5, "127.0.0.1:0"))
    await asyncio.wait_for(server.started.wait(), 5)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 5)
    assert server.events == ["start", "stop 2.5"]
    assert _messages(caplog) == [
        "listening on 127.0.0.1:0 (port 4242)",
        "stopping: draining in-flight calls for up to 2.5 s",
        "stopped",
    ]
    assert caplog.records[0].name == "research.server"
    assert caplog.records[0].port == 4242  # type: ignore[attr-defined]


async def test_a_server_that_stops_by_itself_is_stopped_without_draining(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = FakeServer()
    log = logging.getLogger("gateway")
    serving = asyncio.ensure_future(
        serve_until_signalled(server, 1, "127.0.0.1:0", log=log, in_flight="requests")
    )
    await asyncio.wait_for(server.started.wait(), 5)
    server.end_by_itself()
    await asyncio.wait_for(serving, 5)
    assert server.events == ["start", "stop 1"]
    assert _messages(caplog) == ["listening on 127.0.0.1:0 (port 4242)", "stopped"]
    assert {record.name for record in caplog.records} == {"gateway"}


async def test_what_stopped_the_server_is_raised(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer(fails_with=OSError("the socket went away"))
    serving = asyncio.ensure_future(serve_until_signalled(server, 1, "127.0.0.1:0"))
    await asyncio.wait_for(server.started.wait(), 5)
    server.end_by_itself()
    with pytest.raises(OSError, match="the socket went away"):
        await asyncio.wait_for(serving, 5)
    assert "stopped" not in _messages(caplog)
