"""Selection bias on CompareExperiments (CONTRACT §11): the deflated Sharpe
ratio of each Sharpe metric's best experiment.

The audit trail is the one place that knows how many trials a strategy
took, deleted ones included. The trial count and the variance of their
Sharpe ratios are computed by the database, one query per strategy for all
of its Sharpe metrics together, without loading the rows into Python; the
formulas are `research_common.stats`.

Every Sharpe figure is per return observation: an experiment's value is
divided by the square root of its parameter `periods_per_year` when it has
one (a JSON number, or a decimal string as MLflow logs parameters; absent or
null means the value already is per observation). A `periods_per_year` that
is not a positive number is bad data, not bad input: the figures that need
it are null with a `reason`.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, cast, func, literal, not_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import Float

from experiments_svc.filtering import KINDS, json_kind
from research_common import stats
from research_common.stats import StatisticUndefined

PERIODS_PER_YEAR = "periods_per_year"
OBSERVATIONS = "n_obs"
SKEW = "returns_skew"
KURTOSIS = "returns_kurtosis"
# A decimal string `periods_per_year` may hold: short enough that every
# database turns it into a double without overflow.
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")
_DECIMAL_SQL = "^[0-9]{1,15}([.][0-9]{1,15})?$"


@dataclass(frozen=True, slots=True)
class Trials:
    """What the database says about one Sharpe metric of one strategy."""

    count: int  # experiments with a finite value and a usable periods_per_year
    variance: float | None  # sample variance of their per-observation values
    unusable: int  # experiments with a value but an unusable periods_per_year


def periods_per_year(parameters: Mapping[str, Any]) -> float | None:
    """The experiment's `periods_per_year` (None: absent, no scaling), by
    the same rule as the SQL below; StatisticUndefined when it is present
    but not a positive number."""
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


def _is_decimal(dialect: str, text: Any) -> Any:
    """`text` is a decimal string periods_per_year may be (see _DECIMAL)."""
    if dialect == "postgresql":
        return text.regexp_match(_DECIMAL_SQL)
    # SQLite has GLOB, not regular expressions: the same language.
    return and_(
        func.length(text) <= 31,
        text.op("GLOB", is_comparison=True)("[0-9]*"),
        not_(text.op("GLOB", is_comparison=True)("*[^0-9.]*")),
        not_(text.op("GLOB", is_comparison=True)("*.*.*")),
        not_(text.op("GLOB", is_comparison=True)("*.")),
    )


def _json_number(dialect: str, column: Any, key: str) -> Any:
    """The entry `key` of a JSON column as what becomes its number once
    cast to FLOAT, readable whatever its type (only a number's is used):
    PostgreSQL's text of it (a cast there refuses other text), SQLite's
    value (whose own cast never fails, and whose text of a REAL would keep
    only 15 digits)."""
    entry = column[key]
    return entry.as_string() if dialect == "postgresql" else entry.as_float()


# The bound parameter of trials_query that names the strategy.
STRATEGY = "strategy"


def trials_parameters(strategy_id: uuid.UUID, shifts: Mapping[str, float]) -> dict[str, Any]:
    """The bound values of `trials_query(..., tuple(shifts))`."""
    values: dict[str, Any] = {STRATEGY: strategy_id}
    for index, shift in enumerate(shifts.values()):
        values[f"shift_{index}"] = shift
    return values


@functools.lru_cache(maxsize=256)
def trials_query(table: Table, dialect: str, keys: tuple[str, ...]) -> Any:
    """One SELECT over every experiment of a strategy (deleted included)
    giving, per metric key: the count of usable values x, the sums of
    (x - shift) and (x - shift)², and the count of values whose
    periods_per_year is unusable. Summing values shifted by one of them
    (the best's) keeps the one-pass variance exact to rounding.

    Each row's JSON is read once, in the innermost SELECT: the type and
    text of periods_per_year (on SQLite its value too) and the type and
    value of each metric (`_json_number`). The next works out
    periods_per_year (1.0 when absent or null, the number, a decimal
    string's number, else NULL: unusable, as is a number <= 0), the next
    each x, and the outermost sums them. The inner two end in OFFSET 0 so
    that PostgreSQL keeps them as steps instead of repeating each
    expression where the next step uses it: written as one expression, the
    type of periods_per_year was looked up nine times a row, and the query
    took 2-3x as long (BENCHMARKS.md).

    The strategy and the shifts are bound parameters (`trials_parameters`),
    so the statement is built once per set of keys: building it was a
    seventh of a compare's CPU in experiments_svc (bench.profile)."""
    numbers, strings = KINDS[dialect]["number"], KINDS[dialect]["string"]
    read = [
        json_kind(dialect, table.c.parameters, PERIODS_PER_YEAR).label("periods_kind"),
        table.c.parameters[PERIODS_PER_YEAR].as_string().label("periods_text"),
    ]
    if dialect != "postgresql":  # on PostgreSQL the number is read from the text
        read.append(
            _json_number(dialect, table.c.parameters, PERIODS_PER_YEAR).label("periods_number")
        )
    for index, key in enumerate(keys):
        read += [
            json_kind(dialect, table.c.metrics, key).label(f"kind_{index}"),
            _json_number(dialect, table.c.metrics, key).label(f"number_{index}"),
        ]
    rows = select(*read).where(table.c.strategy_id == bindparam(STRATEGY)).offset(0).subquery()
    periods_number = rows.c.get("periods_number", rows.c.periods_text)
    periods = case(
        (rows.c.periods_kind.in_(("missing", "null")), literal(1.0)),
        (rows.c.periods_kind.in_(numbers), cast(periods_number, Float)),
        # Nested, so that the cast never sees a string the test refused.
        (
            rows.c.periods_kind.in_(strings),
            case(
                (_is_decimal(dialect, rows.c.periods_text), cast(rows.c.periods_text, Float)),
                else_=None,
            ),
        ),
        else_=None,
    )
    metrics = [rows.c[f"{part}_{i}"] for i in range(len(keys)) for part in ("kind", "number")]
    scaled = select(periods.label("periods"), *metrics).offset(0).subquery()
    usable_periods = scaled.c.periods > 0
    root = func.sqrt(scaled.c.periods, type_=Float)
    per_row: list[ColumnElement[Any]] = []
    for index in range(len(keys)):
        is_number = scaled.c[f"kind_{index}"].in_(numbers)
        value = cast(scaled.c[f"number_{index}"], Float)
        x = case((and_(is_number, usable_periods), value / root), else_=None)
        unusable = case((and_(is_number, not_(func.coalesce(usable_periods, False))), 1), else_=0)
        per_row += [x.label(f"x_{index}"), unusable.label(f"u_{index}")]
    values = select(*per_row).subquery()
    columns: list[ColumnElement[Any]] = []
    for index in range(len(keys)):
        shifted = values.c[f"x_{index}"] - bindparam(f"shift_{index}", type_=Float)
        columns += [
            func.count(values.c[f"x_{index}"]).label(f"n_{index}"),
            func.sum(shifted).label(f"s_{index}"),
            func.sum(shifted * shifted).label(f"q_{index}"),
            func.coalesce(func.sum(values.c[f"u_{index}"]), 0).label(f"u_{index}"),
        ]
    return select(*columns)


def read_trials(row: Mapping[Any, Any], keys: Sequence[str]) -> dict[str, Trials]:
    """The query's one row as Trials per key."""
    found = {}
    for index, key in enumerate(keys):
        count = int(row[f"n_{index}"])
        variance = None
        if count >= 2:
            total, squares = float(row[f"s_{index}"]), float(row[f"q_{index}"])
            variance = max(0.0, (squares - total * total / count) / (count - 1))
        found[key] = Trials(count, variance, int(row[f"u_{index}"]))
    return found


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
