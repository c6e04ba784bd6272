"""The Kubernetes manifests (deploy/k8s/, CONTRACT §13) checked without a
cluster: every object validates against the Kubernetes schemas offline
(kubernetes-validate, strict), and the manifests are held against the code
they deploy. Each container's environment, assembled the way the kubelet
assembles it from the ConfigMaps, the Secret and its own `env`, is read by
the process's own Settings, every variable of it; the ports, probes, dialled
targets and commands are compared with what those settings, the gateway's
router, the servers' health names and the installed `mlflow server` say, and
with docker-compose.yml where both deploy the same thing."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from sqlalchemy.engine import make_url

from experiments_svc.config import Settings as ExperimentsSettings
from gateway.app import Gateway
from gateway.config import Settings as GatewaySettings
from gateway.routing import Match
from gateway.server import default_upstreams
from gateway.upstreams import Upstreams
from research_common.config import ConfigError
from research_common.settings import ProcessSettings, variable, variables
from tests.deploy.test_compose import (
    COMPOSE,
    INIT_SCRIPT,
    RecordingEnv,
    dockerfile_stages,
    interpolate,
    mlflow_flags,
    python_json,
    split_address,
)
from tracking_svc.config import Settings as TrackingSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"

# The oldest Kubernetes these manifests are for (gRPC probes are GA from
# 1.27) and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

# Our workloads, each with the settings its process reads.
SETTINGS: dict[str, type[ProcessSettings]] = {
    "experiments-svc": ExperimentsSettings,
    "tracking-svc": TrackingSettings,
    "gateway": GatewaySettings,
    "experiments-migrate": ExperimentsSettings,
}
# The same processes in docker-compose.yml.
COMPOSE_NAMES = {
    "experiments-svc": "experiments_svc",
    "tracking-svc": "tracking_svc",
    "gateway": "gateway",
    "experiments-migrate": "migrate",
    "mlflow": "mlflow",
}
# The keys that hold passwords or tokens: only ever in the Secret.
SECRET_KEYS = {"DATABASE_URL", "API_TOKENS", "PAGE_TOKEN_KEY", "MLFLOW_BACKEND_STORE_URI"}
# A well-formed API_TOKENS, put in place of the Secret's placeholder.
SAMPLE_TOKENS = "ci-writer:sample-secret-1,ci-reader:sample-secret-2:read"

S = TypeVar("S", bound=ProcessSettings)
Object = dict[str, Any]


# --- reading the manifests ------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path != KUSTOMIZATION)


def _load_objects() -> list[Object]:
    objects: list[Object] = []
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), f"{path.name}: a document is not a mapping"
            objects.append(document)
    return objects


@pytest.fixture(scope="module")
def objects() -> list[Object]:
    """Every object of every manifest, in file order."""
    return _load_objects()


def find(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def of_kind(objects: list[Object], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def workloads(objects: list[Object]) -> list[Object]:
    return [o for o in objects if o["kind"] in {"Deployment", "Job"}]


def pod_spec(workload: Object) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def pod_labels(workload: Object) -> dict[str, str]:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def container(workload: Object) -> dict[str, Any]:
    """The pod's one container (none of them has a sidecar)."""
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    assert isinstance(containers[0], dict)
    return containers[0]


def container_port(workload: Object, port: int | str) -> int:
    """A container port given by number or by name, as a probe or a
    Service's targetPort gives it; it must be one the container declares."""
    ports = {p["name"]: p["containerPort"] for p in container(workload).get("ports", [])}
    if isinstance(port, str):
        assert port in ports, f"{workload['metadata']['name']} has no port named {port}"
        return int(ports[port])
    assert port in ports.values(), f"{workload['metadata']['name']} declares no port {port}"
    return port


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def selected_workloads(objects: list[Object], selector: Mapping[str, str]) -> list[str]:
    return [w["metadata"]["name"] for w in workloads(objects) if selects(selector, pod_labels(w))]


def secret_data(secret: Object) -> dict[str, str]:
    assert "data" not in secret, "stringData only: readable, and no base64 to get wrong"
    data = secret["stringData"]
    assert isinstance(data, dict)
    return data


def config_map_data(objects: list[Object], name: str) -> dict[str, str]:
    data = find(objects, "ConfigMap", name).get("data", {})
    assert isinstance(data, dict)
    return data


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a container's variable comes from: `value` (written in the
    workload), or a key of a ConfigMap or of the Secret."""

    kind: str
    name: str | None = None
    key: str | None = None


def env_sources(objects: list[Object], workload: Object) -> dict[str, tuple[str, Source]]:
    """The container's environment as the kubelet builds it: `envFrom`
    sources in order, then `env`, later entries winning. Every reference
    must name an object and key that exist."""
    env: dict[str, tuple[str, Source]] = {}
    spec = container(workload)
    for source in spec.get("envFrom", []):
        assert "prefix" not in source
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            data = config_map_data(objects, name)
            kind = "ConfigMap"
        else:
            name = source["secretRef"]["name"]
            data = secret_data(find(objects, "Secret", name))
            kind = "Secret"
        for key, value in data.items():
            env[key] = (value, Source(kind, name, key))
    for entry in spec.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = (entry["value"], Source("value"))
            continue
        reference = entry["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            data = secret_data(find(objects, "Secret", ref["name"]))
            kind = "Secret"
        else:
            ref = reference["configMapKeyRef"]
            data = config_map_data(objects, ref["name"])
            kind = "ConfigMap"
        assert ref["key"] in data, f"{name}: {kind}/{ref['name']} has no key {ref['key']}"
        env[name] = (data[ref["key"]], Source(kind, ref["name"], ref["key"]))
    for name, (value, _) in env.items():
        # The API takes strings only; a bare `false` or `10` is a YAML bool / int.
        assert isinstance(value, str), f"{name}: {value!r} is not a string"
    return env


def environment(objects: list[Object], workload: Object) -> dict[str, str]:
    return {name: value for name, (value, _) in env_sources(objects, workload).items()}


def settings_of(objects: list[Object], name: str, cls: type[S]) -> S:
    """The settings the workload's process reads from its environment, with
    a real token list in place of the Secret's placeholder; every variable
    the manifests give it must be one it reads."""
    env = environment(objects, find_workload(objects, name))
    if "API_TOKENS" in env:
        # The placeholder fails closed: the process would not start on it.
        with pytest.raises(ConfigError, match=r"^API_TOKENS: "):
            cls.from_env(env)
        env["API_TOKENS"] = SAMPLE_TOKENS
    recording = RecordingEnv(env)
    settings = cls.from_env(recording)
    assert set(env) - recording.read == set(), f"{name} ignores these"
    return settings


def find_workload(objects: list[Object], name: str) -> Object:
    found = [w for w in workloads(objects) if w["metadata"]["name"] == name]
    assert len(found) == 1, name
    return found[0]


def declared_variables(cls: type[ProcessSettings]) -> set[str]:
    """Every variable the settings class names in its fields' metadata
    (research_common.settings): one per `variable(...)` field, and those a
    `variables(read)` field's reader looks up."""
    variable_key = next(key for key, value in variable("PROBE").items() if value == "PROBE")
    (read_key,) = variables(lambda env: None).keys()
    names: set[str] = set()
    for setting in dataclasses.fields(cls):
        if variable_key in setting.metadata:
            names.add(setting.metadata[variable_key])
        elif read_key in setting.metadata:
            recording = RecordingEnv({})
            setting.metadata[read_key](recording)
            names |= recording.read
    return names


def dns_target(target: str) -> tuple[str, int]:
    """The name and port of a `dns:///name:port` gRPC target."""
    assert target.startswith("dns:///"), f"{target}: not a dns:/// target"
    return split_address(target.removeprefix("dns:///"))


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (`100m`, `128Mi`, `1`) as a number."""
    units = {"m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "": 1.0}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|)", str(text))
    assert match is not None, f"not a quantity: {text!r}"
    return float(match[1]) * units[match[2]]


def compose_services() -> dict[str, dict[str, Any]]:
    services = interpolate(yaml.safe_load(COMPOSE.read_text()))["services"]
    assert isinstance(services, dict)
    return services


# The envvar of each `mlflow server` option, and the names of MLflow's own
# environment variables, from the installed MLflow; in a subprocess, as in
# test_compose.py, so that this process never imports mlflow.cli.
_MLFLOW_VARIABLES = """
import json
import mlflow.environment_variables as variables
from mlflow.cli import server
print(json.dumps({
    "options": {
        option: param.envvar
        for param in server.params
        for option in param.opts
        if isinstance(param.envvar, str)
    },
    "variables": sorted(
        value.name for value in vars(variables).values()
        if isinstance(getattr(value, "name", None), str)
    ),
}))
"""


@pytest.fixture(scope="module")
def mlflow_variables() -> dict[str, Any]:
    found: dict[str, Any] = python_json(_MLFLOW_VARIABLES)
    return found


# --- the files and the schemas --------------------------------------------------------


def test_the_objects(objects: list[Object]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert len(names) == len(objects), "an object is defined twice"
    assert names == {
        ("ConfigMap", "research-common"),
        ("ConfigMap", "experiments-svc"),
        ("ConfigMap", "tracking-svc"),
        ("ConfigMap", "gateway"),
        ("Secret", "research-backbone"),
        ("PersistentVolumeClaim", "mlflow-artifacts"),
        ("Deployment", "mlflow"),
        ("Service", "mlflow"),
        ("Job", "experiments-migrate"),
        ("Deployment", "experiments-svc"),
        ("Service", "experiments-svc"),
        ("PodDisruptionBudget", "experiments-svc"),
        ("Deployment", "tracking-svc"),
        ("Service", "tracking-svc"),
        ("PodDisruptionBudget", "tracking-svc"),
        ("Deployment", "gateway"),
        ("Service", "gateway"),
        ("PodDisruptionBudget", "gateway"),
    }
    # Namespace-agnostic: every object goes where it is applied.
    for o in objects:
        assert "namespace" not in o["metadata"], o["metadata"]["name"]
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "research-backbone"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(
    objects: list[Object], version: str
) -> None:
    for o in objects:
        # Strict: an unknown or misspelt field is an error, not ignored.
        kubernetes_validate.validate(o, version, strict=True)


def test_a_mistake_fails_the_schema_check(objects: list[Object]) -> None:
    """The check above can fail: a misspelt field and a wrong type are caught."""
    deployment = json.loads(json.dumps(find(objects, "Deployment", "gateway")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    service = json.loads(json.dumps(find(objects, "Service", "gateway")))
    service["spec"]["ports"][0]["port"] = "8080"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]
    assert "namespace" not in kustomization
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert kustomization["images"] == [
        {"name": "research-backbone", "newTag": pyproject["project"]["version"]}
    ]


def test_kustomize_builds_the_same_objects(objects: list[Object]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the other tests read the files themselves)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d is not None]

    def key(o: Object) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    assert sorted(built, key=key) == sorted(objects, key=key)


# --- images and commands --------------------------------------------------------------


def test_one_image_everywhere(objects: list[Object]) -> None:
    """Every workload runs the Dockerfile's one image, tagged with the
    project's version; docker-compose.yml names the same image."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    compose_image = compose_services()["gateway"]["image"]
    assert compose_image.rpartition(":")[0] == "research-backbone"
    for workload in workloads(objects):
        spec = container(workload)
        assert spec["image"] == f"research-backbone:{version}", workload["metadata"]["name"]
        assert spec["imagePullPolicy"] == "IfNotPresent"
    assert {w["metadata"]["name"] for w in workloads(objects)} == set(COMPOSE_NAMES)


def test_commands_are_the_processes_entry_points(objects: list[Object]) -> None:
    services = compose_services()
    for name in SETTINGS:
        argv = container(find_workload(objects, name))["command"]
        assert argv == services[COMPOSE_NAMES[name]]["command"], name
        assert argv[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(f"{argv[2]}.__main__") is not None, name
    # The Job runs the migration subcommand, nothing else.
    job = container(find(objects, "Job", "experiments-migrate"))
    assert job["command"] == ["python", "-m", "experiments_svc", "migrate"]
    # The serving Deployments never run it.
    for name in ("experiments-svc", "tracking-svc", "gateway"):
        assert "migrate" not in container(find(objects, "Deployment", name))["command"]


def test_migrate_is_the_services_migration_command(capsys: pytest.CaptureFixture[str]) -> None:
    from experiments_svc.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["migrate", "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m experiments_svc migrate" in capsys.readouterr().out


# --- configuration ----------------------------------------------------------------------


def test_every_variable_set_is_one_the_process_reads(objects: list[Object]) -> None:
    for name, cls in SETTINGS.items():
        env = environment(objects, find_workload(objects, name))
        assert set(env) <= declared_variables(cls), f"{name}: not settings of its process"
        settings_of(objects, name, cls)  # and each is read, and parses
    # Each ConfigMap is used whole by the workloads that take it.
    used = {
        source["configMapRef"]["name"]
        for workload in workloads(objects)
        for source in container(workload).get("envFrom", [])
        if "configMapRef" in source
    }
    assert used == {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}


def test_the_serving_pods_never_migrate(objects: list[Object]) -> None:
    experiments = settings_of(objects, "experiments-svc", ExperimentsSettings)
    assert experiments.auto_migrate is False
    assert ExperimentsSettings().auto_migrate is True  # so it must be said
    migrate = settings_of(objects, "experiments-migrate", ExperimentsSettings)
    # The Job migrates the database the pods use, given as the same Secret key.
    job_env = env_sources(objects, find(objects, "Job", "experiments-migrate"))
    pod_env = env_sources(objects, find(objects, "Deployment", "experiments-svc"))
    assert job_env["DATABASE_URL"] == pod_env["DATABASE_URL"]
    assert job_env["DATABASE_URL"][1].kind == "Secret"
    assert migrate.database_url == experiments.database_url
    # A migration statement may run longer than a serving call's.
    assert migrate.db_timeout > experiments.db_timeout
    job = find(objects, "Job", "experiments-migrate")
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 3
    assert job["spec"]["activeDeadlineSeconds"] > migrate.db_timeout


def test_secrets_are_only_in_the_secret(objects: list[Object]) -> None:
    secret = secret_data(find(objects, "Secret", "research-backbone"))
    assert set(secret) == SECRET_KEYS
    for config_map in of_kind(objects, "ConfigMap"):
        assert not SECRET_KEYS & set(config_map.get("data", {})), config_map["metadata"]["name"]
    used: set[str] = set()
    for workload in workloads(objects):
        for name, (_, source) in env_sources(objects, workload).items():
            if name in SECRET_KEYS:
                assert source == Source("Secret", "research-backbone", name), name
                used.add(name)
    assert used == SECRET_KEYS
    # The three processes share one token list (the gateway passes the
    # caller's token on, and each service checks it again).
    holders = {
        w["metadata"]["name"] for w in workloads(objects) if "API_TOKENS" in environment(objects, w)
    }
    assert holders == {"experiments-svc", "tracking-svc", "gateway"}


def test_one_postgresql_two_databases(objects: list[Object]) -> None:
    """experiments_svc and the MLflow server on the same PostgreSQL, each on
    the database and role that deploy/postgres-init.sh creates."""
    secret = secret_data(find(objects, "Secret", "research-backbone"))
    experiments = make_url(secret["DATABASE_URL"])
    mlflow = make_url(secret["MLFLOW_BACKEND_STORE_URI"])
    assert experiments.drivername == mlflow.drivername == "postgresql+psycopg2"
    assert (experiments.host, experiments.port) == (mlflow.host, mlflow.port)
    created = re.findall(r"^CREATE DATABASE (\w+) OWNER (\w+);$", INIT_SCRIPT.read_text(), re.M)
    assert sorted(created) == sorted(
        [(experiments.database, experiments.username), (mlflow.database, mlflow.username)]
    )


# --- ports, probes and the Services ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "module"),
    [
        ("experiments-svc", ExperimentsSettings, "experiments_svc"),
        ("tracking-svc", TrackingSettings, "tracking_svc"),
    ],
)
def test_grpc_services_listen_where_probes_and_services_look(
    objects: list[Object], name: str, cls: type[ExperimentsSettings | TrackingSettings], module: str
) -> None:
    settings = settings_of(objects, name, cls)
    deployment = find(objects, "Deployment", name)
    host, port = split_address(settings.address)
    assert host == "0.0.0.0", "a pod is reached on its own address, not loopback"
    assert container_port(deployment, "grpc") == port
    # Metrics on their own port, declared as the container's `metrics` port.
    assert settings.metrics_address is not None
    metrics_host, metrics_port = split_address(settings.metrics_address)
    assert (metrics_host, container_port(deployment, "metrics")) == ("0.0.0.0", metrics_port)
    # gRPC probes of grpc.health.v1 on that port, for the name the server registers.
    service_name = importlib.import_module(f"{module}.server").SERVICE_NAME
    spec = container(deployment)
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["grpc"] == {"port": port, "service": service_name}, probe
    # The headless Service: its DNS name answers with every ready pod.
    service = find(objects, "Service", name)
    assert service["spec"]["clusterIP"] == "None"
    assert selected_workloads(objects, service["spec"]["selector"]) == [name]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == port
    assert container_port(deployment, ports["grpc"]["targetPort"]) == port
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert container_port(deployment, ports["metrics"]["targetPort"]) == metrics_port


def test_the_gateway_dials_every_pod_through_the_headless_services(
    objects: list[Object],
) -> None:
    gateway = settings_of(objects, "gateway", GatewaySettings)
    experiments = settings_of(objects, "experiments-svc", ExperimentsSettings)
    tracking = settings_of(objects, "tracking-svc", TrackingSettings)
    for target, server in [
        (gateway.experiments_address, experiments),
        (gateway.tracking_address, tracking),
        (experiments.tracking_address, tracking),  # ImportRun
    ]:
        name, port = dns_target(target)
        service = find(objects, "Service", name)
        assert service["spec"]["clusterIP"] == "None", f"{name} is not headless"
        (workload,) = selected_workloads(objects, service["spec"]["selector"])
        # A headless name resolves to pod addresses: the dialled port is the
        # port the selected pods listen on.
        assert split_address(server.address)[1] == port
        assert container_port(find(objects, "Deployment", workload), port) == port
        assert SETTINGS[workload] is type(server)


def test_gateway_probes_are_its_own_open_pages(objects: list[Object]) -> None:
    settings = settings_of(objects, "gateway", GatewaySettings)
    deployment = find(objects, "Deployment", "gateway")
    host, port = split_address(settings.address)
    assert host == "0.0.0.0"
    assert container_port(deployment, "http") == port
    # The gateway's router, built as the process builds it (no channel is
    # opened before its lifespan starts).
    app = Gateway(settings, Upstreams(default_upstreams(settings), settings.tls))
    spec = container(deployment)
    for probe, route_name in [
        ("readinessProbe", "readiness probe"),
        ("livenessProbe", "liveness probe"),
    ]:
        get = spec[probe]["httpGet"]
        assert container_port(deployment, get["port"]) == port
        found = app.dispatch.router.match("GET", get["path"])
        assert isinstance(found, Match), f"the gateway does not serve {get['path']}"
        assert found.route.name == route_name
        # Open: the kubelet sends no token, and API_TOKENS is set.
        assert found.route.public
    assert settings.tokens.required
    # /readyz waits READY_TIMEOUT for the services' health (asked at once).
    assert spec["readinessProbe"]["timeoutSeconds"] > settings.ready_timeout
    # docker-compose.yml's healthcheck asks the same readiness page.
    readiness = spec["readinessProbe"]["httpGet"]["path"]
    assert compose_services()["gateway"]["healthcheck"]["test"][-1].endswith(readiness)


def test_gateway_service(objects: list[Object]) -> None:
    settings = settings_of(objects, "gateway", GatewaySettings)
    service = find(objects, "Service", "gateway")
    assert service["spec"]["type"] == "ClusterIP"
    assert selected_workloads(objects, service["spec"]["selector"]) == ["gateway"]
    (port,) = service["spec"]["ports"]
    target = container_port(find(objects, "Deployment", "gateway"), port["targetPort"])
    assert target == split_address(settings.address)[1]


def test_probe_timing(objects: list[Object]) -> None:
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        spec = container(deployment)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in spec:
                assert spec[probe]["timeoutSeconds"] <= spec[probe]["periodSeconds"], name
        assert "readinessProbe" in spec, name
        assert "livenessProbe" in spec, name

    def tolerance(probe: dict[str, Any]) -> int:
        return int(probe["periodSeconds"] * probe["failureThreshold"])

    # The services' health follows their store: liveness waits out an
    # outage (a restart would not end it) long after readiness acts.
    for name in ("experiments-svc", "tracking-svc"):
        spec = container(find(objects, "Deployment", name))
        assert tolerance(spec["livenessProbe"]) >= 300, name
        assert tolerance(spec["readinessProbe"]) <= 15, name


def test_termination_leaves_room_for_the_drain(objects: list[Object]) -> None:
    for name, cls in SETTINGS.items():
        workload = find_workload(objects, name)
        if workload["kind"] != "Deployment":
            continue
        grace = settings_of(objects, name, cls).shutdown_grace
        pause = 0
        pre_stop = container(workload).get("lifecycle", {}).get("preStop")
        if pre_stop is not None:
            sleep, seconds = pre_stop["exec"]["command"]
            assert sleep == "sleep"
            pause = int(seconds)
        # As docker-compose.yml's stop_grace_period: the drain, and 5 s more.
        assert pod_spec(workload)["terminationGracePeriodSeconds"] == pause + grace + 5, name
    # The gateway, behind a ClusterIP, keeps serving while it is taken out.
    assert "preStop" in container(find(objects, "Deployment", "gateway"))["lifecycle"]


# --- labels, selectors, disruption budgets ------------------------------------------------


def test_labels_and_selectors_agree(objects: list[Object]) -> None:
    deployments = of_kind(objects, "Deployment")
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert set(deployment["spec"]["selector"]) == {"matchLabels"}
        assert pod_labels(deployment)["app.kubernetes.io/name"] == name
        # Its selector picks its own pods and no other workload's.
        assert selected_workloads(objects, selector) == [name]
        spread = pod_spec(deployment).get("topologySpreadConstraints", [])
        for constraint in spread:
            assert constraint["labelSelector"]["matchLabels"] == selector, name
    for service in of_kind(objects, "Service"):
        name = service["metadata"]["name"]
        assert selected_workloads(objects, service["spec"]["selector"]) == [name]
    # The migration pods are behind no Service and in no budget.
    job = find(objects, "Job", "experiments-migrate")
    selectors = [s["spec"]["selector"] for s in of_kind(objects, "Service")]
    selectors += [
        b["spec"]["selector"]["matchLabels"] for b in of_kind(objects, "PodDisruptionBudget")
    ]
    selectors += [d["spec"]["selector"]["matchLabels"] for d in deployments]
    for selector in selectors:
        assert not selects(selector, pod_labels(job)), selector


def test_every_replicated_deployment_has_a_disruption_budget(objects: list[Object]) -> None:
    budgets = {b["metadata"]["name"]: b for b in of_kind(objects, "PodDisruptionBudget")}
    replicated = set()
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        replicas = deployment["spec"]["replicas"]
        if replicas == 1:
            # One replica (mlflow, on a ReadWriteOnce volume): a budget would
            # block every drain or allow what none allows.
            assert name not in budgets
            assert deployment["spec"]["strategy"]["type"] == "Recreate"
            continue
        replicated.add(name)
        budget = budgets[name]["spec"]
        assert budget["selector"] == deployment["spec"]["selector"], name
        assert 1 <= budget["minAvailable"] < replicas, name
        # A rolling update never goes below the replica count either.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
    assert replicated == set(budgets) == {"experiments-svc", "tracking-svc", "gateway"}


# --- the MLflow server ---------------------------------------------------------------


def test_mlflow_server_as_in_compose(
    objects: list[Object], mlflow_variables: dict[str, Any]
) -> None:
    """The compose file's `mlflow server` flags, with the store URI taken
    from the Secret through the variable `mlflow server` reads for it."""
    deployment = find(objects, "Deployment", "mlflow")
    spec = container(deployment)
    compose = compose_services()["mlflow"]
    flags = mlflow_flags(spec["command"])
    compose_flags = mlflow_flags(compose["command"])
    assert "--backend-store-uri" not in flags
    assert flags == {k: v for k, v in compose_flags.items() if k != "--backend-store-uri"}
    options: dict[str, str] = mlflow_variables["options"]
    env = env_sources(objects, deployment)
    assert options["--backend-store-uri"] in env
    assert env[options["--backend-store-uri"]][1].kind == "Secret"
    # Every other variable is one of MLflow's own, as compose sets it.
    mlflow_env = {name: value for name, (value, _) in env.items()}
    del mlflow_env[options["--backend-store-uri"]]
    assert mlflow_env == compose["environment"]
    assert set(mlflow_env) <= set(mlflow_variables["variables"])
    # Its port, its Service, its probes, its artifact volume.
    port = int(str(flags["--port"]))
    assert flags["--host"] == "0.0.0.0"
    assert container_port(deployment, "http") == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = spec[probe]["httpGet"]
        assert container_port(deployment, get["port"]) == port
        assert compose["healthcheck"]["test"][-1].endswith(get["path"])
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    artifacts = volumes[mounts[str(flags["--artifacts-destination"])]]
    claim = artifacts["persistentVolumeClaim"]["claimName"]
    assert find(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_tracking_reaches_the_mlflow_service(objects: list[Object]) -> None:
    tracking = settings_of(objects, "tracking-svc", TrackingSettings)
    uri = urllib.parse.urlsplit(tracking.tracking_uri)
    assert uri.scheme == "http"
    service = find(objects, "Service", str(uri.hostname))
    (port,) = service["spec"]["ports"]
    assert port["port"] == uri.port
    (workload,) = selected_workloads(objects, service["spec"]["selector"])
    deployment = find(objects, "Deployment", workload)
    flags = mlflow_flags(container(deployment)["command"])
    assert container_port(deployment, port["targetPort"]) == int(str(flags["--port"]))
    # MLflow accepts the Host header tracking-svc sends.
    assert uri.netloc in str(flags["--allowed-hosts"]).split(",")
    assert tracking.artifact_location is None  # the server's own artifact root


# --- the pods ------------------------------------------------------------------------


def test_pods_run_unprivileged_as_the_images_user(objects: list[Object]) -> None:
    users = [i.arguments for i in dockerfile_stages()[-1] if i.keyword == "USER"]
    uid, _, gid = users[-1].partition(":")
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid), name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        spec = container(workload)
        assert spec["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, name
        # A read-only image, and a writable /tmp of the pod's own.
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_no_service_links(objects: list[Object], mlflow_variables: dict[str, Any]) -> None:
    """Kubernetes gives every pod `<NAME>_PORT`, `<NAME>_SERVICE_HOST`, ...
    for each Service in its namespace. With these Service names they would
    land on variables that `mlflow server` reads (MLFLOW_PORT is --port's),
    so every pod turns them off."""
    injected: set[str] = set()
    for service in of_kind(objects, "Service"):
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        injected |= {f"{prefix}_PORT", f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT"}
        for port in service["spec"]["ports"]:
            injected.add(f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
    mlflow_reads = set(mlflow_variables["variables"]) | set(mlflow_variables["options"].values())
    assert "MLFLOW_PORT" in injected & mlflow_reads
    for workload in workloads(objects):
        assert pod_spec(workload)["enableServiceLinks"] is False, workload["metadata"]["name"]


def test_resources_are_requested_and_limited(objects: list[Object]) -> None:
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        resources = container(workload)["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{name} {resource}"
        # Room for a burst of large calls above the steady state.
        memory = resources["requests"]["memory"], resources["limits"]["memory"]
        assert quantity(memory[1]) == 2 * quantity(memory[0]), name
    # The rationale is written beside the figures.
    for path in manifest_files():
        text = path.read_text()
        if "resources:" in text:
            assert "BENCHMARKS.md" in text, f"{path.name} does not say how it was sized"


def test_processes_and_compose_agree_on_the_listen_ports(objects: list[Object]) -> None:
    """The same port for each process on Kubernetes as in docker-compose.yml,
    so that one image and one set of docs serve both."""
    services = compose_services()
    for name, cls in SETTINGS.items():
        if name == "experiments-migrate":
            continue
        address = settings_of(objects, name, cls).address
        compose_env = services[COMPOSE_NAMES[name]]["environment"]
        variable_name = {
            "experiments-svc": "EXPERIMENTS_ADDR",
            "tracking-svc": "TRACKING_ADDR",
            "gateway": "GATEWAY_ADDR",
        }[name]
        assert address == compose_env[variable_name], name


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_no_latest_tag_and_no_host_access(objects: list[Object]) -> None:
    for o in objects:
        for node in _walk(o):
            if isinstance(node, dict):
                for key in ("hostNetwork", "hostPID", "hostIPC", "privileged", "hostPath"):
                    assert node.get(key) in (None, False), f"{o['metadata']['name']}: {key}"
                image = node.get("image")
                if isinstance(image, str):
                    assert not image.endswith(":latest")
