"""MLflow entities to TrackingService messages."""

from __future__ import annotations

from mlflow.entities import Experiment, Metric

from research.tracking.v1 import tracking_pb2
from research_common.constants import RUN_TYPE_TAG
from tracking_svc.run_search import RunRow, restore_infinity

UNKNOWN_RUN_TYPE = "unknown"


def summary(row: RunRow) -> tracking_pb2.RunSummary:
    return tracking_pb2.RunSummary(
        run_id=row.run_id,
        run_name=row.run_name,
        status=row.status,
        start_time=row.start_time,
        params=row.params,
        metrics=row.metrics,
        tags=row.tags,
    )


def detail(row: RunRow) -> tracking_pb2.Run:
    message = tracking_pb2.Run(
        run_id=row.run_id,
        run_name=row.run_name,
        status=row.status,
        start_time=row.start_time,
        artifact_uri=row.artifact_uri,
        params=row.params,
        metrics=row.metrics,
        tags=row.tags,
        experiment_id=row.experiment_id,
        lifecycle_stage=row.lifecycle_stage,
    )
    if row.end_time is not None:
        message.end_time = row.end_time
    return message


def comparison_row(row: RunRow) -> tracking_pb2.RunComparison:
    return tracking_pb2.RunComparison(
        run_id=row.run_id,
        run_name=row.run_name,
        run_type=row.tags.get(RUN_TYPE_TAG) or UNKNOWN_RUN_TYPE,
        params=row.params,
        metrics=row.metrics,
        lifecycle_stage=row.lifecycle_stage,
    )


def metric_point(metric: Metric) -> tracking_pb2.MetricPoint:
    return tracking_pb2.MetricPoint(
        step=metric.step, timestamp=metric.timestamp, value=restore_infinity(metric.value)
    )


def experiment(value: Experiment) -> tracking_pb2.Experiment:
    return tracking_pb2.Experiment(
        experiment_id=str(value.experiment_id),
        name=value.name,
        artifact_location=value.artifact_location or "",
        lifecycle_stage=value.lifecycle_stage,
    )
