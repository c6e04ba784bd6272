"""Lineage tags for the code that produces MLflow runs.

Training, walk-forward, CPCV and backtest code start their runs through
this module, so every run carries the tags the tracking service searches
by (CONTRACT §6) and the experiments service imports from::

    from tracking_svc.lineage import Lineage, lineage_run

    lineage = Lineage(
        strategy_id="a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        run_type="walk_forward",
        git_commit="3f9a1c2",
        dataset_version="ds-2024-06",
        feature_version="v3",
        model_version="v1",
        signal_version="s2",
    )
    with lineage_run(lineage, experiment_name="hedge-fund-research"):
        for fold, sharpe in enumerate(fold_sharpes):
            mlflow.log_metric("oos_sharpe", sharpe, step=fold)

`start_run` is the same for code that holds an `MlflowClient` instead of
using MLflow's fluent API.

Values are checked when the `Lineage` is made: a tag value the service
could not search by (see `FILTER_VALUE`) is refused here, at the producer,
rather than producing a run nobody can find.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import mlflow
from mlflow import ActiveRun
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from research_common.constants import RUN_TYPE_TAG
from tracking_svc.validation import FILTER_VALUE

# The lineage tags, in the order the comparisons list them.
LINEAGE_TAGS = (
    "strategy_id",
    RUN_TYPE_TAG,
    "git_commit",
    "dataset_version",
    "feature_version",
    "model_version",
    "signal_version",
)
# The run types the platform logs; others are allowed but unusual.
RUN_TYPES = ("training", "walk_forward", "cpcv", "backtest")


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a run came from. `strategy_id` must be a UUID; every value must
    be 1 to 128 letters, digits or `_.:-`."""

    strategy_id: str
    run_type: str
    git_commit: str | None = None
    dataset_version: str | None = None
    feature_version: str | None = None
    model_version: str | None = None
    signal_version: str | None = None

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(self.strategy_id))
        except (ValueError, TypeError, AttributeError):
            raise ValueError(f"strategy_id must be a UUID, got {self.strategy_id!r}") from None
        object.__setattr__(self, "strategy_id", canonical)
        for name, value in asdict(self).items():
            if value is not None and not FILTER_VALUE.fullmatch(value):
                raise ValueError(
                    f"{name} must be 1 to 128 letters, digits or '_.:-' characters, got {value!r}"
                )

    def tags(self) -> dict[str, str]:
        """The lineage as MLflow tags; absent values are left out."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def start_run(
    client: MlflowClient,
    experiment_id: str,
    lineage: Lineage,
    *,
    run_name: str | None = None,
    start_time: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> Run:
    """Create a run tagged with `lineage` (its name defaults to the run type,
    as the platform names runs). The caller logs to it and ends it with
    `client.set_terminated(run.info.run_id)`."""
    return client.create_run(
        experiment_id,
        start_time=start_time,
        tags={**(tags or {}), **lineage.tags()},
        run_name=run_name or lineage.run_type,
    )


@contextmanager
def lineage_run(
    lineage: Lineage,
    *,
    experiment_name: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[ActiveRun]:
    """MLflow's fluent `start_run` with the lineage tags set; the run ends
    (FINISHED, or FAILED on an exception) when the block does."""
    if experiment_name is not None:
        mlflow.set_experiment(experiment_name)
    with mlflow.start_run(
        run_name=run_name or lineage.run_type, tags={**(tags or {}), **lineage.tags()}
    ) as run:
        yield run
