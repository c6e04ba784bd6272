"""`Settings.from_env`: the defaults, and one-line refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from research_common.config import ConfigError
from tracking_svc.config import Settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings == Settings(
        address="127.0.0.1:50052",
        tracking_uri="sqlite:///.data/mlflow.db",
        experiment_name="hedge-fund-research",
        # The embedded store keeps its artifacts beside it, as an absolute URI.
        artifact_location=(tmp_path / ".data" / "mlartifacts").resolve().as_uri(),
        mlflow_timeout=4.0,
        workers=16,
        health_interval=2.0,
        shutdown_grace=10.0,
        log_level="INFO",
    )
    assert settings.http_timeout == 4


def test_empty_values_mean_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    names = (
        "TRACKING_ADDR",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_ARTIFACT_LOCATION",
        "MLFLOW_TIMEOUT",
        "TRACKING_WORKERS",
        "HEALTH_CHECK_INTERVAL",
        "SHUTDOWN_GRACE",
        "LOG_LEVEL",
    )
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings.from_env({})


def test_every_setting() -> None:
    settings = Settings.from_env(
        {
            "TRACKING_ADDR": "0.0.0.0:6000",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "MLFLOW_EXPERIMENT_NAME": "research-staging",
            "MLFLOW_TIMEOUT": "2.5",
            "TRACKING_WORKERS": "4",
            "HEALTH_CHECK_INTERVAL": "0.5",
            "SHUTDOWN_GRACE": "3",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings == Settings(
        address="0.0.0.0:6000",
        tracking_uri="http://mlflow:5000",
        experiment_name="research-staging",
        artifact_location=None,  # a tracking server has its own artifact root
        mlflow_timeout=2.5,
        workers=4,
        health_interval=0.5,
        shutdown_grace=3.0,
        log_level="DEBUG",
    )
    assert settings.http_timeout == 3


def test_artifact_location_is_taken_as_given() -> None:
    settings = Settings.from_env(
        {"MLFLOW_TRACKING_URI": "sqlite:////srv/mlflow.db", "MLFLOW_ARTIFACT_LOCATION": "s3://b/a"}
    )
    assert (settings.tracking_uri, settings.artifact_location) == (
        "sqlite:////srv/mlflow.db",
        "s3://b/a",
    )
    # Another embedded store without a location: MLflow chooses.
    assert (
        Settings.from_env({"MLFLOW_TRACKING_URI": "sqlite:////srv/x.db"}).artifact_location is None
    )


@pytest.mark.parametrize(
    ("timeout", "http_timeout"), [(0.1, 1), (0.3, 1), (1.0, 1), (2.5, 3), (4.0, 4)]
)
def test_mlflow_http_timeout_is_whole_seconds(timeout: float, http_timeout: int) -> None:
    assert Settings(mlflow_timeout=timeout).http_timeout == http_timeout


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.com",
        "sqlite:///.data/other.db",
        "postgresql://u@db/mlflow",
        "postgresql+psycopg2://u@db/mlflow",
        "mysql://u@db/mlflow",
        "file:///srv/mlruns",
        "/srv/mlruns",
    ],
)
def test_usable_tracking_uris(uri: str) -> None:
    assert Settings.from_env({"MLFLOW_TRACKING_URI": uri}).tracking_uri == uri


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRACKING_ADDR": "nonsense"}, "TRACKING_ADDR must be host:port, got 'nonsense'"),
        ({"TRACKING_ADDR": "127.0.0.1:70000"}, "TRACKING_ADDR must be host:port"),
        ({"TRACKING_ADDR": ":50052"}, "TRACKING_ADDR must be host:port"),
        ({"TRACKING_ADDR": "[::1:50052"}, "TRACKING_ADDR has an unbalanced IPv6 bracket"),
        ({"MLFLOW_TIMEOUT": "soon"}, "MLFLOW_TIMEOUT must be a number, got 'soon'"),
        ({"MLFLOW_TIMEOUT": "0"}, "MLFLOW_TIMEOUT must be at least 0.1, got '0'"),
        ({"MLFLOW_TIMEOUT": "nan"}, "MLFLOW_TIMEOUT must be at least 0.1, got 'nan'"),
        ({"MLFLOW_TIMEOUT": "-1"}, "MLFLOW_TIMEOUT must be at least 0.1"),
        ({"TRACKING_WORKERS": "0"}, "TRACKING_WORKERS must be at least 1, got '0'"),
        ({"TRACKING_WORKERS": "many"}, "TRACKING_WORKERS must be a whole number, got 'many'"),
        ({"TRACKING_WORKERS": "2.5"}, "TRACKING_WORKERS must be a whole number"),
        ({"HEALTH_CHECK_INTERVAL": "0"}, "HEALTH_CHECK_INTERVAL must be at least 0.05"),
        ({"SHUTDOWN_GRACE": "later"}, "SHUTDOWN_GRACE must be a number, got 'later'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"),
        ({"MLFLOW_TRACKING_URI": "ftp://x"}, "MLFLOW_TRACKING_URI must be an http(s):// tracking"),
        ({"MLFLOW_TRACKING_URI": "s3://bucket/x"}, "got 's3://bucket/x'"),
        ({"MLFLOW_EXPERIMENT_NAME": "   "}, "MLFLOW_EXPERIMENT_NAME is not a usable name"),
        ({"MLFLOW_EXPERIMENT_NAME": "x" * 501}, "MLFLOW_EXPERIMENT_NAME is not a usable name"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
