"""Selection bias on CompareExperiments (CONTRACT §11): the deflated Sharpe
ratio of each Sharpe metric's best experiment.

The audit trail is the one place that knows how many trials a strategy
took, deleted ones included. The trial count and the variance of their
Sharpe ratios come from sums kept per strategy and metric as experiments
are written (experiments_svc.trial_sums), by the rules of this module; the
formulas are `research_common.stats`.

Every Sharpe figure is per return observation: an experiment's value is
divided by the square root of its parameter `periods_per_year` when it has
one (a JSON number, or a decimal string as MLflow logs parameters; absent or
null means the value already is per observation). A `periods_per_year` that
is not a positive number is bad data, not bad input: the figures that need
it are null with a `reason`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from research_common import stats
from research_common.stats import StatisticUndefined

PERIODS_PER_YEAR = "periods_per_year"
OBSERVATIONS = "n_obs"
SKEW = "returns_skew"
KURTOSIS = "returns_kurtosis"
# A decimal string `periods_per_year` may hold (as an imported MLflow
# parameter is text): up to 15 digits either side of the point, so that it
# is always a finite double.
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")


@dataclass(frozen=True, slots=True)
class Trials:
    """What the trial sums say about one Sharpe metric of one strategy."""

    count: int  # experiments with a finite value and a usable periods_per_year
    variance: float | None  # sample variance of their per-observation values
    unusable: int  # experiments with a value but an unusable periods_per_year


def periods_per_year(parameters: Mapping[str, Any]) -> float | None:
    """The experiment's `periods_per_year` (None: absent or null, no
    scaling); StatisticUndefined when it is present but not a positive
    number."""
    value = parameters.get(PERIODS_PER_YEAR)
    if value is None:
        return None
    number: float | None = None
    if (isinstance(value, int | float) and not isinstance(value, bool)) or (
        isinstance(value, str) and _DECIMAL.fullmatch(value)
    ):
        number = float(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise StatisticUndefined(
            f"parameter {PERIODS_PER_YEAR} is not a positive number: {value!r}"
        )
    return number


@dataclass(slots=True)
class Figures:
    """One Selection message's fields; None where a figure is null."""

    experiment_id: str | None = None
    sharpe: float | None = None
    trials: int | None = None
    sharpe_variance: float | None = None
    expected_max_sharpe: float | None = None
    deflated_sharpe: float | None = None
    reason: str | None = None


def per_observation(value: float, parameters: Mapping[str, Any]) -> float:
    """A Sharpe ratio per observation; StatisticUndefined for an unusable
    periods_per_year."""
    periods = periods_per_year(parameters)
    return value if periods is None else value / math.sqrt(periods)


def figures(best_id: str, sharpe: float, metrics: Mapping[str, Any], trials: Trials) -> Figures:
    """The deflated Sharpe ratio of the best experiment (its per-observation
    `sharpe` and its `metrics`) among the strategy's `trials`."""
    result = Figures(experiment_id=best_id, sharpe=sharpe, trials=trials.count)
    try:
        if trials.unusable:
            raise StatisticUndefined(
                f"{trials.unusable} experiment(s) of the strategy have a parameter "
                f"{PERIODS_PER_YEAR} that is not a positive number"
            )
        if trials.variance is None:
            raise StatisticUndefined(
                f"needs at least 2 trials with a finite value, found {trials.count}"
            )
        result.sharpe_variance = trials.variance
        result.expected_max_sharpe = stats.expected_max_sharpe(trials.count, trials.variance)
        observations = metrics.get(OBSERVATIONS)
        if observations is None:
            raise StatisticUndefined(f"the best experiment has no metric {OBSERVATIONS}")
        count = _number(OBSERVATIONS, observations)
        if count <= 1:
            raise StatisticUndefined(
                f"metric {OBSERVATIONS} of the best experiment must be above 1, got {observations}"
            )
        result.deflated_sharpe = stats.deflated_sharpe(
            sharpe,
            result.expected_max_sharpe,
            count,
            _number(SKEW, metrics.get(SKEW, 0.0)),
            _number(KURTOSIS, metrics.get(KURTOSIS, 3.0)),
        )
    except StatisticUndefined as undefined:
        result.reason = str(undefined)
    return result


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StatisticUndefined(f"metric {name} of the best experiment is not a finite number")
    return float(value)
