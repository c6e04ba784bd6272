"""The main job as a newcomer runs it: all three processes on their embedded
defaults in a fresh folder, an MLflow run imported end to end across the
processes through the gateway, and Ctrl-C stopping everything cleanly.

One test drives `scripts/run_all.py` (what `make run` executes) and checks
its exit code; another runs the README's command, `make run`, itself; one
runs the job on a terminal, as a person does, and reads what it says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
from mlflow.tracking import MlflowClient

from testbed.ports import free_port
from tests.experiments_svc.conftest import STRATEGY
from tracking_svc.lineage import Lineage, start_run

ROOT = Path(__file__).resolve().parents[2]
RUN_ALL = ROOT / "scripts" / "run_all.py"
READY_MARKER = "Ctrl-C stops everything"
GRPCURL = Path(sys.executable).parent / "grpcurl"
# The request id of the import: it must reach the log of every process.
TRACE_ID = "trace-import-0001"


def processes_logging(lines: list[str], request_id: str) -> set[str]:
    """The services whose JSON log lines carry `request_id`."""
    services = set()
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("request_id") == request_id:
            services.add(str(record.get("service")))
    return services


def ready_block(lines: list[str], addresses: Mapping[str, str]) -> list[str]:
    """The job's closing block, which must end what it printed (up to the
    ready marker): where each process listens, the first things to try, and
    how to stop. Returns the commands it offers, as printed."""
    lines = [line.rstrip("\r\n") for line in lines]
    start = len(lines) - 1 - lines[::-1].index("ready:")
    experiments = addresses["EXPERIMENTS_ADDR"]
    tracking = addresses["TRACKING_ADDR"]
    gateway = addresses["GATEWAY_ADDR"]
    block = lines[start:]
    assert block[:5] == [
        "ready:",
        f"  experiments_svc  grpc://{experiments}",
        f"  tracking_svc     grpc://{tracking}",
        f"  gateway          http://{gateway}",
        "",
    ], block
    assert block[5] == "first things to try, in another terminal:", block
    commands = block[6:9]
    assert [command.split("  #")[0].rstrip() for command in commands] == [
        f"  curl http://{gateway}/api/v1/experiments",
        f"  curl http://{gateway}/api/v1/tracking/runs",
        f"  {GRPCURL} -plaintext {experiments} list",
    ], block
    assert block[9:] == [
        f"and in a browser: http://{gateway}/console (the research console)",
        f'                  http://{gateway}/docs (the HTTP API; "Try it out" calls it)',
        "",
        "Ctrl-C stops everything.",
    ], block
    return [command.strip() for command in commands]


def readiness_probes_logged(lines: list[str]) -> list[str]:
    """Lines logging a request to a probe path at INFO, in either format."""
    probes = [line for line in lines if "/readyz" in line or "/healthz" in line]
    return [line for line in probes if '"level": "info"' in line or " INFO " in line]


async def _read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"the job ended before printing {marker!r}: {''.join(seen)}")
        seen.append(line.decode(errors="replace"))
        if marker in seen[-1]:
            return


def _addresses() -> dict[str, str]:
    return {
        "EXPERIMENTS_ADDR": f"127.0.0.1:{free_port()}",
        "TRACKING_ADDR": f"127.0.0.1:{free_port()}",
        "GATEWAY_ADDR": f"127.0.0.1:{free_port()}",
    }


def _environment(extra: Mapping[str, str]) -> dict[str, str]:
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return {**base, **extra}


async def start_job(
    folder: Path, addresses: Mapping[str, str], *options: str
) -> asyncio.subprocess.Process:
    """`scripts/run_all.py [options]` started in `folder` on `addresses`,
    its stderr (where it reports) piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUN_ALL),
        *options,
        cwd=folder,
        env=_environment(addresses),
        stderr=asyncio.subprocess.PIPE,
    )


async def stop_job(job: asyncio.subprocess.Process, *, group: bool = False) -> None:
    """After a failure: SIGTERM, so that the job stops the processes it
    started (each in a session of its own: a SIGKILL to the job would leave
    them running), and SIGKILL if it does not end. `group`: the job leads
    its process group (make and the job under it)."""
    if job.returncode is not None:
        return

    def send(signum: int) -> None:
        if group:
            os.killpg(job.pid, signum)
        else:
            job.send_signal(signum)

    send(signal.SIGTERM)
    try:
        await asyncio.wait_for(job.wait(), 30)
    except TimeoutError:
        send(signal.SIGKILL)
        await job.wait()


async def _one_request_per_service(gateway: str, data: Path) -> None:
    """Through the gateway: readiness, an experiment created, and an MLflow
    run (logged into the store the job made) imported across the services."""
    async with httpx.AsyncClient(base_url=f"http://{gateway}", timeout=15) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["upstreams"] == {"experiments": "SERVING", "tracking": "SERVING"}

        created = await http.post("/api/v1/experiments", json={"strategy_id": STRATEGY})
        assert created.status_code == 201, created.text

        client = MlflowClient(tracking_uri=f"sqlite:///{data / 'mlflow.db'}")
        default = client.get_experiment_by_name("hedge-fund-research")
        assert default is not None
        run = start_run(
            client, default.experiment_id, Lineage(strategy_id=STRATEGY, run_type="backtest")
        )
        client.log_metric(run.info.run_id, "oos_sharpe", 1.1)

        runs = await http.get("/api/v1/tracking/runs", params={"run_type": "backtest"})
        assert runs.status_code == 200, runs.text
        assert [r["run_id"] for r in runs.json()["runs"]] == [run.info.run_id]

        imported = await http.post(
            "/api/v1/experiments/import",
            json={"mlflow_run_id": run.info.run_id},
            headers={"X-Request-Id": TRACE_ID},
        )
        assert imported.status_code == 201, imported.text
        assert imported.headers["x-request-id"] == TRACE_ID
        assert imported.json()["strategy_id"] == STRATEGY
        assert imported.json()["metrics"] == {"oos_sharpe": 1.1}


async def test_the_main_job_serves_all_three_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    addresses = _addresses()
    job = await start_job(tmp_path, addresses)
    assert job.stderr is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(_read_until(job.stderr, READY_MARKER, seen), 90)
        printed = "".join(seen)
        assert f"grpc://{addresses['EXPERIMENTS_ADDR']}" in printed
        assert f"grpc://{addresses['TRACKING_ADDR']}" in printed
        assert f"http://{addresses['GATEWAY_ADDR']}" in printed
        # The job's own waiting logged nothing; it ended with its block.
        assert readiness_probes_logged(seen) == [], printed
        ready_block(seen, addresses)
        # Not a terminal: every line of the processes is JSON, as deployed.
        assert all(line.startswith("{") for line in seen[: seen.index("ready:\n") - 1]), printed
        # The services log to the same pipe: keep reading so it never fills.
        drain = asyncio.ensure_future(_read_until(job.stderr, "\0never\0", seen))

        await _one_request_per_service(addresses["GATEWAY_ADDR"], tmp_path / ".data")

        job.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(job.wait(), 30) == 0
        await asyncio.gather(drain, return_exceptions=True)
        # One request id followed the import through all three processes.
        assert processes_logging(seen, TRACE_ID) == {"gateway", "experiments_svc", "tracking_svc"}
    finally:
        await stop_job(job)


async def test_make_run_as_the_readme_gives_it(tmp_path: Path) -> None:
    """`make run` from the checkout, with the data redirected into tmp_path;
    Ctrl-C (SIGINT to the terminal's process group) stops every process."""
    addresses = _addresses()
    data = tmp_path / ".data"
    data.mkdir()
    env = _environment(
        {
            **addresses,
            "DATABASE_URL": f"sqlite:///{data / 'experiments.db'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
            "MLFLOW_ARTIFACT_LOCATION": (data / "mlartifacts").as_uri(),
        }
    )
    job = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "run",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as in a terminal
    )
    assert job.stderr is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(_read_until(job.stderr, READY_MARKER, seen), 120)
        drain = asyncio.ensure_future(_read_until(job.stderr, "\0never\0", seen))

        await _one_request_per_service(addresses["GATEWAY_ADDR"], data)

        os.killpg(job.pid, signal.SIGINT)
        await asyncio.wait_for(job.wait(), 30)
        await asyncio.gather(drain, return_exceptions=True)
        # make itself reports the interrupt; what matters is that the job
        # drained and every process let go of its port.
        printed = "".join(seen)
        assert printed.count('"msg": "stopped"') == 3, printed[-3000:]
        for address in addresses.values():
            host, _, port = address.rpartition(":")
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                continue
            writer.close()
            raise AssertionError(f"{address} still accepts connections after Ctrl-C")
    finally:
        await stop_job(job, group=True)


async def test_an_address_already_in_use_stops_the_job_before_it_starts(tmp_path: Path) -> None:
    """With another server on a component's port the job refuses to start,
    naming the address and its variable, instead of reporting that other
    server as ready."""
    addresses = _addresses()
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        taken = f"127.0.0.1:{squatter.getsockname()[1]}"
        addresses["TRACKING_ADDR"] = taken
        job = await start_job(tmp_path, addresses)
        _, stderr = await asyncio.wait_for(job.communicate(), 30)
    assert job.returncode == 2
    assert stderr.decode().splitlines() == [
        f"run: {taken} (TRACKING_ADDR) is not free: Address already in use; "
        "stop what listens there or set TRACKING_ADDR"
    ]
    assert not (tmp_path / ".data").exists()


# A line of the text log format: time, level, process.
TEXT_LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO |WARN |ERROR|CRIT ) "
    r"(experiments_svc|tracking_svc|gateway)\s+\S"
)


async def _terminal(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream reading the controlling side of a pseudo-terminal."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


async def _shell(command: str, folder: Path) -> str:
    """`command` as pasted into bash in `folder`; its standard output (curl
    writes its progress meter to stderr when stdout is not a terminal)."""
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(shell.communicate(), 30)
    assert shell.returncode == 0, f"{command}: {out.decode()} {err.decode()}"
    return out.decode()


async def test_on_a_terminal_the_job_speaks_to_people(tmp_path: Path) -> None:
    """`make run` in a terminal: readable text lines from the three
    processes, none about the job's own readiness probes, third-party
    set-up chatter left out, and at the end where everything listens and
    commands that work when pasted as printed."""
    addresses = _addresses()
    controller, terminal = pty.openpty()
    job = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUN_ALL),
        cwd=tmp_path,
        env=_environment(addresses),  # LOG_FORMAT unset: the job chooses
        stdin=asyncio.subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    stream, transport = await _terminal(controller)
    seen: list[str] = []
    try:
        await asyncio.wait_for(_read_until(stream, READY_MARKER, seen), 90)
        # A terminal ends its lines with CR LF.
        lines = [line.rstrip("\r\n") + "\n" for line in seen]
        printed = "".join(lines)
        commands = ready_block(lines, addresses)
        logged = lines[: lines.index("ready:\n") - 1]
        assert logged, printed
        assert [line for line in logged if not TEXT_LINE.match(line)] == [], printed
        assert readiness_probes_logged(lines) == [], printed
        for chatter in ("setup plugin", "Started server process", "color_message", "Context impl"):
            assert chatter not in printed
        assert "INFO  experiments_svc  database schema upgraded from empty to " in printed

        # Nothing follows the block while nobody calls: the probes stopped.
        after: list[str] = []
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_read_until(stream, "\0never\0", after), 1.5)
        assert [line.strip() for line in after] == [""], after

        drain = asyncio.ensure_future(_read_until(stream, "\0never\0", after))
        experiments, runs, services = [await _shell(c, tmp_path) for c in commands]
        assert json.loads(experiments) == []
        assert json.loads(runs)["runs"] == []
        assert "research.experiments.v1.ExperimentService" in services.split()
        gateway = addresses["GATEWAY_ADDR"]
        assert (await _shell(f"curl -sf http://{gateway}/docs", tmp_path)).strip()
        console = await _shell(f"curl -sf http://{gateway}/console", tmp_path)
        assert "<title>Research console</title>" in console

        job.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(job.wait(), 30) == 0
        await asyncio.gather(drain, return_exceptions=True)
        served = [line.rstrip("\r\n") for line in after]
        # One text line per request, with its status, duration and request id.
        [listed] = [line for line in served if "GET /api/v1/experiments 200" in line]
        assert re.search(r" INFO  gateway +GET /api/v1/experiments 200 [0-9.]+ms  \[req ", listed)
        assert sum(line.endswith("  stopped") for line in served) == 3, served
    finally:
        await stop_job(job)
        transport.close()
