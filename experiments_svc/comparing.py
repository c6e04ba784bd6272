"""CompareExperiments' answer: the rows side by side with the diffs of
CONTRACT §7, built by the rules shared with the tracking compare
(`research_common.diff`), measured against a baseline when the request
names one, and the deflated Sharpe ratio of each Sharpe metric's best
experiment (§11, experiments_svc.selection)."""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from experiments_svc import selection
from experiments_svc import validation as check
from experiments_svc.convert import Record, to_proto
from experiments_svc.models import WRITE_ONCE_FIELDS
from experiments_svc.store import ExperimentStore
from research.experiments.v1 import experiments_pb2
from research_common import diff
from research_common.diff_messages import write_metric_diff, write_value_diff
from research_common.stats import StatisticUndefined


def compare_ids(raw: Any) -> list[uuid.UUID]:
    diff.check_compare_count("experiment_ids", len(raw))
    ids = [check.parse_uuid(f"experiment_ids[{i}]", value) for i, value in enumerate(raw)]
    diff.check_distinct("experiment_ids", ids)
    return ids


def baseline_id(raw: str, ids: list[uuid.UUID]) -> str | None:
    """The baseline as the compare's key (a canonical UUID), or None."""
    if not raw:
        return None
    baseline = str(check.parse_uuid("baseline", raw))
    diff.check_baseline("baseline", baseline, [str(i) for i in ids])
    return baseline


# The Selection message's fields, named once: dataclasses.asdict copies
# every value on every call.
_FIGURES = tuple(field.name for field in dataclasses.fields(selection.Figures))


async def comparison(
    store: ExperimentStore,
    records: list[Record],
    maximize: list[str],
    minimize: list[str],
    baseline: str | None,
) -> experiments_pb2.CompareExperimentsResponse:
    keyed = [(str(r["id"]), r) for r in records]
    metrics = diff.compare_metrics(
        [(key, r["metrics"]) for key, r in keyed],
        maximize=maximize,
        minimize=minimize,
        default=diff.MINIMIZE,  # as the experiments API document says
        baseline=baseline,
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
    best = {key: metric.best for key, metric in metrics.items() if diff.is_sharpe_ratio(key)}
    for key, figures in (await _selection(store, dict(keyed), best)).items():
        entry = response.selection[key]
        for name in _FIGURES:
            value = getattr(figures, name)
            if value is not None:
                setattr(entry, name, value)
    return response


async def _selection(
    store: ExperimentStore, records: Mapping[str, Record], best: Mapping[str, str | None]
) -> dict[str, selection.Figures]:
    """The deflated Sharpe ratio of every Sharpe metric's best experiment:
    one read of the trial sums per strategy for all of its metrics."""
    found: dict[str, selection.Figures] = {}
    # Strategy -> metric -> the best experiment's per-observation Sharpe.
    wanted: dict[uuid.UUID, dict[str, float]] = defaultdict(dict)
    for key, best_id in best.items():
        if best_id is None:
            found[key] = selection.Figures(reason="no compared experiment has a finite value")
            continue
        record = records[best_id]
        try:
            sharpe = selection.per_observation(record["metrics"][key], record["parameters"])
        except StatisticUndefined as undefined:
            found[key] = selection.Figures(experiment_id=best_id, reason=str(undefined))
            continue
        wanted[record["strategy_id"]][key] = sharpe
    for strategy_id, sharpes in wanted.items():
        trials = await store.trials(strategy_id)
        for key, sharpe in sharpes.items():
            best_id = str(best[key])
            found[key] = selection.figures(
                best_id, sharpe, records[best_id]["metrics"], trials.get(key, _NO_TRIALS)
            )
    return found


# A metric with no trials at all: impossible for a best experiment's own
# metric once its write has landed, but a compare must not fail on it.
_NO_TRIALS = selection.Trials(0, None, 0)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
