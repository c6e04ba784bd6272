"""The filter of ListExperiments (CONTRACT §10), compiled from the tree of
`research_common.filters` into a SQLAlchemy condition: every value and
every map key reaches the database as a bound parameter, and the same rows
come back on PostgreSQL and SQLite.

Every compiled comparison is two-valued (true or false, never SQL's NULL),
so that NOT means what it says: `NOT metrics.sharpe > 1` holds for a row
without that metric. A comparison holds only where the stored value is of
the kind compared with: a number with a number (a JSON number in
`metrics` / `parameters`), a string with a string, a boolean with a
boolean; `= null` holds where the value is null or the key is absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, and_, case, false, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from experiments_svc.models import OPTIONAL_TEXT_FIELDS
from research_common.errors import InvalidArgument
from research_common.filters import And, Comparison, Fields, Node, Not, Value

TIME_COLUMNS = ("created_at", "updated_at")
MAPS = ("metrics", "parameters")
FIELDS = Fields(columns=("strategy_id", *OPTIONAL_TEXT_FIELDS, *TIME_COLUMNS), maps=MAPS)

Condition = ColumnElement[bool]
_ORDERING = ("<", "<=", ">", ">=")
# The JSON kinds of each dialect's type function, by the kind of a value.
KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "postgresql": {"number": ("number",), "string": ("string",), "boolean": ("boolean",)},
    "sqlite": {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false")},
}
_MISSING = "missing"  # stands in for the type of an absent key


def json_kind(dialect: str, column: Any, key: str) -> ColumnElement[str]:
    """The JSON type name of the entry `key` of a JSON column in the
    dialect's words (see KINDS), or 'missing' (never NULL)."""
    if dialect == "postgresql":
        kind = func.jsonb_typeof(column[key])
    else:
        # SQLite's JSON path; the key is [A-Za-z0-9_.:-] (see
        # research_common.filters), so it needs no escaping inside the
        # quotes, and it is bound as a parameter anyway.
        kind = func.json_type(column, f'$."{key}"')
    return func.coalesce(kind, _MISSING)


def ordered_text(dialect: str, expression: Any) -> Any:
    """A string expression that compares and sorts in code-point order on
    both databases (PostgreSQL's default collation would order by language)."""
    return expression.collate("C") if dialect == "postgresql" else expression


def _refuse(comparison: Comparison, problem: str) -> InvalidArgument:
    return InvalidArgument.field(
        "filter", f"{comparison.field} {problem} (at position {comparison.position})"
    )


def _compare(left: Any, op: str, right: Any) -> Condition:
    operations: dict[str, Callable[[Any, Any], Condition]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return operations[op](left, right)


class FilterCompiler:
    """Compiles filter trees for one table on one SQL dialect."""

    def __init__(self, table: Table, dialect: str) -> None:
        if dialect not in KINDS:
            raise ValueError(f"no filter compiler for the {dialect} dialect")
        self.table = table
        self.dialect = dialect

    def compile(self, node: Node) -> Condition:
        if isinstance(node, Comparison):
            return self._comparison(node)
        if isinstance(node, Not):
            return not_(self.compile(node.item))
        parts = [self.compile(item) for item in node.items]
        return and_(*parts) if isinstance(node, And) else or_(*parts)

    def _comparison(self, comparison: Comparison) -> Condition:
        name = comparison.field.name
        if comparison.field.key is not None:
            return self._entry(comparison, name, comparison.field.key)
        if name == "strategy_id":
            return self._strategy(comparison)
        if name in TIME_COLUMNS:
            return self._time(comparison)
        return self._text(comparison)

    def _strategy(self, comparison: Comparison) -> Condition:
        if comparison.op not in ("=", "!="):
            raise _refuse(comparison, "takes = or != only")
        if comparison.value is None:  # never null
            return false() if comparison.op == "=" else true()
        if not isinstance(comparison.value, str):
            raise _refuse(comparison, "compares with a quoted UUID")
        try:
            value = uuid.UUID(comparison.value)
        except ValueError:
            raise _refuse(comparison, f"must be a UUID, got {comparison.value!r}") from None
        return _compare(self.table.c.strategy_id, comparison.op, value)

    def _time(self, comparison: Comparison) -> Condition:
        column = self.table.c[comparison.field.name]
        if comparison.value is None:  # never null
            return false() if comparison.op == "=" else true()
        if isinstance(comparison.value, str):
            try:
                when = datetime.fromisoformat(comparison.value)
            except ValueError:
                when = None
            if when is not None and when.tzinfo is not None:
                try:
                    # As the column keeps it; a time near year 1 or 9999
                    # can leave the calendar in UTC.
                    when = when.astimezone(UTC)
                except OverflowError:
                    raise _refuse(comparison, "is out of range in UTC") from None
                return _compare(column, comparison.op, when)
        raise _refuse(
            comparison, 'compares with a quoted RFC 3339 time, e.g. "2026-01-02T03:04:05Z"'
        )

    def _text(self, comparison: Comparison) -> Condition:
        column = self.table.c[comparison.field.name]
        if comparison.value is None:
            return column.is_(None) if comparison.op == "=" else column.is_not(None)
        if not isinstance(comparison.value, str):
            raise _refuse(comparison, "compares with a quoted string")
        # The guard first: FALSE AND NULL is FALSE, so a null column gives
        # false, never SQL's NULL.
        return and_(column.is_not(None), self._ordered(column, comparison))

    def _ordered(self, expression: Any, comparison: Comparison) -> Condition:
        """A string comparison in code-point order on both databases."""
        if comparison.op in _ORDERING:
            expression = ordered_text(self.dialect, expression)
        return _compare(expression, comparison.op, comparison.value)

    def _entry(self, comparison: Comparison, name: str, key: str) -> Condition:
        column = self.table.c[name]
        value: Value = comparison.value
        kind = json_kind(self.dialect, column, key)
        if value is None:
            is_null = kind.in_(("null", _MISSING))
            return is_null if comparison.op == "=" else not_(is_null)
        if isinstance(value, bool):
            if comparison.op not in ("=", "!="):
                raise _refuse(comparison, f"compares true or false with {comparison.op}")
            # The kind alone says which: 'true' / 'false' (SQLite), or the
            # text of a 'boolean' (PostgreSQL).
            is_kind = kind.in_(KINDS[self.dialect]["boolean"])
            text = kind if self.dialect == "sqlite" else column[key].as_string()
            return and_(is_kind, _compare(text, comparison.op, "true" if value else "false"))
        if isinstance(value, float):
            is_kind = kind.in_(KINDS[self.dialect]["number"])
            # CASE, not AND, keeps the cast off a value that is not a number:
            # PostgreSQL does not promise to evaluate AND left to right.
            number = case((is_kind, column[key].as_float()), else_=None)
            return and_(is_kind, _compare(number, comparison.op, value))
        is_kind = kind.in_(KINDS[self.dialect]["string"])
        return and_(is_kind, self._ordered(column[key].as_string(), comparison))
