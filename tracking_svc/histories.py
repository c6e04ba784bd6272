"""Per-step metric histories of the compared runs, which the fold
statistics of CompareRuns read (CONTRACT §11).

Over a tracking server, one request per metric key reads that metric's
history for every compared run together: MLflow's bulk endpoint (the one its
own UI charts with, `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk`,
up to 100 runs and 25,000 values per answer), never one request per run.
Over the embedded store the client's per-run reads are in-process calls.

Only metrics that may have more than one step are read: MLflow's latest
value of a metric is the one at its highest step, so a metric whose latest
value is at step 0 in every compared run was logged at step 0 only (steps
are fold numbers counted from 0; a history with negative steps is not
looked for).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracking_svc.run_search import RunRow, restore_infinity

HISTORY_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
# The most values MLflow answers for one metric across the runs asked for.
MAX_VALUES = 25_000

# Step to the value logged at it (the latest, when a step was logged twice).
Steps = dict[int, float]


@dataclass(frozen=True, slots=True)
class History:
    """One metric's steps in each compared run that logged it."""

    runs: dict[str, Steps]
    # False when MLflow's answer was cut at MAX_VALUES: the steps are not all
    # there, and no figure may rest on them.
    complete: bool = True


def keys_with_steps(rows: Sequence[RunRow]) -> list[str]:
    """The metric keys whose histories may hold two steps or more, in
    order of first appearance."""
    keys: dict[str, None] = {}
    for row in rows:
        for key in row.metrics:
            if row.steps is None or row.steps.get(key, 0) != 0:
                keys[key] = None
    return list(keys)


def steps_of(points: Iterable[tuple[str, int, int, float]]) -> dict[str, Steps]:
    """(run id, step, timestamp, value) points as each run's steps; at a
    step logged more than once the latest timestamp wins, as in MLflow's
    own "latest value"."""
    runs: dict[str, Steps] = {}
    for run_id, step, _, value in sorted(points, key=lambda p: (p[0], p[1], p[2])):
        runs.setdefault(run_id, {})[step] = restore_infinity(value)
    return runs


def bulk_query(run_ids: Sequence[str], key: str) -> dict[str, Any]:
    """The query string of one bulk history request."""
    return {"run_id": list(run_ids), "metric_key": key, "max_results": MAX_VALUES}


def history_of_answer(body: bytes) -> History:
    """MLflow's bulk answer, `{"metrics": [{"run_id", "step", "timestamp",
    "value", ...}]}`. Read with the standard library's parser: MLflow's
    server writes NaN and ±inf as the bare words JSON itself lacks."""
    document: Mapping[str, Any] = json.loads(body)
    metrics = document.get("metrics", [])
    points = (
        (
            str(entry["run_id"]),
            int(entry.get("step", 0)),
            int(entry.get("timestamp", 0)),
            float(entry.get("value", 0.0)),
        )
        for entry in metrics
    )
    return History(steps_of(points), complete=len(metrics) < MAX_VALUES)
