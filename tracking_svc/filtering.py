"""The filter of ListRuns (CONTRACT §10), compiled from the tree of
`research_common.filters` into MLflow's search syntax. Nothing the caller
wrote is pasted: every key is checked and put in backticks, every string
checked and put in single quotes, every number written by this code; what
MLflow cannot search for is refused before MLflow is asked:

- OR and NOT (MLflow's search is a conjunction of comparisons);
- an ordering comparison of strings, or `null` (MLflow compares tags,
  params, status and run name with = and != only here, and has no null);
- a quote, backtick, backslash or control character in a string (MLflow's
  filter parser has no escapes that would keep them apart from the syntax).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from research_common.constants import RUN_TYPE_TAG
from research_common.errors import InvalidArgument
from research_common.filters import And, Comparison, Fields, Node, Not, Or
from research_common.free_form import MAX_SAFE_INTEGER

# Tags the façade offers as fields of their own (the seed's filters).
TAG_FIELDS = (RUN_TYPE_TAG, "strategy_id")
FIELDS = Fields(
    columns=(*TAG_FIELDS, "status", "run_name", "start_time"),
    maps=("tags", "metrics", "params"),
)
STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_SAFE_STRING = re.compile(r"[^'\"`\\\x00-\x1f\x7f]{0,500}")


def _refuse(comparison: Comparison, problem: str) -> InvalidArgument:
    return InvalidArgument.field(
        "filter", f"{comparison.field} {problem} (at position {comparison.position})"
    )


def compile_filter(node: Node) -> list[str]:
    """The MLflow clauses of a filter tree, to be joined with ` and `."""
    if isinstance(node, Or | Not):
        word = "OR" if isinstance(node, Or) else "NOT"
        raise InvalidArgument.field(
            "filter",
            f"uses {word} at position {node.position}: MLflow searches runs with AND only",
        )
    if isinstance(node, And):
        return [clause for item in node.items for clause in compile_filter(item)]
    return [_clause(node)]


def _clause(comparison: Comparison) -> str:
    field, op, value = comparison.field, comparison.op, comparison.value
    if value is None:
        raise _refuse(comparison, "cannot be compared with null for runs (MLflow has no null)")
    if field.name == "metrics":
        if not isinstance(value, float) or isinstance(value, bool):
            raise _refuse(comparison, "compares with a number (MLflow metrics are numbers)")
        return f"metrics.`{field.key}` {op} {_number(value)}"
    if field.name == "start_time":
        return f"attributes.start_time {op} {_milliseconds(comparison)}"
    text = _string(comparison)
    if op not in ("=", "!="):
        raise _refuse(comparison, f"compares strings with = or != only for runs, not {op}")
    if field.name == "status":
        if text not in STATUSES:
            raise _refuse(comparison, f"is one of {', '.join(STATUSES)}, got {text!r}")
        return f"attributes.status {op} '{text}'"
    if field.name == "run_name":
        return f"attributes.run_name {op} '{text}'"
    if field.name in TAG_FIELDS:
        return f"tags.`{field.name}` {op} '{text}'"
    return f"{field.name}.`{field.key}` {op} '{text}'"  # tags.<key>, params.<key>


def _number(value: float) -> str:
    """A number as MLflow's filter parser reads it back exactly: Python's
    shortest round-trip form, whose exponent MLflow takes without a '+'."""
    return repr(value).replace("e+", "e")


def _string(comparison: Comparison) -> str:
    value = comparison.value
    if not isinstance(value, str):
        raise _refuse(comparison, "compares with a quoted string")
    if not _SAFE_STRING.fullmatch(value):
        raise _refuse(
            comparison,
            "holds a quote, backtick, backslash or control character, or is over 500 "
            "characters: MLflow's search cannot take it",
        )
    return value


def _milliseconds(comparison: Comparison) -> int:
    """start_time as MLflow keeps it: whole epoch milliseconds, given as a
    number or as a quoted RFC 3339 time, within ±(2^53 - 1) (beyond it a
    number is not exact, and MLflow's store cannot bind one past 64 bits)."""
    value = comparison.value
    milliseconds: int | None = None
    if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        milliseconds = int(value)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            # Exact arithmetic: the float of when.timestamp() * 1000 can
            # fall one millisecond short.
            elapsed = when - _EPOCH
            if elapsed % _MILLISECOND:
                raise _refuse(comparison, "has whole milliseconds only for runs")
            milliseconds = elapsed // _MILLISECOND
    if milliseconds is None:
        raise _refuse(comparison, "compares with epoch milliseconds or a quoted RFC 3339 time")
    if abs(milliseconds) > MAX_SAFE_INTEGER:
        raise _refuse(comparison, f"is out of range: at most ±{MAX_SAFE_INTEGER} milliseconds")
    return milliseconds
