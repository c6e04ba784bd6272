"""Fold statistics of CompareRuns (CONTRACT §11): per-run summaries over the
steps (folds) of each metric, each run against the baseline fold by fold,
and the probability of backtest overfitting of choosing the best run. The
figures are `research_common.stats`; this module picks what they are
computed over and writes them into the response."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from research.tracking.v1 import tracking_pb2
from research_common import stats
from research_common.diff import Direction
from research_common.stats import StatisticUndefined
from tracking_svc.histories import History, Steps


def write_fold_statistics(
    response: tracking_pb2.CompareRunsResponse,
    histories: Mapping[str, History],
    directions: Mapping[str, Direction],
    run_ids: Sequence[str],
    baseline: str | None,
) -> None:
    """Fill `fold_stats`, `paired` and `overfitting` for every metric that
    some compared run logged at two steps or more."""
    for key, history in histories.items():
        direction = directions[key]
        if not history.complete:
            response.overfitting[key].reason = (
                "MLflow answered its maximum of values for this metric; "
                "the compared runs' histories are too long to judge"
            )
            continue
        runs = {run_id: history.runs.get(run_id, {}) for run_id in run_ids}
        folded = [run_id for run_id, steps in runs.items() if len(steps) >= 2]
        if not folded:
            continue
        entry = response.fold_stats[key]
        entry.SetInParent()  # an object even if no run has two finite steps
        for run_id, steps in runs.items():
            summary = stats.fold_summary([steps[step] for step in sorted(steps)], direction)
            if summary is not None:
                entry.runs[run_id].CopyFrom(tracking_pb2.FoldStats(**_fields(summary)))
        if baseline is not None:
            paired = response.paired[key]
            paired.SetInParent()
            for run_id in run_ids:
                if run_id != baseline:
                    figures = stats.paired(runs[baseline], runs[run_id], direction)
                    paired.runs[run_id].CopyFrom(tracking_pb2.PairedStats(**_fields(figures)))
        if len(folded) >= 2:
            response.overfitting[key].CopyFrom(_overfitting([runs[r] for r in folded], direction))


def _overfitting(runs: Sequence[Steps], direction: Direction) -> tracking_pb2.Overfitting:
    """PBO over the steps at which every one of `runs` has a finite value."""
    shared = sorted(
        set.intersection(
            *({step for step, value in steps.items() if math.isfinite(value)} for steps in runs)
        )
    )
    message = tracking_pb2.Overfitting(runs=len(runs), steps=len(shared))
    try:
        figures = stats.pbo([[steps[step] for step in shared] for steps in runs], direction)
    except StatisticUndefined as undefined:
        message.reason = str(undefined)
        return message
    message.blocks = figures.blocks
    message.combinations = figures.combinations
    message.pbo = figures.pbo
    return message


def _fields(figures: Any) -> dict[str, Any]:
    """A stats result's fields that are set (None leaves the field null);
    shallow, unlike dataclasses.asdict, which deep-copies every value."""
    named = ((field.name, getattr(figures, field.name)) for field in dataclasses.fields(figures))
    return {name: value for name, value in named if value is not None}
