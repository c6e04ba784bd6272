"""The container deployment (Dockerfile, .dockerignore, docker-compose.yml,
deploy/postgres-init.sh) checked without a Docker engine: the compose file is
read the way Compose reads it (YAML with merge keys, `${VAR:-default}` taken at
its default) and held against the services' own settings; the MLflow server
and the init script are run for real."""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import graphlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from sqlalchemy.engine import make_url

from experiments_svc.config import Settings as ExperimentsSettings
from gateway.config import Settings as GatewaySettings
from research_common import healthcheck
from testbed.mlflow_server import MlflowServer
from tests.fixtures.postgres import ThrowawayCluster, create_database, drop_database, postgres_url
from tracking_svc.config import Settings as TrackingSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_SCRIPT = ROOT / "deploy" / "postgres-init.sh"

# Our processes in the compose file, each with the settings it reads.
SETTINGS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "migrate": ExperimentsSettings.from_env,
    "experiments_svc": ExperimentsSettings.from_env,
    "tracking_svc": TrackingSettings.from_env,
    "gateway": GatewaySettings.from_env,
}
PROJECT_IMAGE_SERVICES = {"mlflow", *SETTINGS}
ALL_SERVICES = {"postgres", "pgbouncer", *PROJECT_IMAGE_SERVICES}
# The pooler's image, pinned; it writes pgbouncer.ini from the environment.
PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.25.1-p0"
# Where the image's PgBouncer listens unless LISTEN_PORT moves it.
PGBOUNCER_PORT = 5432
ONE_SHOT = {"migrate"}
LONG_RUNNING = ALL_SERVICES - ONE_SHOT

# ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR, and $$ (a literal $).
_SUBSTITUTION = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_]\w*)(?P<sep>:?-)?(?P<default>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


def _substitute(match: re.Match[str]) -> str:
    if match["dollar"]:
        return "$"
    return match["default"] if match["sep"] else ""


def interpolate(node: Any) -> Any:
    """Compose's interpolation of every string value, each variable unset."""
    if isinstance(node, str):
        return _SUBSTITUTION.sub(_substitute, node)
    if isinstance(node, list):
        return [interpolate(item) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value) for key, value in node.items()}
    return node


def _load_raw() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The compose file as YAML, before interpolation."""
    return _load_raw()


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    """The services, interpolated with every variable at its default."""
    document = interpolate(_load_raw())
    assert isinstance(document["services"], dict)
    return document["services"]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is a mapping"
    for name, value in env.items():
        # Compose wants strings; a bare `false` or `10` is a YAML bool / int.
        assert isinstance(value, str), f"{name}: {value!r} is not a string"
    return env


def command(service: Mapping[str, Any]) -> list[str]:
    argv = service["command"]
    assert isinstance(argv, list), "commands are exec-form lists (no shell)"
    assert all(isinstance(arg, str) for arg in argv)
    return argv


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    dependencies = service.get("depends_on", {})
    assert isinstance(dependencies, dict), "depends_on is a mapping with conditions"
    return {name: spec["condition"] for name, spec in dependencies.items()}


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def settings_of(services: dict[str, dict[str, Any]], name: str) -> Any:
    """The service's settings from its compose environment; every variable
    the compose file sets must be one the service reads."""
    env = RecordingEnv(environment(services[name]))
    settings = SETTINGS[name](env)
    assert set(environment(services[name])) - env.read == set(), f"{name} ignores these"
    return settings


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# The options of the installed `mlflow server`: name -> whether it is a
# switch. Read in a subprocess: importing mlflow.cli here would warn (an error
# in this suite) and load MLflow into a test process that may not want it.
_MLFLOW_OPTIONS = """
import json
from mlflow.cli import server
print(json.dumps({
    option: bool(getattr(param, "is_flag", False))
    for param in server.params
    for option in (*param.opts, *param.secondary_opts)
}))
"""


def python_json(code: str, timeout: float = 120) -> Any:
    """What `code`, run by this Python in a process of its own (so that
    importing MLflow leaves this one as it was), prints as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=True
    )
    return json.loads(result.stdout)


@functools.cache
def mlflow_server_options() -> dict[str, bool]:
    options: dict[str, bool] = python_json(_MLFLOW_OPTIONS, timeout=60)
    return options


def mlflow_flags(argv: list[str]) -> dict[str, str | None]:
    """`mlflow server` options by name (None for a switch), each one that
    the installed MLflow's `server` command defines."""
    switches = mlflow_server_options()
    assert argv[:2] == ["mlflow", "server"]
    flags: dict[str, str | None] = {}
    rest = iter(argv[2:])
    for option in rest:
        assert option in switches, f"`mlflow server` has no option {option}"
        assert option not in flags, f"{option} given twice"
        flags[option] = None if switches[option] else next(rest)
    return flags


def seconds(duration: str) -> float:
    """A Compose duration such as `15s` or `1m30s`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


# --- the compose file ---------------------------------------------------------


def test_the_services_and_volumes(raw: dict[str, Any]) -> None:
    assert set(raw["services"]) == ALL_SERVICES
    assert raw["volumes"] == {"pgdata": None, "mlartifacts": None}
    # Only `x-` extension fields besides the standard top-level keys.
    assert {key for key in raw if not key.startswith("x-")} == {"name", "services", "volumes"}


def test_one_image_for_all_but_postgres_and_pgbouncer(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"] == "postgres:15"
    assert services["pgbouncer"]["image"] == PGBOUNCER_IMAGE
    for name in ("postgres", "pgbouncer"):
        assert "build" not in services[name], name
    images = {services[name]["image"] for name in PROJECT_IMAGE_SERVICES}
    assert images == {"research-backbone:latest"}
    for name in PROJECT_IMAGE_SERVICES:
        assert services[name]["build"] == {"context": "."}, name
        assert services[name]["init"] is True, name


def test_commands(services: dict[str, dict[str, Any]]) -> None:
    assert command(services["migrate"]) == ["python", "-m", "experiments_svc", "migrate"]
    assert command(services["experiments_svc"]) == ["python", "-m", "experiments_svc"]
    assert command(services["tracking_svc"]) == ["python", "-m", "tracking_svc"]
    assert command(services["gateway"]) == ["python", "-m", "gateway"]
    for module in ("experiments_svc", "tracking_svc", "gateway"):
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module
    assert "command" not in services["postgres"]
    assert "command" not in services["pgbouncer"]


def test_migrate_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from experiments_svc.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["migrate", "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m experiments_svc migrate" in capsys.readouterr().out


def test_mlflow_server_flags(services: dict[str, dict[str, Any]]) -> None:
    assert mlflow_flags(command(services["mlflow"])) == {
        "--backend-store-uri": "postgresql+psycopg2://mlflow:mlflow@postgres:5432/mlflow",
        "--artifacts-destination": "/mlartifacts",
        "--serve-artifacts": None,
        "--host": "0.0.0.0",
        "--port": "5000",
        "--workers": "2",
        "--allowed-hosts": "mlflow:5000,localhost:5000,127.0.0.1:5000",
    }
    assert environment(services["mlflow"]) == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def test_only_the_gateway_publishes_a_port(services: dict[str, dict[str, Any]]) -> None:
    published = {name: spec["ports"] for name, spec in services.items() if "ports" in spec}
    assert published == {"gateway": ["8080:8080"]}
    for name, spec in services.items():
        assert "network_mode" not in spec, name


def test_every_variable_set_is_read_and_the_addresses_agree(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the embedded defaults resolve paths
    migrate: ExperimentsSettings = settings_of(services, "migrate")
    experiments: ExperimentsSettings = settings_of(services, "experiments_svc")
    tracking: TrackingSettings = settings_of(services, "tracking_svc")
    gateway: GatewaySettings = settings_of(services, "gateway")

    # Each service listens on all interfaces of its container...
    assert experiments.address == "0.0.0.0:50051"
    assert tracking.address == "0.0.0.0:50052"
    assert gateway.address == "0.0.0.0:8080"
    # ...and is dialled by its service name on that same port.
    assert gateway.experiments_address == "experiments_svc:50051"
    assert gateway.tracking_address == "tracking_svc:50052"
    assert experiments.tracking_address == "tracking_svc:50052"
    for dialled, listener in [
        (gateway.experiments_address, ("experiments_svc", experiments.address)),
        (gateway.tracking_address, ("tracking_svc", tracking.address)),
        (experiments.tracking_address, ("tracking_svc", tracking.address)),
    ]:
        assert split_address(dialled) == (listener[0], split_address(listener[1])[1])
        assert listener[0] in services
    gateway_port = split_address(gateway.address)[1]
    assert services["gateway"]["ports"] == [f"{gateway_port}:{gateway_port}"]

    # The database: migrated by `migrate` straight on PostgreSQL, used by
    # experiments_svc through PgBouncer, both as the role that
    # deploy/postgres-init.sh makes its owner.
    assert experiments.auto_migrate is False
    url = make_url(migrate.database_url)
    postgres_env = environment(services["postgres"])
    assert (url.drivername, url.host, url.port, url.database, url.username) == (
        "postgresql+psycopg2",
        "postgres",
        5432,
        "experiments",
        "experiments",
    )
    assert url.password == postgres_env["EXPERIMENTS_DB_PASSWORD"]
    assert make_url(experiments.database_url) == url.set(host="pgbouncer", port=PGBOUNCER_PORT)
    assert experiments.db_transaction_pooling is True
    assert migrate.db_transaction_pooling is False

    # The tracking server, as tracking_svc dials it and MLflow serves it.
    flags = mlflow_flags(command(services["mlflow"]))
    assert tracking.tracking_uri == "http://mlflow:5000"
    assert tracking.artifact_location is None  # the server's own artifact root
    assert tracking.experiment_name == "hedge-fund-research"
    assert (flags["--host"], flags["--port"]) == ("0.0.0.0", "5000")
    assert "mlflow:5000" in str(flags["--allowed-hosts"]).split(",")
    mlflow_url = make_url(str(flags["--backend-store-uri"]))
    assert (mlflow_url.drivername, mlflow_url.host, mlflow_url.port) == (
        "postgresql+psycopg2",
        "postgres",
        5432,
    )
    assert (mlflow_url.database, mlflow_url.username) == ("mlflow", "mlflow")
    assert mlflow_url.password == postgres_env["MLFLOW_DB_PASSWORD"]

    # The defaults: no token asked, no browser origin allowed, INFO logs.
    for settings in (experiments, tracking, gateway):
        assert not settings.tokens.required
        assert settings.log_level == "INFO"
        assert settings.shutdown_grace == 10.0
        assert not settings.tls.serves_tls
    assert gateway.cors_origins == ()


def test_secrets_and_knobs_come_from_the_environment(raw: dict[str, Any]) -> None:
    services = raw["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == (
        "${POSTGRES_PASSWORD:-postgres}"
    )
    for name in ("experiments_svc", "tracking_svc", "gateway"):
        assert services[name]["environment"]["API_TOKENS"] == "${API_TOKENS:-}", name
    for name in SETTINGS:
        assert services[name]["environment"]["LOG_LEVEL"] == "${LOG_LEVEL:-INFO}", name
    assert services["gateway"]["environment"]["CORS_ORIGINS"] == "${CORS_ORIGINS:-}"
    # No password is written into the file: each is a substitution.
    for name in ("migrate", "experiments_svc"):
        url = services[name]["environment"]["DATABASE_URL"]
        assert ":${EXPERIMENTS_DB_PASSWORD:-experiments}@" in url, name
    assert services["pgbouncer"]["environment"]["DB_PASSWORD"] == (
        "${EXPERIMENTS_DB_PASSWORD:-experiments}"
    )
    assert ":${MLFLOW_DB_PASSWORD:-mlflow}@" in " ".join(services["mlflow"]["command"])


def test_pgbouncer_pools_the_experiments_database_in_transaction_mode(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PgBouncer serves the database experiments_svc names, as its role, from
    the PostgreSQL the migration uses, in the mode DB_TRANSACTION_POOLING is
    for; its port is not published."""
    monkeypatch.chdir(tmp_path)
    pooler = environment(services["pgbouncer"])
    experiments = make_url(settings_of(services, "experiments_svc").database_url)
    migrate = make_url(settings_of(services, "migrate").database_url)
    assert pooler["POOL_MODE"] == "transaction"
    assert "LISTEN_PORT" not in pooler  # the image's default, PGBOUNCER_PORT
    assert (experiments.host, experiments.port) == ("pgbouncer", PGBOUNCER_PORT)
    assert (pooler["DB_HOST"], int(pooler["DB_PORT"])) == (migrate.host, migrate.port)
    assert pooler["DB_HOST"] in services
    assert (pooler["DB_NAME"], pooler["DB_USER"], pooler["DB_PASSWORD"]) == (
        experiments.database,
        experiments.username,
        experiments.password,
    )
    # The password travels as SCRAM, as PostgreSQL's own default asks.
    assert pooler["AUTH_TYPE"] == "scram-sha-256"
    assert int(pooler["DEFAULT_POOL_SIZE"]) > 0
    assert int(pooler["MAX_CLIENT_CONN"]) >= int(pooler["DEFAULT_POOL_SIZE"])
    assert "ports" not in services["pgbouncer"]


def test_every_substitution_has_a_default() -> None:
    text = "\n".join(
        line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    matches = list(_SUBSTITUTION.finditer(text))
    assert matches
    for match in matches:
        assert match["dollar"] or match["sep"] == ":-", f"no default: {match[0]}"


def test_dependencies(services: dict[str, dict[str, Any]]) -> None:
    graph = {name: depends_on(spec) for name, spec in services.items()}
    assert graph == {
        "postgres": {},
        "pgbouncer": {"postgres": "service_healthy"},
        "mlflow": {"postgres": "service_healthy"},
        "migrate": {"postgres": "service_healthy"},
        "experiments_svc": {
            "pgbouncer": "service_healthy",
            "migrate": "service_completed_successfully",
        },
        "tracking_svc": {"mlflow": "service_healthy"},
        "gateway": {"experiments_svc": "service_healthy", "tracking_svc": "service_healthy"},
    }
    for name, dependencies in graph.items():
        for target, condition in dependencies.items():
            assert target in services, f"{name} depends on a missing {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert target in ONE_SHOT
    # No cycle: Compose could not order the start-up otherwise.
    order = list(graphlib.TopologicalSorter(graph).static_order())
    assert order[0] == "postgres"
    assert order[-1] == "gateway"


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    module = ["CMD", "python", "-m", "research_common.healthcheck"]
    assert services["experiments_svc"]["healthcheck"]["test"] == [*module, "127.0.0.1:50051"]
    assert services["tracking_svc"]["healthcheck"]["test"] == [*module, "127.0.0.1:50052"]
    assert services["gateway"]["healthcheck"]["test"] == [
        *module,
        "--http",
        "http://127.0.0.1:8080/readyz",
    ]
    assert services["mlflow"]["healthcheck"]["test"] == [
        *module,
        "--http",
        "http://127.0.0.1:5000/health",
    ]
    # Over TCP, so that the server of the init scripts does not count.
    assert services["postgres"]["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "--host",
        "127.0.0.1",
        "--username",
        "postgres",
        "--dbname",
        "postgres",
    ]
    # Through the pooler, on the port experiments_svc dials.
    assert services["pgbouncer"]["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "--host",
        "127.0.0.1",
        "--port",
        str(PGBOUNCER_PORT),
        "--username",
        "experiments",
        "--dbname",
        "experiments",
    ]
    assert importlib.util.find_spec("research_common.healthcheck") is not None
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert set(check) == {"test", "interval", "timeout", "retries", "start_period"}, name
        # The check gives up before Docker does.
        assert seconds(check["timeout"]) > healthcheck.DEFAULT_TIMEOUT, name
        assert seconds(check["interval"]) >= seconds(check["timeout"]), name
        assert check["retries"] >= 3, name
    assert seconds(services["mlflow"]["healthcheck"]["start_period"]) == 90
    for name in ONE_SHOT:
        assert "healthcheck" not in services[name], name


def test_healthchecks_use_the_ports_the_services_listen_on(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("experiments_svc", "tracking_svc"):
        _, port = split_address(settings_of(services, name).address)
        assert services[name]["healthcheck"]["test"][-1] == f"127.0.0.1:{port}", name
    _, port = split_address(settings_of(services, "gateway").address)
    assert services["gateway"]["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/readyz"
    flags = mlflow_flags(command(services["mlflow"]))
    assert services["mlflow"]["healthcheck"]["test"][-1] == (
        f"http://127.0.0.1:{flags['--port']}/health"
    )


def test_restart_and_stop_grace(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
        assert "stop_grace_period" in services[name], name
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name
    # Docker's SIGKILL comes after the drain that SHUTDOWN_GRACE allows.
    for name in ("experiments_svc", "tracking_svc", "gateway"):
        grace = settings_of(services, name).shutdown_grace
        assert seconds(services[name]["stop_grace_period"]) == grace + 5, name


def test_volumes(services: dict[str, dict[str, Any]]) -> None:
    mounts = {name: spec["volumes"] for name, spec in services.items() if "volumes" in spec}
    assert mounts == {
        "postgres": [
            "pgdata:/var/lib/postgresql/data",
            "./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/10-databases.sh:ro",
        ],
        "mlflow": ["mlartifacts:/mlartifacts"],
    }
    declared = set(_load_raw()["volumes"])
    used = set()
    for volumes in mounts.values():
        for volume in volumes:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).resolve().is_file(), f"bind mount of a missing {source}"
            else:
                used.add(source)
    assert used == declared
    # MLflow keeps its artifacts on the volume.
    flags = mlflow_flags(command(services["mlflow"]))
    assert flags["--artifacts-destination"] == "/mlartifacts"


def test_init_script_makes_the_databases_the_urls_name(
    services: dict[str, dict[str, Any]],
) -> None:
    script = INIT_SCRIPT.read_text()
    created = re.findall(r"^CREATE DATABASE (\w+) OWNER (\w+);$", script, re.MULTILINE)
    assert created == [("experiments", "experiments"), ("mlflow", "mlflow")]
    postgres_env = environment(services["postgres"])
    for variable in ("EXPERIMENTS_DB_PASSWORD", "MLFLOW_DB_PASSWORD"):
        assert f'"${{{variable}:?' in script
        assert variable in postgres_env
    assert os.access(INIT_SCRIPT, os.X_OK)


# --- Dockerfile and .dockerignore ------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions (continuation lines joined), by stage."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    stages: list[list[Instruction]] = [[]]
    for text in logical:
        keyword, _, arguments = text.strip().partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    assert [i.keyword for i in stages[0]] == ["ARG"], "only ARGs before the first FROM"
    return stages[1:]


def copy_sources(instruction: Instruction) -> list[str] | None:
    """The build-context paths a COPY takes; None for a copy between stages."""
    if instruction.arguments.startswith("["):
        words = json.loads(instruction.arguments)
    else:
        words = shlex.split(instruction.arguments)
    options = [word for word in words if word.startswith("--")]
    if any(option.startswith("--from=") for option in options):
        return None
    paths = [word for word in words if not word.startswith("--")]
    assert len(paths) >= 2, instruction
    return paths[:-1]


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    stages = dockerfile_stages()
    assert [stage[0].arguments for stage in stages] == [
        "${PYTHON_IMAGE} AS builder",
        "${PYTHON_IMAGE} AS runtime",
    ]
    final = stages[-1]
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users == ["10001:10001"]
    assert users[-1].split(":")[0] not in {"root", "0"}
    # The user exists in the image, with that uid.
    assert any("useradd --system --uid 10001" in i.arguments for i in final if i.keyword == "RUN")
    env = {
        key: value
        for i in final
        if i.keyword == "ENV"
        for key, _, value in (word.partition("=") for word in shlex.split(i.arguments))
    }
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # The runtime takes the builder's virtualenv and nothing of the context.
    copies = [i for i in final if i.keyword == "COPY"]
    assert [i.arguments for i in copies] == ["--from=builder /opt/venv /opt/venv"]
    # The MLflow artifact directory belongs to that user, so that a new named
    # volume mounted there does too.
    assert any(
        "/mlartifacts" in i.arguments and "chown app:app" in i.arguments
        for i in final
        if i.keyword == "RUN"
    )


def test_stubs_are_generated_at_build() -> None:
    builder = dockerfile_stages()[0]
    keywords = [(i.keyword, i.arguments) for i in builder]
    generate = [n for n, (kw, args) in enumerate(keywords) if "scripts/gen_protos.py" in args]
    run = [n for n in generate if keywords[n][0] == "RUN"]
    copy = [n for n in generate if keywords[n][0] == "COPY"]
    assert len(run) == 1
    assert len(copy) == 1
    assert keywords[run[0]][1] == "/opt/codegen/bin/python scripts/gen_protos.py"
    # The protos and the script are in the image before the generator runs,
    # and the project is installed after it (so that gen/ is packaged).
    assert keywords.index(("COPY", "protos/ protos/")) < run[0]
    assert copy[0] < run[0]
    install = [n for n, (kw, args) in enumerate(keywords) if "pip install --no-deps ." in args]
    assert len(install) == 1
    assert install[0] > run[0]
    # Generated code never comes from the build context.
    for instruction in builder:
        for source in (instruction.keyword == "COPY" and copy_sources(instruction)) or []:
            assert not source.rstrip("/").startswith("gen"), source


def _excluded(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` (or a folder above it) out."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.strip("/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], pattern[3:]
            ):
                return True
    return False


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    # No exceptions: `_excluded` does not model them.
    assert not any(pattern.startswith("!") for pattern in patterns)
    return patterns


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    copied: list[str] = []
    for stage in dockerfile_stages():
        for instruction in stage:
            if instruction.keyword in {"ADD", "COPY"}:
                assert instruction.keyword == "COPY", "ADD fetches and unpacks; COPY only"
                copied += copy_sources(instruction) or []
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY of a missing {source}"
        assert not _excluded(source, patterns), f".dockerignore leaves out {source}"
    # Every hand-written package the wheel ships is copied in.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    # All but `research`, the generated package.
    packages = {name.rstrip("*") for name in include if name.split(".")[0] != "research"}
    assert packages == {"experiments_svc", "tracking_svc", "gateway", "research_common"}
    assert {f"{package}/" for package in packages} <= set(copied)
    assert {"pyproject.toml", "README.md", "protos/", "scripts/gen_protos.py"} <= set(copied)


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", "gen", ".data", "node_modules", ".git"):
        assert path in patterns, path
        assert _excluded(f"{path}/anything", patterns)
    assert _excluded("experiments_svc/__pycache__/config.cpython-311.pyc", patterns)


def test_the_image_has_a_postgresql_driver_for_mlflow() -> None:
    """`mlflow server` opens its PostgreSQL store with psycopg2, which the
    image installs from the project's dependencies."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("psycopg2-binary")]
    assert pins == ["psycopg2-binary==2.9.13"]
    assert importlib.util.find_spec("psycopg2") is not None


# --- real runs ---------------------------------------------------------------------


class ComposeMlflowServer(MlflowServer):
    """`mlflow server` with the arguments of the compose file's command."""

    def __init__(self, directory: Path, argv: list[str]) -> None:
        super().__init__(directory)
        self.argv = argv

    def command(self) -> list[str]:
        # The console script, as the image's PATH finds it.
        return [str(Path(sys.executable).with_name(self.argv[0])), *self.argv[1:]]


def _get(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


@pytest.mark.postgres
def test_mlflow_server_starts_with_the_compose_command(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose command, with only host, port, database and artifact
    folder swapped for local ones, serves /health over a PostgreSQL store
    (so psycopg2 is installed and every flag is valid) and accepts the Host
    header that tracking_svc sends."""
    argv = command(services["mlflow"])
    for name, value in environment(services["mlflow"]).items():
        monkeypatch.setenv(name, value)
    database = create_database("deploy_mlflow")
    try:
        store = make_url(postgres_url(database)).set(
            drivername=make_url(argv[argv.index("--backend-store-uri") + 1]).drivername
        )
        server = ComposeMlflowServer(tmp_path, argv)
        local = {
            "--backend-store-uri": store.render_as_string(hide_password=False),
            "--artifacts-destination": str(tmp_path / "mlartifacts"),
            "--host": "127.0.0.1",
            "--port": str(server.port),
        }
        for flag, value in local.items():
            argv[argv.index(flag) + 1] = value
        with server:
            assert server.healthy()
            search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
            assert _get(search, "mlflow:5000") == 200, server.log()
            assert _get(search, "elsewhere.example:5000") == 403
    finally:
        drop_database(database)


async def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


@pytest.mark.postgres
def test_init_script_on_a_new_cluster(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """deploy/postgres-init.sh run as the postgres image runs it, on a new
    cluster that checks passwords: each role logs in with the password the
    compose file gives it, and `migrate` builds the schema as `experiments`."""
    cluster = ThrowawayCluster()
    try:
        hba = cluster.base / "data" / "pg_hba.conf"
        hba.write_text("host all experiments,mlflow 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        cluster.start()
        postgres_env = environment(services["postgres"])
        # A password psql must quote; the compose default for the other.
        mlflow_password = 'it\'s "quoted" $HOME'
        env = {
            key: value for key, value in os.environ.items() if not key.startswith(("PG", "POSTG"))
        }
        env |= {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(cluster.port),
            "POSTGRES_USER": postgres_env["POSTGRES_USER"],
            "POSTGRES_DB": postgres_env["POSTGRES_DB"],
            "EXPERIMENTS_DB_PASSWORD": postgres_env["EXPERIMENTS_DB_PASSWORD"],
            "MLFLOW_DB_PASSWORD": mlflow_password,
        }
        result = subprocess.run(
            [str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr

        owners = asyncio.run(
            _query(
                cluster.url,
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"
                " WHERE datname IN ('experiments', 'mlflow') ORDER BY datname",
            )
        )
        assert owners == [("experiments", "experiments"), ("mlflow", "mlflow")]
        mlflow_url = make_url(f"postgresql://127.0.0.1:{cluster.port}/mlflow").set(
            username="mlflow", password=mlflow_password
        )
        assert asyncio.run(
            _query(mlflow_url.render_as_string(hide_password=False), "SELECT current_user")
        ) == [("mlflow",)]
        wrong = mlflow_url.set(password="wrong").render_as_string(hide_password=False)
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(_query(wrong, "SELECT 1"))

        # The migrate service's own URL, pointed at this cluster.
        database_url = make_url(environment(services["migrate"])["DATABASE_URL"]).set(
            host="127.0.0.1", port=cluster.port
        )
        migrate = subprocess.run(
            [sys.executable, *command(services["migrate"])[1:]],
            env={
                "PATH": os.environ["PATH"],
                "DATABASE_URL": database_url.render_as_string(hide_password=False),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        tables = asyncio.run(
            _query(
                f"postgresql://postgres@127.0.0.1:{cluster.port}/experiments",
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
                " ORDER BY tablename",
            )
        )
        assert tables == [
            ("alembic_version", "experiments"),
            ("experiment_revisions", "experiments"),
            ("experiments", "experiments"),
            ("strategy_trials", "experiments"),
        ]
    finally:
        cluster.destroy()
