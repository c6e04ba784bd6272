"""CompareExperiments' answer: the rows side by side with the diffs of
CONTRACT §7, built by the rules shared with the tracking compare
(`research_common.diff`)."""

from __future__ import annotations

import uuid
from typing import Any

from experiments_svc import validation as check
from experiments_svc.convert import Record, to_proto
from experiments_svc.models import WRITE_ONCE_FIELDS
from research.experiments.v1 import experiments_pb2
from research_common import diff
from research_common.diff_messages import write_metric_diff, write_value_diff


def compare_ids(raw: Any) -> list[uuid.UUID]:
    diff.check_compare_count("experiment_ids", len(raw))
    ids = [check.parse_uuid(f"experiment_ids[{i}]", value) for i, value in enumerate(raw)]
    diff.check_distinct("experiment_ids", ids)
    return ids


def comparison(
    records: list[Record], maximize: list[str], minimize: list[str]
) -> experiments_pb2.CompareExperimentsResponse:
    keyed = [(str(r["id"]), r) for r in records]
    metrics = diff.compare_metrics(
        [(key, r["metrics"]) for key, r in keyed],
        maximize=maximize,
        minimize=minimize,
        default=diff.MINIMIZE,  # as the experiments API document says
    )
    params = diff.compare_values([(key, r["parameters"]) for key, r in keyed])
    lineage = diff.compare_values(
        [(key, {name: _text(r[name]) for name in WRITE_ONCE_FIELDS}) for key, r in keyed],
        WRITE_ONCE_FIELDS,
    )
    response = experiments_pb2.CompareExperimentsResponse(
        experiments=[to_proto(r) for r in records]
    )
    write_metric_diff(response.metric_diff, metrics, "best_id")
    write_value_diff(response.param_diff, params)
    write_value_diff(response.lineage_diff, lineage)
    return response


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
