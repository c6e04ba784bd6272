"""`tracking_svc.lineage`: the tags every producer of MLflow runs sets, checked
where the run is made; `start_run` (client) and `lineage_run` (fluent API)
against the real MLflow server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from mlflow.tracking import fluent as mlflow_fluent
from mlflow.tracking._tracking_service import utils as mlflow_tracking_state

from testbed.mlflow_server import MlflowServer
from tests.fixtures.mlflow import STRATEGY_A
from tracking_svc.lineage import LINEAGE_TAGS, RUN_TYPES, Lineage, lineage_run, start_run


def test_lineage_tags_are_the_seven_of_the_contract() -> None:
    assert LINEAGE_TAGS == (
        "strategy_id",
        "run_type",
        "git_commit",
        "dataset_version",
        "feature_version",
        "model_version",
        "signal_version",
    )
    assert RUN_TYPES == ("training", "walk_forward", "cpcv", "backtest")


def test_tags_omit_absent_values() -> None:
    lineage = Lineage(STRATEGY_A, "walk_forward", git_commit="3f9a1c2", signal_version="s2")
    assert lineage.tags() == {
        "strategy_id": STRATEGY_A,
        "run_type": "walk_forward",
        "git_commit": "3f9a1c2",
        "signal_version": "s2",
    }


def test_all_tags() -> None:
    values = {name: f"{name}-1" for name in LINEAGE_TAGS[2:]}
    lineage = Lineage(STRATEGY_A, "training", **values)
    assert lineage.tags() == {"strategy_id": STRATEGY_A, "run_type": "training", **values}
    assert list(lineage.tags()) == list(LINEAGE_TAGS)


def test_strategy_id_is_made_canonical() -> None:
    assert Lineage(STRATEGY_A.upper(), "cpcv").strategy_id == STRATEGY_A
    assert Lineage(STRATEGY_A.replace("-", ""), "cpcv").strategy_id == STRATEGY_A


@pytest.mark.parametrize(
    "strategy_id", ["strategy-1", "", "a1b2c3d4-e5f6-7890-abcd-ef123456789", "x' OR 1=1"]
)
def test_strategy_id_must_be_a_uuid(strategy_id: str) -> None:
    with pytest.raises(ValueError, match="strategy_id must be a UUID"):
        Lineage(strategy_id, "training")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run_type", "train'ing"),
        ("run_type", ""),
        ("git_commit", "a b"),
        ("dataset_version", "ds\\2024"),
        ("feature_version", "v" * 129),
        ("model_version", "vé"),
        ("signal_version", 'x"'),
    ],
)
def test_values_must_be_searchable_tokens(field: str, value: str) -> None:
    fields = {"strategy_id": STRATEGY_A, "run_type": "training", field: value}
    with pytest.raises(ValueError, match=f"^{field} must be 1 to 128 letters"):
        Lineage(**fields)


def test_longest_value_is_accepted() -> None:
    assert Lineage(STRATEGY_A, "x" * 128).run_type == "x" * 128


def test_start_run_tags_the_run(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment(f"lineage-{uuid.uuid4().hex[:8]}")
    lineage = Lineage(STRATEGY_A, "walk_forward", git_commit="3f9a1c2")
    run = start_run(
        client,
        experiment_id,
        lineage,
        start_time=1_700_000_000_000,
        # The lineage wins over a caller's tag of the same name.
        tags={"team": "alpha", "run_type": "spoofed"},
    )
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.run_name == "walk_forward"  # the run type by default
    assert fetched.info.start_time == 1_700_000_000_000
    assert fetched.info.status == "RUNNING"
    tags = fetched.data.tags
    assert {key: tags.get(key) for key in (*lineage.tags(), "team")} == {
        "strategy_id": STRATEGY_A,
        "run_type": "walk_forward",
        "git_commit": "3f9a1c2",
        "team": "alpha",
    }
    assert "dataset_version" not in tags

    named = start_run(client, experiment_id, lineage, run_name="wf-2024-06")
    assert client.get_run(named.info.run_id).info.run_name == "wf-2024-06"


@pytest.fixture
def fluent_mlflow(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow's fluent API pointed at the test server; its global state (the
    tracking URI, the active experiment, their environment variables) put
    back afterwards."""
    monkeypatch.setattr(mlflow_tracking_state, "_tracking_uri", mlflow_tracking_state._tracking_uri)
    monkeypatch.setattr(mlflow_fluent, "_active_experiment_id", mlflow_fluent._active_experiment_id)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        # Recorded either way, so that what MLflow sets is undone.
        monkeypatch.setenv(name, os.environ.get(name, ""))
        if not os.environ[name]:
            monkeypatch.delenv(name)
    mlflow.set_tracking_uri(mlflow_server.url)
    yield mlflow_server.url
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_lineage_run_with_the_fluent_api(fluent_mlflow: str) -> None:
    experiment_name = f"fluent-{uuid.uuid4().hex[:8]}"
    lineage = Lineage(STRATEGY_A, "cpcv", dataset_version="ds-2024-06", model_version="v1")
    with lineage_run(lineage, experiment_name=experiment_name, tags={"team": "alpha"}) as active:
        run_id = active.info.run_id
        for fold, sharpe in enumerate([0.4, 0.9, 0.6]):
            mlflow.log_metric("oos_sharpe", sharpe, step=fold)
        mlflow.log_param("n_groups", "6")
    client = MlflowClient(tracking_uri=fluent_mlflow)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    assert run.info.run_name == "cpcv"
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None
    assert run.info.experiment_id == experiment.experiment_id
    tags = run.data.tags
    assert {key: tags.get(key) for key in (*lineage.tags(), "team")} == {
        **lineage.tags(),
        "team": "alpha",
    }
    assert run.data.params == {"n_groups": "6"}
    history = client.get_metric_history(run_id, "oos_sharpe")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.4), (1, 0.9), (2, 0.6)]


def _fail_in_a_lineage_run(experiment_name: str, seen: list[str]) -> None:
    lineage = Lineage(STRATEGY_A, "backtest")
    with lineage_run(lineage, experiment_name=experiment_name, run_name="bt-1") as active:
        seen.append(active.info.run_id)
        raise RuntimeError("data vendor down")


def test_lineage_run_fails_the_run_on_an_exception(fluent_mlflow: str) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="data vendor down"):
        _fail_in_a_lineage_run(f"fluent-{uuid.uuid4().hex[:8]}", seen)
    (run_id,) = seen
    run = MlflowClient(tracking_uri=fluent_mlflow).get_run(run_id)
    assert (run.info.status, run.info.run_name) == ("FAILED", "bt-1")
    assert run.data.tags["run_type"] == "backtest"
    assert mlflow.active_run() is None
