"""The sums behind the compare's trial statistics (CONTRACT §11), kept as
experiments are written rather than read from every experiment of a
strategy on every compare.

Per strategy and Sharpe-named metric (`research_common.diff.is_sharpe_ratio`),
one row of `strategy_trials`: how many experiments hold a usable value, how
many hold a value whose `periods_per_year` is unusable, and the sum and sum
of squares of the usable values per observation (experiments_svc.selection's
rules). Each write adds, in its own transaction, what it changed: a create or
an import adds the new experiment's part, an update of metrics or parameters
adds the new part less the old; a delete changes nothing (deleted trials
still count). Before, a compare read all of a strategy's rows: 1,000 rows
cost PostgreSQL about 4 ms a compare, and the cost grew with the strategy
(BENCHMARKS.md).

The sums are exact decimals (PostgreSQL's numeric; on SQLite the decimal's
text, added by `exact_add`, which the engine registers): every double has a
finite decimal expansion, so adding and taking away parts never drifts, and
the variance, worked out from them with fractions and rounded once, is the
one `statistics.variance` gives for the same values. A row's part is
computed in Python from the row as written, so the rules have one home.
"""

from __future__ import annotations

import decimal
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Insert, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from experiments_svc import selection
from experiments_svc.convert import Record
from experiments_svc.models import JsonDocument, TrialSumRow
from research_common.diff import is_sharpe_ratio
from research_common.stats import StatisticUndefined

_table: Table = TrialSumRow.__table__  # type: ignore[assignment]
# The sums of one strategy (parameter "strategy_id"), for `trials_of`.
OF_STRATEGY = select(_table).where(_table.c.strategy_id == bindparam("strategy_id"))
_KEY = (_table.c.strategy_id, _table.c.metric_key)

# Sums and products of the decimals of doubles, exactly: a double's decimal
# expansion has at most 767 significant digits, its square twice that, and a
# sum no more than the span of the exponents allows. An inexact result
# would be a bug: it raises rather than rounds.
_EXACT = decimal.Context(
    prec=100_000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.Inexact]
)
_ZERO = decimal.Decimal(0)


@dataclass(frozen=True, slots=True)
class Part:
    """What some experiments add to one metric's row: usable values, values
    with an unusable periods_per_year, and the sum and sum of squares of
    the usable ones."""

    trials: int = 0
    unusable: int = 0
    total: decimal.Decimal = _ZERO
    squares: decimal.Decimal = _ZERO

    def __add__(self, other: Part) -> Part:
        return Part(
            self.trials + other.trials,
            self.unusable + other.unusable,
            _EXACT.add(self.total, other.total),
            _EXACT.add(self.squares, other.squares),
        )

    def __sub__(self, other: Part) -> Part:
        return Part(
            self.trials - other.trials,
            self.unusable - other.unusable,
            _EXACT.subtract(self.total, other.total),
            _EXACT.subtract(self.squares, other.squares),
        )

    def __bool__(self) -> bool:
        return bool(self.trials or self.unusable or self.total or self.squares)


def parts(record: Record | None) -> dict[str, Part]:
    """One experiment's part of each Sharpe-named metric it holds a number
    for (none for None: no experiment). A value whose per-observation
    figure is not finite (a huge value over a tiny periods_per_year) is no
    trial, as a value that is not a number is none."""
    if record is None:
        return {}
    found: dict[str, Part] = {}
    for key, value in record["metrics"].items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not is_sharpe_ratio(key):
            continue
        try:
            x = selection.per_observation(value, record["parameters"])
        except StatisticUndefined:
            found[key] = Part(unusable=1)
            continue
        if not math.isfinite(x):
            continue
        exact = decimal.Decimal(x)
        found[key] = Part(1, 0, exact, _EXACT.multiply(exact, exact))
    return found


def change(before: Record | None, after: Record) -> dict[str, Part]:
    """What a write that turned `before` (None: a new experiment) into
    `after` adds to each metric's row; metrics it leaves alone are absent."""
    old, new = parts(before), parts(after)
    found = {}
    for key in old.keys() | new.keys():
        delta = new.get(key, Part()) - old.get(key, Part())
        if delta:
            found[key] = delta
    return found


def totals(records: Iterable[Record]) -> dict[tuple[uuid.UUID, str], Part]:
    """Every row of `strategy_trials` that `records` make."""
    found: dict[tuple[uuid.UUID, str], Part] = {}
    for record in records:
        for key, part in parts(record).items():
            place = (record["strategy_id"], key)
            found[place] = found.get(place, Part()) + part
    return found


# The columns of experiments a rebuild reads.
_EXPERIMENTS = sa.table(
    "experiments",
    sa.column("id", sa.Uuid()),
    sa.column("strategy_id", sa.Uuid()),
    sa.column("parameters", JsonDocument),
    sa.column("metrics", JsonDocument),
)
_BATCH = 1000


def _every_experiment(bind: Connection) -> Iterator[Record]:
    """Every experiment, deleted ones included, read in batches by id."""
    after = None
    while True:
        query = sa.select(_EXPERIMENTS).order_by(_EXPERIMENTS.c.id).limit(_BATCH)
        if after is not None:
            query = query.where(_EXPERIMENTS.c.id > after)
        rows = list(bind.execute(query).mappings())
        if not rows:
            return
        yield from rows
        after = rows[-1]["id"]


def rebuild(bind: Connection, table: Table = _table) -> int:
    """Work `table` (strategy_trials) out again from every experiment; the
    number of rows written. For the migration that adds the table, and for
    rows written behind the service's back (the benchmarks load theirs in
    one SQL statement)."""
    found = totals(_every_experiment(bind))
    bind.execute(table.delete())
    values = [
        row_values(bind.dialect.name, strategy_id, key, part)
        for (strategy_id, key), part in found.items()
    ]
    if values:
        bind.execute(table.insert(), values)
    return len(values)


def row_values(dialect: str, strategy_id: uuid.UUID, key: str, part: Part) -> dict[str, Any]:
    """A row of `strategy_trials` as bound values: a decimal's text on
    SQLite, which has no exact decimal type."""
    exact = (lambda value: value) if dialect == "postgresql" else str
    return {
        "strategy_id": strategy_id,
        "metric_key": key,
        "trials": part.trials,
        "unusable": part.unusable,
        "total": exact(part.total),
        "squares": exact(part.squares),
    }


# One write to the sums: a statement built once, and its bound values.
Adding = tuple[Insert, dict[str, Any]]
_COLUMNS = ("strategy_id", "metric_key", "trials", "unusable", "total", "squares")


def _upsert(statement: Any, dialect: str) -> Insert:
    """`statement` adding to the row it conflicts with."""
    excluded: Any = statement.excluded

    def exact_plus(name: str) -> ColumnElement[Any]:
        mine: ColumnElement[Any] = _table.c[name]
        theirs: ColumnElement[Any] = excluded[name]
        if dialect == "postgresql":
            return mine + theirs
        return func.exact_add(mine, theirs)

    upsert: Insert = statement.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={
            "trials": _table.c.trials + excluded.trials,
            "unusable": _table.c.unusable + excluded.unusable,
            "total": exact_plus("total"),
            "squares": exact_plus("squares"),
        },
    )
    return upsert


# PostgreSQL: every metric of a write in one statement, over arrays (one
# element a metric) unnested in the order given.
_ARRAYS = (
    func.unnest(
        bindparam("trial_keys", type_=ARRAY(sa.Text())),
        bindparam("trial_counts", type_=ARRAY(sa.BigInteger())),
        bindparam("trial_unusable", type_=ARRAY(sa.BigInteger())),
        bindparam("trial_totals", type_=ARRAY(sa.Numeric())),
        bindparam("trial_squares", type_=ARRAY(sa.Numeric())),
    )
    .table_valued(*_COLUMNS[1:])
    .render_derived("added")
)
_ADD_POSTGRESQL = _upsert(
    postgresql_insert(_table).from_select(
        list(_COLUMNS),
        select(bindparam("trial_strategy", type_=sa.Uuid()), *_ARRAYS.c),
    ),
    "postgresql",
)
# SQLite, which has no arrays: one statement a metric.
_ADD_SQLITE = _upsert(
    sqlite_insert(_table).values({name: bindparam(f"trial_{name}") for name in _COLUMNS}),
    "sqlite",
)


def adding(dialect: str, strategy_id: uuid.UUID, changes: Mapping[str, Part]) -> list[Adding]:
    """The statements, with their values, that add `changes` to the
    strategy's rows, to run in the write's own transaction. The statements
    are built once: building one per write (a multi-row VALUES, which
    SQLAlchemy cannot cache either) cost a PATCH about 1 ms of CPU. On
    PostgreSQL one statement; on SQLite one a metric. Keys go in sorted
    order, so that two writes to one strategy lock its rows in the same
    order and never deadlock."""
    keys = sorted(changes)
    if not keys:
        return []
    if dialect == "postgresql":
        parts = [changes[key] for key in keys]
        values = {
            "trial_strategy": strategy_id,
            "trial_keys": keys,
            "trial_counts": [part.trials for part in parts],
            "trial_unusable": [part.unusable for part in parts],
            "trial_totals": [part.total for part in parts],
            "trial_squares": [part.squares for part in parts],
        }
        return [(_ADD_POSTGRESQL, values)]
    return [
        (
            _ADD_SQLITE,
            {
                f"trial_{name}": value
                for name, value in row_values(dialect, strategy_id, key, changes[key]).items()
            },
        )
        for key in keys
    ]


def exact_add(left: str | None, right: str | None) -> str | None:
    """SQLite's `exact_add(a, b)`: the sum of two decimals' texts, exactly."""
    if left is None or right is None:
        return None
    return str(_EXACT.add(decimal.Decimal(left), decimal.Decimal(right)))


def trials_of(rows: Iterable[Record]) -> dict[str, selection.Trials]:
    """The trials of each Sharpe-named metric of a strategy, from its rows
    of OF_STRATEGY (a metric no experiment holds a number for is absent)."""
    return {row["metric_key"]: _trials(row) for row in rows}


def _trials(row: Record) -> selection.Trials:
    count = int(row["trials"])
    variance = None
    if count >= 2:
        total = Fraction(decimal.Decimal(row["total"]))
        squares = Fraction(decimal.Decimal(row["squares"]))
        variance = float((squares - total * total / count) / (count - 1))
    return selection.Trials(count, variance, int(row["unusable"]))
